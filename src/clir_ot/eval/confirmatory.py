"""The pre-registered hypotheses of an experiment, tested as one confirmatory family.

Each hypothesis (:func:`clir_ot.experiment.normalise_hypotheses`) names conditions ``a`` and ``b``, a
benchmark, a language, a measure and optionally a direction. It is tested twice on the same per-query scores:

- the **two-level bootstrap** over queries and seeds (:func:`~.significance.two_level_bootstrap`): Δ = a − b,
  its 95% interval and p, one-sided where a direction is declared;
- the **seed-level t test** over the per-seed means (:func:`~.significance.seed_level_t`: Welch, or one-sample
  against a single run such as the student before), the check whose variance comes from seeds alone.

Both p-values are Holm-adjusted over the family alone (a hypothesis that cannot be tested counts with p = 1,
so the family's size never shrinks). A hypothesis **holds** only when both adjusted p-values are below
:data:`ALPHA`; everything else the report tests is exploratory. While a condition has fewer seeds than the
experiment declares, its hypotheses are **interim**: the statistics are shown, no verdict is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .significance import holm, seed_and_query_tests

ALPHA = 0.05
#: a declared direction → the alternative of both tests
ALTERNATIVE = {"greater": "greater", "less": "less", None: "two-sided"}


def hypothesis_label(h: dict[str, Any]) -> str:
    """``ot-mid > kd-mid: miracl yo nDCG@10`` (``≠`` for a two-sided hypothesis)."""
    sign = {"greater": ">", "less": "<", None: "≠"}[h["direction"]]
    queries = f" ({h['query_encoder']} queries)" if h.get("query_encoder") else ""
    return f"{h['a']} {sign} {h['b']}: {h['benchmark']} {h['lang']} {h['measure']}{queries}"


def scores(entry: dict, qids: list[str], measure: str) -> np.ndarray:
    """``(seeds, queries)`` scores of one condition (its per-query files, seeds in the order collected)."""
    return np.array([[pq[q][measure] for q in qids] for pq in entry["per_query"]], dtype=float)


def paired_scores(a: dict, b: dict, measure: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The ``(seeds, queries)`` scores of two conditions on the queries both scored, and those queries."""
    qids = sorted(set(a["per_query"][0]) & set(b["per_query"][0]))
    return scores(a, qids, measure), scores(b, qids, measure), qids


def paired_tests(a: dict, b: dict, measure: str, alternative: str = "two-sided") -> dict[str, Any]:
    """Both tests of a − b on the queries that both conditions scored, and each condition's per-seed means."""
    A, B, qids = paired_scores(a, b, measure)
    tests = seed_and_query_tests(A, B, alternative)
    boot, seed = tests["bootstrap"], tests["seed"]
    return {"queries": len(qids), "seed_means_a": tests["seed_means_a"], "seed_means_b": tests["seed_means_b"],
            "mean_a": float(A.mean()), "mean_b": float(B.mean()), "mean_diff": boot["mean_diff"],
            "ci_low": boot["ci_low"], "ci_high": boot["ci_high"], "p_boot": boot["p"], "t": seed["t"],
            "df": seed["df"], "p_seed": seed["p"], "seed_test": seed["test"], "alternative": alternative}


def _conditions(h: dict, miracl: dict, clir: dict) -> dict:
    """The collected conditions a hypothesis reads: MIRACL's ``{lang: {condition: entry}}`` or bible-clir's
    ``{query encoder: {lang: {system: entry}}}``."""
    if h["benchmark"] == "miracl":
        return miracl.get(h["lang"], {})
    return clir.get(h["query_encoder"], {}).get(h["lang"], {})


