"""Hybrid fusion of two runs: score interpolation (as Pyserini's hybrid conditions) and RRF.

Interpolation: each run's scores are min-max normalised per query over its retrieved documents,
then ``α · dense + (1 − α) · sparse``; a document missing from one run gets that run's minimum
(0 after normalisation). Reciprocal rank fusion (Cormack et al. 2009): Σ_runs 1 / (k + rank).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..ranking import Run, rank

#: the fusions of a dense run with a lexical one (``--fuse``): score interpolation, or reciprocal rank fusion
FUSIONS = ("bm25", "rrf")


def _minmax(scores: Mapping[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {d: (s - lo) / span if span > 0 else 1.0 for d, s in scores.items()}


def interpolate(dense: Run, sparse: Run, alpha: float = 0.5, depth: int = 1000) -> dict[str, dict[str, float]]:
    """α · normalised dense + (1 − α) · normalised sparse, top ``depth`` per query."""
    out = {}
    for qid in dense.keys() | sparse.keys():
        a, b = _minmax(dense.get(qid, {})), _minmax(sparse.get(qid, {}))
        fused = {d: alpha * a.get(d, 0.0) + (1 - alpha) * b.get(d, 0.0) for d in a.keys() | b.keys()}
        out[qid] = {d: fused[d] for d in rank(fused)[:depth]}
    return out


def reciprocal_rank_fusion(runs: list[Run], k: int = 60, depth: int = 1000) -> dict[str, dict[str, float]]:
    """Σ 1 / (k + rank) over runs (rank from 1, trec_eval order)."""
    out = {}
    for qid in set().union(*(r.keys() for r in runs)):
        fused: dict[str, float] = {}
        for run in runs:
            for i, d in enumerate(rank(run.get(qid, {})), start=1):
                fused[d] = fused.get(d, 0.0) + 1.0 / (k + i)
        out[qid] = {d: fused[d] for d in rank(fused)[:depth]}
    return out
