"""TREC run files: ``qid Q0 docid rank score tag``, exactly six whitespace-separated fields.

Written with ranks by score descending, ties broken by doc id descending (trec_eval's own order, so
the rank column agrees with how trec_eval reads the file). Read back with validation: a malformed
line raises an error naming the file and line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..artifacts import atomic_path, sha256_file, write_json_atomic
from ..errors import ClirOtError
from ..inputs import open_text, read_json_or_none, reading
from ..ranking import rank


def write_run(path: Path, run: Mapping[str, Mapping[str, float]], tag: str = "clir-ot") -> None:
    """Write ``run`` (query id → doc id → score) atomically, queries in sorted order."""
    tag = "".join(tag.split()) or "clir-ot"
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for qid in sorted(run):
            scores = run[qid]
            for i, doc in enumerate(rank(scores), start=1):
                f.write(f"{qid} Q0 {doc} {i} {scores[doc]:.6f} {tag}\n")


def record_path(path: Path) -> Path:
    """The record ``clir-ot index`` writes beside a run file (``run.trec.json``)."""
    return Path(path).with_name(Path(path).name + ".json")


def write_run_record(path: Path, searched: dict) -> None:
    """Record the sha256 of the run file at ``path`` and what it searched, beside it (:func:`record_path`)."""
    write_json_atomic(record_path(path), {"sha256": sha256_file(path), "searched": searched})


def read_run(path: Path, known_queries: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """Read a run file; wrong column count, a non-finite score, a duplicate pair, or (given
    ``known_queries``) an unknown query id is an error naming the line. A run file with a record beside it
    (:func:`write_run_record`) must still match the sha256 recorded when it was written."""
    path = Path(path)
    if not path.is_file():
        raise ClirOtError(f"run file not found: {path}")
    record = read_json_or_none(record_path(path))
    if isinstance(record, dict) and record.get("sha256") not in (None, sha256_file(path)):
        raise ClirOtError(f"{path} does not match the sha256 recorded when clir-ot index wrote it "
                          f"({record_path(path).name}): it was changed since; search again")
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
