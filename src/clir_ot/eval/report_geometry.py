"""The report's geometry section: the readouts of :mod:`clir_ot.eval.geometry` that the reproduce stage saved
for the student before and each student (``probe/geometry/<tag>.json``), means over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..layout import BEFORE, geometry_file, run_tag

#: (group, readout, column heading) in the order the table shows them
COLUMNS = (("passages", "mean_cosine", "passages: mean cos"), ("passages", "pc1_share", "passages: PC1"),
           ("passages", "pc10_share", "passages: PC1-10"), ("queries", "mean_cosine", "queries: mean cos"),
           ("relevance", "cos_relevant", "q·relevant"), ("relevance", "cos_other", "q·other"),
           ("relevance", "gap", "gap"), ("english", "mean_cosine", "English verses: mean cos"))


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def geometry_section(root: Path, exp) -> dict:
    """``{"systems": {system: {column: mean over seeds}}, "lang", "corpus"}`` for the systems with readouts."""
    systems: dict[str, dict] = {}
    found = {BEFORE: [_read(geometry_file(root, BEFORE))]}
    found |= {c: [_read(geometry_file(root, run_tag(c, s))) for s in exp.seeds_of(c)] for c in exp.condition_names()}
    first = None
    for system, records in found.items():
        records = [r for r in records if r]
        if not records:
            continue
        first = first or records[0]
        systems[system] = {"seeds": len(records)} | {
            f"{group}.{key}": float(np.mean(values)) for group, key, _ in COLUMNS
            if (values := [r[group][key] for r in records if key in r.get(group, {})])}
    return {"systems": systems, "lang": first and first["lang"], "corpus": first and first["corpus"]}


def geometry_markdown(section: dict) -> list[str]:
    rows = section["systems"]
    if not rows:
        return []
    lines = ["## Geometry (exploratory)", "",
             f"From each system's saved {section['lang']} passage embeddings ({section['corpus']}), its queries and "
             "500 held-out English verses (encoded as passages); means over seeds. Mean cos: the mean cosine over "
             "all pairs (anisotropy); PC1, PC1-10: the share of the variance on the first principal component(s); "
             "q·relevant, q·other: per query, the mean cosine to its judged relevant passages and to every other "
             "passage searched, averaged over queries; gap = q·relevant − q·other. Readouts, not fitted to "
             "anything.", "", "| system | " + " | ".join(c[2] for c in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for system, r in rows.items():
        cells = [f"{r[f'{g}.{k}']:.4f}" if f"{g}.{k}" in r else "–" for g, k, _ in COLUMNS]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return [*lines, ""]
