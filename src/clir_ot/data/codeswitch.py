"""Artificial code-switching of English text with a bilingual lexicon.

Litschko, Artemova & Plank (2023), "Boosting Zero-shot Cross-lingual Retrieval by Training on
Artificially Code-Switched Data", arXiv 2305.05295: every English token that the lexicon can
translate is replaced, with probability ``p``, by one of its translations (drawn uniformly).

- ``bilingual`` mode: one target language per sentence (drawn uniformly from ``langs``).
- ``multilingual`` mode: a target language drawn per token (among the ``langs`` that translate it).

The rate ``p`` applies to *switchable* tokens (those the lexicon translates); the result records
which positions were switched and into which language, so the measured rate can be checked.
Deterministic given the seed: the same ``random.Random(seed)`` stream gives the same output.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .lexicon import Lexicon

Mode = Literal["bilingual", "multilingual"]
#: the code-switching modes (:data:`Mode`), for configuration checks and the command line
CODE_SWITCH_MODES: tuple[str, ...] = ("bilingual", "multilingual")
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class CodeSwitched:
    text: str
    tokens: tuple[str, ...]
    switched: tuple[int, ...]  # positions (token indices) that were replaced
    languages: tuple[str, ...]  # target language of each switched position, same order
    switchable: int  # tokens the lexicon could translate


def tokenize(text: str) -> list[str]:
    """Words (with inner apostrophes) and single punctuation marks."""
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    out = ""
    for tok in tokens:
        if out and (tok[0].isalnum() or tok[0] == "_" or tok in "([{\"'") and not out.endswith(("(", "[", "{")):
            out += " "
        out += tok
    return out


class CodeSwitcher:
    """Replace English tokens by lexicon translations with probability ``p``."""

    def __init__(self, lexicon: Lexicon, langs: Sequence[str], p: float = 0.5, mode: Mode = "bilingual") -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"code-switching probability must be in [0, 1], got {p}")
        if mode not in CODE_SWITCH_MODES:
            raise ValueError(f"unknown code-switching mode {mode!r}")
        missing = [lang for lang in langs if lang not in lexicon.entries]
        if missing or not langs:
            raise ValueError(f"lexicon {lexicon.path} has no section for {missing or 'any language'}; "
                             f"it has {lexicon.languages}")
        self.lexicon, self.langs, self.p, self.mode = lexicon, list(langs), p, mode

    def __call__(self, text: str, rng: random.Random) -> CodeSwitched:
        tokens = tokenize(text)
        sentence_lang = rng.choice(self.langs) if self.mode == "bilingual" else None
        out, switched, langs, switchable = list(tokens), [], [], 0
        for i, tok in enumerate(tokens):
            key = tok.lower()
            candidates = [sentence_lang] if sentence_lang else self.langs
            options = [lang for lang in candidates if key in self.lexicon.entries[lang]]
            if not options:
                continue
            switchable += 1
            if rng.random() < self.p:
                lang = options[0] if len(options) == 1 else rng.choice(options)
                out[i] = rng.choice(self.lexicon.entries[lang][key])
                switched.append(i)
                langs.append(lang)
        return CodeSwitched(detokenize(out), tuple(out), tuple(switched), tuple(langs), switchable)
