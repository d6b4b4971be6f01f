"""BM25 baseline with ``bm25s``, set up like Pyserini's MIRACL BM25 runs.

Tokenizer: whitespace split, no lowercasing, no stemming, no stop words (stated in every output).
Parameters k1 = 0.9, b = 0.4, Lucene's BM25 variant. Documents are title + " " + text.
On the Yoruba dev set this reproduces Pyserini's official run: see the tests / README.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOKENIZER = "whitespace split, case kept, no stemming, no stop words"


def whitespace_tokens(texts: Sequence[str]) -> list[list[str]]:
    return [t.split() for t in texts]


class BM25Index:
    """An in-memory BM25 index over a list of documents."""

    def __init__(self, docs: Sequence[str], k1: float = 0.9, b: float = 0.4) -> None:
        import bm25s

        self.k1, self.b = k1, b
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(whitespace_tokens(docs), show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)`` of the top-k documents per query (zero-score documents dropped: -1)."""
        k = min(k, self.retriever.scores["num_docs"])
        idx, scores = self.retriever.retrieve(whitespace_tokens(queries), k=k, show_progress=False, n_threads=0)
        idx = np.where(scores > 0, idx, -1)
        return scores, idx

    def describe(self) -> dict:
        return {"method": "bm25s (lucene)", "k1": self.k1, "b": self.b, "tokenizer": TOKENIZER}
