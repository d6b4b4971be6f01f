"""The report's bible-clir sections: the positive control, seen vs unseen languages, the lexical baselines.

Reads ``clir/<system>/<query encoder>/`` (written by ``reproduce``) and nothing else. Every condition is
compared with the student before distillation under the same query encoder, per language, with the
two-level bootstrap over queries (verses) and seeds, Holm-adjusted across the section's tests. Languages
are *seen* when the students trained on them (the distillation manifest's training languages) and
*unseen* otherwise; the excluded MIRACL languages (sw, hi, bn here) are unseen by construction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.benchmarks import get_benchmark
from ..data.bible import HELD_OUT_LABEL
from ..languages import EVAL_LANGUAGES
from ..layout import BEFORE, CLIR_LEXICAL, clir_dir, layer_suffix, run_tag, token_probe_file
from .confirmatory import paired_scores
from .saved import collect_evaluations
from .significance import holm, mean_ci, seed_and_query_tests, two_level_bootstrap

#: The measures the section shows (bible-clir has one relevant verse per query: MRR@10 ≈ precision at the top).
MEASURES = ("R@1", "RR@10")


def collect_clir(root: Path, exp) -> dict[str, dict[str, dict[str, dict]]]:
    """``{query encoder: {lang: {system: entry}}}`` (:func:`~clir_ot.eval.saved.collect_evaluations`); systems are
    ``before``, the BM25 variants (student-encoded queries only) and each condition over its seeds."""
    systems: list[tuple[str, Any, str]] = [(BEFORE, None, BEFORE), *((b, None, b) for b in CLIR_LEXICAL)]
    systems += [(c, s, run_tag(c, s)) for c in exp.condition_names() for s in exp.seeds_of(c)]
    data = {encoder: collect_evaluations([(name, seed, clir_dir(root, tag, encoder)) for name, seed, tag in systems])
            for encoder in exp.clir_query_encoders}
    return {encoder: by_lang for encoder, by_lang in data.items() if by_lang}


def _gain(entry: dict, before: dict, metric: str) -> dict:
    a, b, _ = paired_scores(entry, before, metric)
    tests = seed_and_query_tests(a, b)
    seed = tests["seed"]
    return tests["bootstrap"] | {"seed_means_a": tests["seed_means_a"], "seed_means_b": tests["seed_means_b"],
                                 "t_seeds": seed["t"], "df_seeds": seed["df"], "p_seeds": seed["p"]}


def clir_section(root: Path, exp, seen_langs: list[str]) -> dict:
    """Means per system and language, each condition's gain over ``before`` (intervals, Holm), the declared
    comparisons between two conditions (``between``, Holm), and per condition the mean gain on unseen and
    seen languages and their ratio (unseen ÷ seen)."""
    data = collect_clir(root, exp)
    summary = {enc: {lang: {name: {m: mean_ci([s[m] for s in entry["seeds"]]) for m in MEASURES}
                            for name, entry in systems.items()} for lang, systems in langs.items()}
               for enc, langs in data.items()}
    gains = []
    for enc, langs in data.items():
        for lang, systems in langs.items():
            if BEFORE not in systems:
                continue
            for name in exp.condition_names():
                if name in systems:
                    for m in MEASURES:
                        gains.append({"query_encoder": enc, "lang": lang, "condition": name, "metric": m,
                                      **_gain(systems[name], systems[BEFORE], m)})
    for row, adjusted in zip(gains, holm([g["p"] for g in gains]), strict=True):
        row["p_holm"] = adjusted
    between = []  # the declared comparisons of two conditions (those with before are the gains above)
    for a, b in [c for c in exp.comparisons() if BEFORE not in c]:
        for enc, by_lang in data.items():
            for lang, systems in by_lang.items():
                if a in systems and b in systems:
                    for m in MEASURES:
                        between.append({"query_encoder": enc, "lang": lang, "comparison": f"{a} vs {b}", "metric": m,
                                        **_gain(systems[a], systems[b], m)})
    for row, adjusted in zip(between, holm([g["p"] for g in between]), strict=True):
        row["p_holm"] = adjusted
    langs = [lang for lang in exp.clir_langs if any(lang in v for v in data.values())]
    seen = [lang for lang in langs if lang in seen_langs]
    unseen = [lang for lang in langs if lang not in seen_langs]
    transfer = []
    for enc in data:
        for name in exp.condition_names():
            for m in MEASURES:
                by_lang = {g["lang"]: g["mean_diff"] for g in gains
                           if g["query_encoder"] == enc and g["condition"] == name and g["metric"] == m}
                if not by_lang:
                    continue
                g_seen = float(np.mean([by_lang[x] for x in seen if x in by_lang])) if seen else float("nan")
                g_unseen = float(np.mean([by_lang[x] for x in unseen if x in by_lang])) if unseen else float("nan")
                ratio = g_unseen / g_seen if g_seen > 0 else float("nan")
                transfer.append({"query_encoder": enc, "condition": name, "metric": m, "seen_gain": g_seen,
                                 "unseen_gain": g_unseen, "ratio": ratio})
    return {"summary": summary, "gains": gains, "between": between, "transfer": transfer, "seen": seen,
            "unseen": unseen}


def clir_collection_label(exp) -> str:
    """What each language's bible-clir run searched, in words (the same for every language)."""
    bench = get_benchmark("bible-clir")
    books = f"the held-out books {HELD_OUT_LABEL}"
    if exp.clir_pool is None and not exp.clir_queries:
        counts = ", ".join(f"{lang} {bench.slot_counts(lang)['kept']:,}" for lang in exp.clir_langs)
        return (f"Every verse of {books} per language ({counts} verses after dropping the slots an edition "
                "leaves empty), each English (KJV) verse a query")
    return f"{books}: " + bench.corpus_label(exp.clir_langs[0], exp.clir_pool, 0, exp.clir_queries)


