"""The partial-pool diagnostic: MIRACL passages recovered from NoMIRACL's prompt files (embedded).

NOT a MIRACL corpus. For sw, te, bn, hi, th (no full corpus offline), the pool is every recovered
passage of the language; the queries are the dev queries with at least one relevant passage among
them; the qrels are restricted to recovered passages (so recall is attainable). Scores on it are a
*diagnostic*, biased and much easier than MIRACL, and are labelled so everywhere.
"""

from __future__ import annotations

import json
import random

from ..errors import DataUnavailableError
from ..resources import resource_path
from . import miracl

LABEL = "partial-pool diagnostic (recovered NoMIRACL passages; NOT MIRACL)"


def load_partial(lang: str, max_passages: int | None = None, seed: int = 0):
    """``(docs, queries, qrels)`` of the diagnostic for ``lang``; ``max_passages`` caps the pool
    (judged passages of the kept queries first, then random others, seeded)."""
    path = resource_path("miracl", "partial", f"nomiracl_partial_passages.{lang}.jsonl.gz")
    if not path.is_file():
        raise DataUnavailableError(f"no recovered passages for {lang!r} (embedded: sw, te, bn, hi, th)")
    import gzip

    docs = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs[row["docid"]] = miracl.Doc(row["docid"], f"{row.get('title_guess') or ''} {row['text']}".strip())
    qrels: dict[str, dict[str, int]] = {}
    for q in miracl.load_qrels(lang, "dev"):
        if q.doc_id in docs:
            qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    qrels = {qid: j for qid, j in qrels.items() if any(r > 0 for r in j.values())}
    queries = [q for q in miracl.load_queries(lang, "dev") if q.query_id in qrels]
    pool = list(docs)
    if max_passages is not None and len(pool) > max_passages:
        judged = sorted({d for j in qrels.values() for d in j})
        others = sorted(set(pool) - set(judged))
        extra = random.Random(f"partial:{lang}:{seed}").sample(others, max(0, max_passages - len(judged)))
        pool = judged[:max_passages] + extra
        keep = set(pool)
        qrels = {qid: {d: r for d, r in j.items() if d in keep} for qid, j in qrels.items()}
        qrels = {qid: j for qid, j in qrels.items() if any(r > 0 for r in j.values())}
        queries = [q for q in queries if q.query_id in qrels]
    return [docs[d] for d in sorted(pool)], queries, qrels
