"""Summarise the full-corpus yo evaluations of the cpu-ot students (evaluations/<system>, copied from
`clir-ot eval --out` without their run files) into results.md and comparisons.json.

Run from the repository root: `.venv/bin/python reports/zero_shot_miracl/cpu-ot/full-corpus/summarize.py`.
Each comparison is `clir-ot compare` on the same folders (two-level bootstrap over queries and seeds, 10,000
replicates, seed 0); Holm is then applied across the whole family (every comparison × measure), not within one.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from clir_ot.eval.compare import compare_evaluations, resolve_side
from clir_ot.eval.saved import read_evaluation
from clir_ot.eval.significance import holm

HERE = Path(__file__).parent
EVALUATIONS = HERE / "evaluations"
SYSTEMS = {"before": "before", "KD": "kd-s*", "OT": "ot-s*", "OT, middle layer": "ot-mid-s*"}
COMPARISONS = [("KD", "before"), ("OT", "before"), ("OT, middle layer", "before"), ("OT", "KD"),
               ("OT, middle layer", "KD"), ("OT, middle layer", "OT")]
MEASURES = ("R@100", "AP", "nDCG@10", "RR@10")


def main() -> None:
    sides = {name: resolve_side(EVALUATIONS / pattern) for name, pattern in SYSTEMS.items()}
    lines = ["# Full yo corpus: the cpu-ot students (MIRACL yo dev, 119 queries, 49,043 passages)", "",
             "Written by `summarize.py` from `evaluations/` (each: `clir-ot eval --benchmark miracl --lang yo "
             "--model <student> --precision fp32 --out …`). Mean ± standard deviation over seeds; per-seed values "
             "in parentheses.", "", "| system | seeds | " + " | ".join(MEASURES) + " |", "|---|---|" + "---|" * 4]
    for name, folders in sides.items():
        scores = [read_evaluation(f)["yo"]["metrics"] for f in folders]
        cells = []
        for m in MEASURES:
            values = np.array([s[m] for s in scores])
            spread = f" ± {values.std(ddof=1):.4f} ({', '.join(f'{v:.4f}' for v in values)})" if len(values) > 1 else ""
            cells.append(f"{values.mean():.4f}{spread}")
        lines.append(f"| {name} | {len(folders)} | " + " | ".join(cells) + " |")
    tests = [(a, b, r) for a, b in COMPARISONS for r in compare_evaluations(sides[a], sides[b], ["yo"])]
    for (_, _, r), adjusted in zip(tests, holm([r.p_test for _, _, r in tests]), strict=True):
        r.p_holm = adjusted  # across the family instead of within one comparison
    rows = [{"a": a, "b": b, **asdict(r), "p_test": r.p_test, "holds": r.holds}
            for a, b, r in tests]
    lines += ["", f"## Comparisons (Δ = a − b; two-level bootstrap 95% CI and p; Holm across all {len(rows)} tests)",
              "", "| a | b | measure | Δ | 95% CI | p | p Holm | holds |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['a']} | {r['b']} | {r['measure']} | {r['diff']:+.4f} | [{r['ci_low']:+.4f}, "
                     f"{r['ci_high']:+.4f}] | {r['p_test']:.4f} | {r['p_holm']:.4f} | "
                     f"{'yes' if r['holds'] else 'no'} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (HERE / "comparisons.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