def clir_markdown(section: dict, label: str) -> list[str]:
    """The report's bible-clir sections as Markdown lines."""
    if not section["summary"]:
        return []
    seen, unseen = section["seen"], section["unseen"]
    tag = {lang: f"{lang}{' (excluded)' if lang in EVAL_LANGUAGES else ''}" for lang in unseen + seen}
    L = ["## Positive control: bible-clir (English queries → verses in x)", "",
         f"{label}. Unseen languages: {', '.join(tag[x] for x in unseen) or 'none'}; seen in training: "
         f"{', '.join(seen) or 'none'}. Queries encoded by the student itself or by the frozen English teacher "
         "(OPTICAL's shape). Mean over seeds (± std where several).", ""]
    for enc, langs in section["summary"].items():
        order = [x for x in unseen + seen if x in langs]
        systems = list(dict.fromkeys(name for x in order for name in langs[x]))
        for m in MEASURES:
            L += [f"**{m}, queries encoded by the {enc}**", "",
                  "| system | " + " | ".join(tag[x] for x in order) + " |", "|---|" + "---|" * len(order)]
            for name in systems:
                cells = []
                for x in order:
                    s = langs[x].get(name, {}).get(m)
                    spread = f" ± {s['std']:.4f}" if s is not None and s["n"] > 1 else ""
                    cells.append("–" if s is None else f"{s['mean']:.4f}{spread}")
                L.append(f"| {name} | " + " | ".join(cells) + " |")
            L.append("")
    L += ["**Gain over the student before** (two-level bootstrap over verses and seeds, 95% CI; Holm across the "
          "section's tests; beside it the t test over the per-seed means against the single run before):", "",
          "| queries | condition | lang | metric | Δ | 95% CI | p Holm | t (df) | p seeds |",
          "|---|---|---|---|---|---|---|---|---|"]
    for g in section["gains"]:
        L.append(f"| {g['query_encoder']} | {g['condition']} | {tag.get(g['lang'], g['lang'])} | {g['metric']} | "
                 f"{g['mean_diff']:+.4f} | [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] | {g['p_holm']:.4f} | "
                 f"{g['t_seeds']:.2f} ({g['df_seeds']:.1f}) | {g['p_seeds']:.4f} |")
    held = [g for g in section["gains"] if g["p_holm"] < 0.05]
    L += ["", f"{len(held)} of {len(section['gains'])} gains hold after Holm"
          + (": " + "; ".join(f"{g['condition']} {g['lang']} {g['metric']} {g['mean_diff']:+.4f} "
                              f"({g['query_encoder']} queries)" for g in held) if held else "") + ".", ""]
    if section.get("between"):
        L += ["**Declared comparisons between conditions** (a − b, paired by verse; Holm across them; Welch t over "
              "the per-seed means):", "",
              "| queries | comparison | lang | metric | Δ | 95% CI | p Holm | t (df) | p seeds |",
              "|---|---|---|---|---|---|---|---|---|"]
        for g in section["between"]:
            L.append(f"| {g['query_encoder']} | {g['comparison']} | {tag.get(g['lang'], g['lang'])} | {g['metric']} | "
                     f"{g['mean_diff']:+.4f} | [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] | {g['p_holm']:.4f} | "
                     f"{g['t_seeds']:.2f} ({g['df_seeds']:.1f}) | {g['p_seeds']:.4f} |")
        L.append("")
    L += ["## Seen vs unseen languages", "",
          "Mean gain over the student before on the unseen and on the seen languages, and their ratio (how much "
          "of what a method learns on its training languages transfers to languages it never saw; undefined when "
          "the seen gain is not positive).", "",
          "| queries | condition | metric | unseen gain | seen gain | unseen ÷ seen |", "|---|---|---|---|---|---|"]
    for t in section["transfer"]:
        ratio = "–" if np.isnan(t["ratio"]) else f"{t['ratio']:.2f}"
        L.append(f"| {t['query_encoder']} | {t['condition']} | {t['metric']} | {t['unseen_gain']:+.4f} | "
                 f"{t['seen_gain']:+.4f} | {ratio} |")
    L.append("")
    return L


