"""Reading what the evaluation stage saved: one folder per language with ``metrics.json``,
``per_query.json`` and ``run.trec`` (see :mod:`clir_ot.eval.evaluate`), and the document embeddings it
searched. The report, ``compare`` and the drift measurement read through here.

Nothing saved is trusted as it is: ``metrics.json`` records the sha256 of itself (its record without the
hash) and of the files beside it (:func:`record_files`), and :func:`verify_record` checks them before a
number is reused or compared. A record without them (deleted, or written before they existed) is
*unverified*: ``evaluate`` computes it again, and ``compare`` and the report, which have no inputs at hand to
recompute it from, refuse it. Every per-query score must be a finite number as well.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..artifacts import seal, sha256_file
from ..errors import ClirOtError
from ..retrieval.encode import is_complete

#: the files of a language folder whose sha256 ``metrics.json`` records
RECORDED_FILES = ("per_query.json", "run.trec")


def record_sha256(record: dict) -> str:
    """The sha256 of a ``metrics.json`` record without its own ``record_sha256`` (canonical JSON: the seal of
    :func:`~clir_ot.artifacts.seal`)."""
    return seal(record)["record_sha256"]


def record_files(lang_dir: Path) -> dict[str, str]:
    """``{file: sha256}`` of the language folder's recorded files (:data:`RECORDED_FILES`)."""
    return {name: sha256_file(Path(lang_dir) / name) for name in RECORDED_FILES if (Path(lang_dir) / name).is_file()}


def verify_record(lang_dir: Path, record: dict) -> str | None:
    """``None`` when the record and the files it names are as written, else what is wrong (one phrase): a
    changed record or file, or a record without its hashes, which cannot be verified."""
    files = record.get("files")
    if "record_sha256" not in record or not isinstance(files, dict) or set(files) != set(RECORDED_FILES):
        return (f"{Path(lang_dir) / 'metrics.json'} carries no sha256 of itself and of "
                f"{' and '.join(RECORDED_FILES)}, so it cannot be verified")
    if record_sha256(record) != record["record_sha256"]:
        return f"{Path(lang_dir) / 'metrics.json'} does not match its recorded sha256"
    for name, digest in files.items():
        path = Path(lang_dir) / name
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != digest:
            return f"{path} does not match the sha256 that metrics.json recorded for it"
    return None


def _read_json(path: Path) -> dict:
    """A saved JSON mapping, or one line naming the file that is missing, truncated or not a mapping."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClirOtError(f"{path} is missing; evaluate again into {path.parent.parent}") from None
    except (OSError, ValueError) as exc:
        raise ClirOtError(f"{path} cannot be read ({' '.join(str(exc).split())}); evaluate again into "
                          f"{path.parent.parent}") from None
    if not isinstance(data, dict):
        raise ClirOtError(f"{path} is not a mapping; evaluate again into {path.parent.parent}")
    return data


def _finite_scores(path: Path, scores: dict, measures: list[str]) -> dict:
    """``scores`` when every query has a finite number for each of ``measures``, else one line naming it."""
    for qid, row in scores.items():
        lacking = [m for m in measures if not isinstance(row, dict) or m not in row]
        if lacking:
            raise ClirOtError(f"{path}: query {qid} has no {', '.join(lacking)}; evaluate again")
        for measure, value in row.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ClirOtError(f"{path}: query {qid} {measure} is {value!r}, not a finite number; re-run the "
                                  "evaluation")
    return scores


def read_evaluation(out: Path) -> dict[str, dict]:
    """``{lang: {"metrics", "per_query", "run", "saved"}}`` under ``out`` (aggregates, per-query scores, the
    run file's path, and the configuration and input hashes it was made from) for each language folder with
    results, in sorted order; ``{}`` when ``out`` is missing."""
    found = {}
    for lang_dir in sorted(p for p in Path(out).glob("*") if (p / "metrics.json").is_file()):
        saved = _read_json(lang_dir / "metrics.json")
        changed = verify_record(lang_dir, saved)
        if changed:
            raise ClirOtError(f"{changed}: it is not what clir-ot evaluate wrote; evaluate again into {out} (that "
                              "language is recomputed)")
        per_query = lang_dir / "per_query.json"
        found[lang_dir.name] = {
            "metrics": saved["result"]["metrics"],
            "per_query": _finite_scores(per_query, _read_json(per_query), list(saved["result"]["metrics"])),
            "run": lang_dir / "run.trec",
            "saved": {"config": saved.get("config", {}), "inputs": saved.get("inputs", {})}}
    return found


def saved_embeddings(lang_dir: Path) -> Path | None:
    """The finished embeddings directory (a cache entry) that the evaluation in ``lang_dir`` searched, if
    it still exists; ``None`` for BM25, a run file, or an entry cleared since."""
    try:
        saved = json.loads((Path(lang_dir) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = (((saved.get("result") or {}).get("info") or {}).get("embeddings") or {}).get("entry")
    if not entry:
        return None
    return Path(entry) if is_complete(Path(entry)) else None


def collect_evaluations(sources: Iterable[tuple[str, Any, Path]]) -> dict[str, dict[str, dict]]:
    """The one collector of every report section, whatever the benchmark: ``{lang: {system: {"seeds": [metrics],
    "seed_ids": [...], "per_query": [...], "runs": [...]}}}`` from evaluation folders given as ``(system, seed id
    or None, folder)``, each read and verified by :func:`read_evaluation`; a system's seeds in the order given, a
    missing folder contributing nothing."""
    data: dict[str, dict[str, dict]] = {}
    for system, seed, folder in sources:
        for lang, result in read_evaluation(folder).items():
            entry = data.setdefault(lang, {}).setdefault(system, {"seeds": [], "seed_ids": [], "per_query": [],
                                                                  "runs": []})
            entry["seeds"].append(result["metrics"])
            entry["seed_ids"].append(seed)
            entry["per_query"].append(result["per_query"])
            entry["runs"].append(result["run"])
    return data
