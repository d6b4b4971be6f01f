"""The check of a report's scores against the scores a profile expects (``expected:``), as Pyserini's 2CR files
check theirs: CI runs the smoke profile, so a silent change to metrics, data order or training fails it."""

from __future__ import annotations

import json
import math
from pathlib import Path


def check_expected(results_json: Path, expected: dict) -> list[str]:
    """Mismatches between a report's scores and ``expected``, means over seeds as the report prints them:
    ``{lang: {condition: {metric: value}}}`` for MIRACL and ``{"bible-clir": {query encoder: {lang:
    {condition: {metric: value}}}}}`` for the positive control; ``math.isclose`` with an absolute tolerance
    of 5e-5. Empty when everything matches."""
    result = json.loads(Path(results_json).read_text(encoding="utf-8"))
    tables = [("", lang, conds, result["summary"]) for lang, conds in expected.items() if lang != "bible-clir"]
    tables += [(f"bible-clir ({encoder} queries) ", lang, conds, (result.get("clir") or {}).get("summary", {})
                .get(encoder, {})) for encoder, langs in (expected.get("bible-clir") or {}).items()
               for lang, conds in langs.items()]
    out = []
    for label, lang, conds, summary in tables:
        for cond, ms in conds.items():
            for metric, value in ms.items():
                got = ((summary.get(lang) or {}).get(cond) or {}).get(metric, {}).get("mean")
                if got is None or not math.isclose(got, float(value), rel_tol=0, abs_tol=5e-5):
                    out.append(f"{label}{lang} {cond} {metric}: expected {value}, got "
                               f"{'nothing' if got is None else f'{got:.4f}'}")
    return out
