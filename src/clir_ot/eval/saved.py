"""Reading what the evaluation stage saved: one folder per language with ``metrics.json``,
``per_query.json`` and ``run.trec`` (see :mod:`clir_ot.eval.evaluate`), and the document embeddings it
searched. The report and the drift measurement read through here."""

from __future__ import annotations

import json
from pathlib import Path

from ..retrieval.encode import is_complete


def read_evaluation(out: Path) -> dict[str, dict]:
    """``{lang: {"metrics", "per_query", "run", "saved"}}`` under ``out`` (aggregates, per-query scores, the
    run file's path, and the configuration and input hashes it was made from) for each language folder with
    results, in sorted order; ``{}`` when ``out`` is missing."""
    found = {}
    for lang_dir in sorted(p for p in Path(out).glob("*") if (p / "metrics.json").is_file()):
        saved = json.loads((lang_dir / "metrics.json").read_text(encoding="utf-8"))
        found[lang_dir.name] = {
            "metrics": saved["result"]["metrics"],
            "per_query": json.loads((lang_dir / "per_query.json").read_text(encoding="utf-8")),
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
