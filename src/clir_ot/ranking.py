"""Runs and judgements as mappings, and the one ranking order every reader and writer of run files uses.

A run maps query id → doc id → score; judgements (qrels) map query id → doc id → relevance. Documents
with equal scores are ordered by doc id descending, as trec_eval does (it ignores the rank column).
"""

from __future__ import annotations

from collections.abc import Mapping

Qrels = Mapping[str, Mapping[str, int]]  # query_id -> doc_id -> relevance
Run = Mapping[str, Mapping[str, float]]  # query_id -> doc_id -> score


def rank(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by score descending, ties by doc id descending (trec_eval's order)."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
