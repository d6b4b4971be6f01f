"""Retrieval metrics with trec_eval ``-c`` semantics, named as in ir_measures.

- Every query in the qrels is scored; a query missing from the run scores 0 (``-c``).
- Documents are ranked by score (descending), ties broken by doc id in *descending* byte order —
  what trec_eval does, whatever the rank column of a run file says.
- A document is relevant when its judgement is ≥ 1 (``-l 1``); gains for nDCG are the judgement values.

Measures (``k`` is a cut-off):

- ``R@k`` (Recall@k): |relevant ∩ top-k| / |relevant|  (not Success@k)
- ``AP`` (MAP when averaged): (1/|relevant|) Σ_{ranks r of relevant docs} P@r, over the whole run
- ``nDCG@k``: Σ_{r≤k} rel_r / log2(r+1), divided by the same sum over the ideal ordering of the qrels
- ``RR@k`` (MRR@k when averaged): 1 / rank of the first relevant document within the top k, else 0
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from ..ranking import Qrels, Run, rank

DEFAULT_MEASURES = ("R@100", "AP", "nDCG@10", "RR@10")
_MEASURE = re.compile(r"^(R|nDCG|RR|AP|P)(?:@(\d+))?$")


def parse_measure(name: str) -> tuple[str, int | None]:
    m = _MEASURE.match(name)
    if not m:
        raise ValueError(f"unknown measure {name!r}; supported: R@k, AP, nDCG@k, RR@k, P@k")
    return m.group(1), int(m.group(2)) if m.group(2) else None


def _query_scores(ranking: list[str], judged: Mapping[str, int], measures: Iterable[str]) -> dict[str, float]:
    relevant = {d for d, r in judged.items() if r >= 1}
    n_rel = len(relevant)
    out: dict[str, float] = {}
    for name in measures:
        kind, k = parse_measure(name)
        top = ranking if k is None else ranking[:k]
        if n_rel == 0:
            out[name] = 0.0
        elif kind == "R":
            out[name] = sum(d in relevant for d in top) / n_rel
        elif kind == "P":
            out[name] = sum(d in relevant for d in top) / k
        elif kind == "AP":
            hits, total = 0, 0.0
            for i, d in enumerate(top, start=1):
                if d in relevant:
                    hits += 1
                    total += hits / i
            out[name] = total / n_rel
        elif kind == "RR":
            out[name] = next((1.0 / i for i, d in enumerate(top, start=1) if d in relevant), 0.0)
        else:  # nDCG
            dcg = sum(judged.get(d, 0) / math.log2(i + 1) for i, d in enumerate(top, start=1) if judged.get(d, 0) > 0)
            ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:k]
            idcg = sum(r / math.log2(i + 1) for i, r in enumerate(ideal, start=1))
            out[name] = dcg / idcg if idcg > 0 else 0.0
    return out


def per_query(qrels: Qrels, run: Run, measures: Iterable[str] = DEFAULT_MEASURES) -> dict[str, dict[str, float]]:
    """Scores of every query in ``qrels`` (missing from the run → 0), keyed by query id."""
    measures = list(measures)
    return {qid: _query_scores(rank(run.get(qid, {})), judged, measures) for qid, judged in qrels.items()}


def aggregate(per_query_scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of each measure over queries."""
    if not per_query_scores:
        return {}
    names = next(iter(per_query_scores.values())).keys()
    n = len(per_query_scores)
    return {m: sum(q[m] for q in per_query_scores.values()) / n for m in names}


def evaluate(qrels: Qrels, run: Run, measures: Iterable[str] = DEFAULT_MEASURES) -> dict[str, float]:
    return aggregate(per_query(qrels, run, measures))


def recall_curve(qrels: Qrels, run: Run, ks: Iterable[int]) -> dict[int, float]:
    """Mean Recall@k for each k (for Recall@k plots), with the same semantics."""
    ks = list(ks)
    totals = dict.fromkeys(ks, 0.0)
    for qid, judged in qrels.items():
        relevant = {d for d, r in judged.items() if r >= 1}
        if not relevant:
            continue
        ranking = rank(run.get(qid, {}))
        hits_at, hits = [], 0
        for d in ranking[: max(ks)]:
            hits += d in relevant
            hits_at.append(hits)
        for k in ks:
            got = hits_at[min(k, len(hits_at)) - 1] if hits_at else 0
            totals[k] += got / len(relevant)
    return {k: v / max(1, len(qrels)) for k, v in totals.items()}


def qrels_dict(records: Iterable) -> dict[str, dict[str, int]]:
    """``Qrel`` records → nested dict."""
    out: dict[str, dict[str, int]] = {}
    for q in records:
        out.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
    return out
