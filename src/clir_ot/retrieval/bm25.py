r"""BM25 baselines with ``bm25s``: Pyserini's MIRACL BM25 run, and a stronger lexical variant.

- ``whitespace`` (system ``bm25``): whitespace split, no lowercasing, no stemming, no stop words — set up
  like Pyserini's MIRACL BM25 runs, and on the Yoruba dev set equal to Pyserini's official run.
- ``regex`` (system ``bm25-strong``): lowercase, tokens of ``(?u)\b\w\w+\b`` (``bm25s.tokenize``'s
  default pattern, i.e. punctuation stripped and one-character tokens dropped), no stemming, no stop words.

Both: k1 = 0.9, b = 0.4, Lucene's BM25 variant; documents are title + " " + text. The tokenizer is
stated in every output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

TOKENIZERS: dict[str, str] = {
    "whitespace": "whitespace split, case kept, no stemming, no stop words",
    "regex": r"lowercase, regex tokens (?u)\b\w\w+\b, no stemming, no stop words",
}
_WORD = re.compile(r"(?u)\b\w\w+\b")


def whitespace_tokens(texts: Sequence[str]) -> list[list[str]]:
    return [t.split() for t in texts]


def regex_tokens(texts: Sequence[str]) -> list[list[str]]:
    return [_WORD.findall(t.lower()) for t in texts]


_TOKENIZE: dict[str, Callable[[Sequence[str]], list[list[str]]]] = {
    "whitespace": whitespace_tokens, "regex": regex_tokens}


class BM25Index:
    """An in-memory BM25 index over a list of documents."""

    def __init__(self, docs: Sequence[str], k1: float = 0.9, b: float = 0.4, tokenizer: str = "whitespace") -> None:
        import bm25s

        self.k1, self.b, self.tokenizer = k1, b, tokenizer
        self.tokenize = _TOKENIZE[tokenizer]
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(self.tokenize(docs), show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)`` of the top-k documents per query (zero-score documents dropped: -1)."""
        k = min(k, self.retriever.scores["num_docs"])
        idx, scores = self.retriever.retrieve(self.tokenize(queries), k=k, show_progress=False, n_threads=0)
        idx = np.where(scores > 0, idx, -1)
        return scores, idx

    def describe(self) -> dict:
        return {"method": "bm25s (lucene)", "k1": self.k1, "b": self.b, "tokenizer": TOKENIZERS[self.tokenizer]}
