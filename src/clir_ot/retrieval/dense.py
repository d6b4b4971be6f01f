"""In-memory dense retrieval evaluation on a given (small) collection: encode, search, score."""

from __future__ import annotations

from collections.abc import Sequence

from ..eval import metrics
from ..models.encoder import Encoder
from .search import exact_search, to_run


def evaluate_collection(encoder: Encoder, docs: Sequence, queries: Sequence, qrels: metrics.Qrels,
                        depth: int = 100, batch_size: int = 32,
                        measures: Sequence[str] = metrics.DEFAULT_MEASURES) -> dict:
    """``{"aggregate", "per_query", "documents", "queries"}`` for ``docs`` (``Doc``) and ``queries`` (``Query``)."""
    d = encoder.encode([doc.text for doc in docs], "passage", batch_size=batch_size)
    q = encoder.encode([x.text for x in queries], "query", batch_size=batch_size)
    scores, idx = exact_search(q, d, depth)
    run = to_run([x.query_id for x in queries], [doc.doc_id for doc in docs], scores, idx)
    per_query = metrics.per_query(qrels, run, measures)
    return {"aggregate": metrics.aggregate(per_query), "per_query": per_query, "documents": len(docs),
            "queries": len(qrels)}
