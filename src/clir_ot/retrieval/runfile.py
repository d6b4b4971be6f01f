"""TREC run files: ``qid Q0 docid rank score tag``, exactly six whitespace-separated fields.

Written with ranks by score descending, ties broken by doc id descending (trec_eval's own order, so
the rank column agrees with how trec_eval reads the file). Read back with validation: a malformed
line raises an error naming the file and line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..artifacts import atomic_path
from ..errors import ClirOtError
from ..inputs import open_text, reading
from ..ranking import rank


def write_run(path: Path, run: Mapping[str, Mapping[str, float]], tag: str = "clir-ot") -> None:
    """Write ``run`` (query id → doc id → score) atomically, queries in sorted order."""
    tag = "".join(tag.split()) or "clir-ot"
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for qid in sorted(run):
            scores = run[qid]
            for i, doc in enumerate(rank(scores), start=1):
                f.write(f"{qid} Q0 {doc} {i} {scores[doc]:.6f} {tag}\n")


def read_run(path: Path, known_queries: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """Read a run file; wrong column count, a non-numeric score, a duplicate pair, or (given
    ``known_queries``) an unknown query id is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise ClirOtError(f"run file not found: {path}")
    known = set(known_queries) if known_queries is not None else None
    run: dict[str, dict[str, float]] = {}
    with reading(path, "run file"), open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            cols = line.split()
            if len(cols) != 6:
                raise ClirOtError(f"{path}:{n}: expected 6 fields 'qid Q0 docid rank score tag', found {len(cols)}")
            qid, _, doc, rank_s, score_s, _ = cols
            try:
                score = float(score_s)
                int(rank_s)
            except ValueError:
                raise ClirOtError(f"{path}:{n}: rank {rank_s!r} / score {score_s!r} is not numeric") from None
            if not math.isfinite(score):
                raise ClirOtError(f"{path}:{n}: score {score_s!r} is not a finite number")
            if known is not None and qid not in known:
                raise ClirOtError(f"{path}:{n}: unknown query id {qid!r} (not in the topics)")
            if doc in run.setdefault(qid, {}):
                raise ClirOtError(f"{path}:{n}: document {doc!r} appears twice for query {qid!r}")
            run[qid][doc] = score
    return run
