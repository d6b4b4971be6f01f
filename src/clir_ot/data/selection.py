"""Seeded selections shared by every benchmark: query samples and reduced document pools."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple


class Doc(NamedTuple):
    doc_id: str
    text: str


def reduced_pool(docs: Sequence[Doc], judged: set[str], distractors: int | None, seed: int) -> list[Doc]:
    """All of ``docs`` (``distractors=None``) or the judged ones plus ``distractors`` others drawn at random
    (seeded), in the original order. Cheaper and easier than the full collection: label it as such."""
    if distractors is None:
        return list(docs)
    others = [i for i, d in enumerate(docs) if d.doc_id not in judged]
    chosen = set(random.Random(f"pool:{seed}").sample(others, min(distractors, len(others))))
    return [d for i, d in enumerate(docs) if d.doc_id in judged or i in chosen]


def sample_ids(ids: set[str], n: int | None, seed: int) -> set[str] | None:
    """``n`` of ``ids`` drawn at random (seeded), or ``None`` (all) when ``n`` is not given."""
    if not n:
        return None
    return set(random.Random(f"queries:{seed}").sample(sorted(ids), min(n, len(ids))))