def confirm_family(hypotheses: list[dict], miracl: dict, clir: dict,
                   declared_seeds: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per hypothesis, in declared order: both tests, their Holm-adjusted p-values over the family, and
    the verdict (``holds``, ``not shown``, ``interim`` while a condition has fewer seeds than
    ``declared_seeds[condition]``, or ``not tested`` with the reason)."""
    rows = []
    for h in hypotheses:
        conds = _conditions(h, miracl, clir)
        row: dict[str, Any] = {"hypothesis": hypothesis_label(h), **h}
        short = {c: (len(conds[c]["per_query"]), (declared_seeds or {})[c]) for c in (h["a"], h["b"])
                 if c in conds and len(conds[c]["per_query"]) < (declared_seeds or {}).get(c, 0)}
        missing = [c for c in (h["a"], h["b"]) if c not in conds]
        if missing:
            row |= {"status": "not tested", "reason": f"no {h['benchmark']} {h['lang']} results of "
                                                      f"{', '.join(missing)}", "p_boot": 1.0, "p_seed": 1.0}
        else:
            row |= {"status": "tested", **paired_tests(conds[h["a"]], conds[h["b"]], h["measure"],
                                                       ALTERNATIVE[h["direction"]])}
            if short:
                row["interim"] = ", ".join(f"{c} {k} of {n} seeds" for c, (k, n) in short.items())
        rows.append(row)
    for key in ("p_boot", "p_seed"):
        values = [1.0 if not np.isfinite(r[key]) else r[key] for r in rows]
        for row, adjusted in zip(rows, holm(values) if rows else [], strict=True):
            row[f"{key}_holm"] = adjusted
    for row in rows:
        if row["status"] != "tested":
            row["verdict"] = "not tested"
        elif row.get("interim"):
            row["verdict"] = "interim"
        elif row["p_boot_holm"] < ALPHA and row["p_seed_holm"] < ALPHA:
            row["verdict"] = "holds"
        else:
            row["verdict"] = "not shown"
    return rows


def markdown(rows: list[dict], registration: dict | None) -> list[str]:
    """The report's first section: the verdict of each pre-registered hypothesis with both statistics."""
    if not rows:
        return []
    held = [r for r in rows if r["verdict"] == "holds"]
    interim = [r for r in rows if r["verdict"] == "interim"]
    reg = (f"registered in the run folder's `manifest.json` at commit `{str(registration.get('commit'))[:12]}`"
           f"{' (uncommitted changes)' if registration.get('dirty') else ''}, {registration.get('registered')}, "
           f"family sha256 `{registration['hypotheses_sha256'][:16]}…`" if registration else
           "**not registered** in the run folder (this report was written without `reproduce`'s registration)")
    verdict = (f"**INTERIM: {len(interim)} of {len(rows)} hypotheses lack seeds the experiment declares "
               f"({interim[0]['interim']}); no verdict is given until the run is complete.**" if interim else
               f"{len(held)} of {len(rows)} hold.")
    L = ["## Pre-registered hypotheses (confirmatory)", "",
         f"{verdict} The family was {reg}. Each hypothesis is tested by the two-level "
         "bootstrap over queries and seeds (Δ = a − b, 95% interval, p) and by a t test over the per-seed means "
         "(Welch; one-sample against a single run such as the student before); one-sided where a direction is "
         f"declared. Both p-values are Holm-adjusted over this family alone; a hypothesis **holds** only when both "
         f"adjusted p-values are below {ALPHA}. Every other comparison in this report is exploratory.", "",
         "| hypothesis | verdict | a (per seed) | b (per seed) | Δ (a − b) | 95% CI | p boot | p boot Holm | "
         "t (df) | p seeds | p seeds Holm |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "tested":
            L.append(f"| {r['hypothesis']} | NOT TESTED: {r['reason']} | – | – | – | – | – | – | – | – | – |")
            continue
        seeds = lambda v: ", ".join(f"{x:.4f}" for x in v)  # noqa: E731
        word = f"interim ({r['interim']})" if r["verdict"] == "interim" else r["verdict"].upper()
        L.append(f"| {r['hypothesis']} | **{word}** | {seeds(r['seed_means_a'])} | "
                 f"{seeds(r['seed_means_b'])} | {r['mean_diff']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
                 f"{r['p_boot']:.4f} | {r['p_boot_holm']:.4f} | {r['t']:.2f} ({r['df']:.1f}) | {r['p_seed']:.4f} | "
                 f"{r['p_seed_holm']:.4f} |")
    return L + [""]