def token_section(root: Path, exp) -> dict:
    """Per system and language: the share of English words whose OT partner / nearest student word is a
    lexicon translation, with a two-level bootstrap interval over words and seeds, and each condition's
    difference from the student before read at the same layers (``before``, ``before-layer6``: paired by word;
    Holm across the section's tests)."""
    befores = [BEFORE + layer_suffix(*layers) for layers in exp.probe_layer_pairs()]
    baseline = {c: BEFORE + layer_suffix(*exp.aligned_layers(c)) for c in exp.condition_names()}
    systems = [(b, [b]) for b in befores] + [(c, [run_tag(c, s) for s in exp.seeds_of(c)])
                                             for c in exp.condition_names()]
    hits: dict[str, dict[str, dict[str, list]]] = {}
    for name, tags in systems:
        for tag in tags:
            path = token_probe_file(root, tag)
            if path.is_file():
                for lang, r in json.loads(path.read_text(encoding="utf-8"))["results"].items():
                    for kind in ("ot", "nearest"):
                        hits.setdefault(kind, {}).setdefault(lang, {}).setdefault(name, []).append(r[f"{kind}_hits"])
    summary, diffs = {}, []
    for kind, langs in hits.items():
        for lang, by_system in langs.items():
            for name, seeds in by_system.items():
                boot = two_level_bootstrap(np.array(seeds)) if seeds[0] else None
                summary.setdefault(kind, {}).setdefault(lang, {})[name] = {
                    "mean": float(np.mean(seeds)) if seeds[0] else float("nan"), "n_seeds": len(seeds),
                    "words": len(seeds[0]), "ci": [boot["ci_low"], boot["ci_high"]] if boot else None}
                reference = baseline.get(name)
                if reference in by_system and seeds[0]:
                    diffs.append({"kind": kind, "lang": lang, "condition": name, "before": reference,
                                  **two_level_bootstrap(np.array(seeds), np.array(by_system[reference]))})
    for row, adjusted in zip(diffs, holm([d["p"] for d in diffs]), strict=True):
        row["p_holm"] = adjusted
    return {"summary": summary, "diffs": diffs}


def token_markdown(section: dict) -> list[str]:
    if not section["summary"]:
        return []
    L = ["## Token alignment (held-out verses, FreeDict lexicons)", "",
         "Share of English words (with a lexicon translation in the x verse) whose partner is a translation: "
         "**OT** = the x word receiving most of the word's mass in the OT plan teacher(en) → student(x); "
         "**nearest** = the x word nearest in cosine. Mean with a two-level bootstrap 95% interval over words "
         "and seeds. Each condition is read at the layers it aligned and compared with the student before read "
         "there (`before-layer6`: the student before at layer 6).", ""]
    for kind, langs in section["summary"].items():
        order = list(langs)
        systems = list(dict.fromkeys(n for lg in order for n in langs[lg]))
        L += [f"**{kind} partner**", "", "| system | " + " | ".join(
            f"{lg} ({langs[lg][systems[0]]['words']} words)" for lg in order) + " |", "|---|" + "---|" * len(order)]
        for name in systems:
            cells = []
            for lg in order:
                v = langs[lg].get(name)
                cells.append("–" if not v or v["ci"] is None else
                             f"{v['mean']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]")
            L.append(f"| {name} | " + " | ".join(cells) + " |")
        L.append("")
    held = [d for d in section["diffs"] if d["p_holm"] < 0.05]
    L += [f"Differences from before that hold after Holm ({len(held)} of {len(section['diffs'])}): "
          + ("; ".join(f"{d['condition']} − {d['before']} {d['kind']} {d['lang']} {d['mean_diff']:+.3f} "
                       f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" for d in held) or "none") + ".", ""]
    return L
