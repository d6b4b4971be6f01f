"""Paired comparison of two saved systems (``clir-ot compare A B``), each one evaluation or several seeds.

A side is an evaluation folder, or a glob pattern of folders — the seeds of one condition (``'runs/kd-s*'``).
For each language every folder evaluated and each measure every folder scored, over the same queries, with
``a`` and ``b`` the per-query scores (trec_eval ``-c`` semantics as saved) averaged over a side's seeds:

- Δ = mean(a) − mean(b) over queries (= the difference of the sides' mean aggregates),
- the paired randomization (sign-flip) p-value and the paired t-test's over queries, on those seed means,
- one seed per side: the percentile bootstrap 95% interval of Δ (10,000 query resamples, seeded), and the
  randomization p-value is the test;
- several seeds on a side: the two-level bootstrap (:func:`~clir_ot.eval.significance.two_level_bootstrap`:
  queries and each side's seeds resampled, as an experiment's report does) gives the interval and the p-value
  that is the test, so that seed variance enters both,
- Holm's adjustment of the tests' p-values across every (language, measure) row.

Folders are compared only when they searched the same thing — benchmark, split, language, topics and qrels
(or Bible editions), corpus, reduced pool and query sample, depth — and scored the same queries; anything
else is refused with one line, since a difference between, say, a reduced pool and the full corpus is not an
effect of the systems. The systems may differ in anything else (model, query encoder, precision, backend,
fusion).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import sha256_file
from ..errors import ClirOtError
from .saved import read_evaluation
from .significance import compare as paired_compare
from .significance import holm, two_level_bootstrap

#: Configuration fields that say what was searched and how deep (must match between all folders).
SEARCH_FIELDS = ("benchmark", "split", "lang", "depth", "pool_distractors", "pool_seed", "query_sample")
#: Recorded input hashes that must match: the judgements (topics and qrels, or Bible editions) and corpus.
INPUT_FIELDS = ("judgements", "corpus")


@dataclass
class MeasureComparison:
    lang: str
    measure: str
    n_queries: int
    n_seeds_a: int
    n_seeds_b: int
    mean_a: float
    mean_b: float
    diff: float  # a − b
    ci_low: float
    ci_high: float
    p_randomization: float  # over queries, on the seed means
    p_t: float  # likewise
    p_two_level: float | None  # queries and seeds resampled; None with one seed per side
    p_holm: float

    @property
    def p_test(self) -> float:
        """The p-value Holm adjusts: the two-level bootstrap's with several seeds, else the randomization's."""
        return self.p_randomization if self.p_two_level is None else self.p_two_level

    @property
    def holds(self) -> bool:
        """Holm-adjusted p < 0.05 and the interval excludes 0."""
        return self.p_holm < 0.05 and (self.ci_low > 0 or self.ci_high < 0)


def resolve_side(spec: str | Path) -> list[Path]:
    """The folders of one side: ``spec`` itself when it is a folder, else the folders its glob pattern
    matches, sorted; a clear error when it names none."""
    path = Path(spec)
    if path.is_dir():
        return [path]
    matches = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_dir())
    if not matches:
        raise ClirOtError(f"{spec} is neither a folder nor a pattern matching any folder")
    return matches


def _what_was_searched(folder: Path, lang: str, saved: dict) -> dict:
    config, inputs = saved["config"], saved["inputs"]
    if config.get("run_file"):
        raise ClirOtError(f"{folder / lang} scored a run file made outside clir-ot ({config['run_file']}): what it "
                          "searched is not recorded, so it cannot be checked as comparable; compare evaluations that "
                          "clir-ot searched")
    missing = [f for f in SEARCH_FIELDS if f not in config] + [f for f in INPUT_FIELDS if f not in inputs]
    if missing:
        raise ClirOtError(f"{folder / lang / 'metrics.json'} does not record {', '.join(missing)}: "
                          "not written by this version of `clir-ot evaluate`")
    return {**{f: config[f] for f in SEARCH_FIELDS}, **{f: inputs[f] for f in INPUT_FIELDS}}


def _check_comparable(lang: str, evaluations: dict[Path, dict]) -> list[str]:
    """The queries every folder scored for ``lang``, sorted, after checking that all searched the same thing."""
    (first, first_ev), *others = evaluations.items()
    searched = _what_was_searched(first, lang, first_ev[lang]["saved"])
    queries = first_ev[lang]["per_query"].keys()
    for folder, ev in others:
        other = _what_was_searched(folder, lang, ev[lang]["saved"])
        differ = [k for k in searched if searched[k] != other[k]]
        if differ:
            k = differ[0]
            raise ClirOtError(f"{lang}: {first} and {folder} did not search the same thing ({k}: {searched[k]!r} "
                              f"vs {other[k]!r}); their scores are not comparable")
        if ev[lang]["per_query"].keys() != queries:
            only = sorted(ev[lang]["per_query"].keys() ^ queries)
            raise ClirOtError(f"{lang}: {first} and {folder} scored different queries ({len(only)} in one only, "
                              f"e.g. {only[0]!r})")
    return sorted(queries)


def _identity(found: dict) -> tuple[str, ...]:
    """What an evaluation folder holds, by content: the sha256 of each language's run file and per-query scores."""
    out = []
    for lang, entry in sorted(found.items()):
        run = Path(entry["run"])
        out.append(f"{lang}:{sha256_file(run) if run.is_file() else ''}:"
                   f"{sha256_file(run.with_name('per_query.json'))}")
    return tuple(out)


def _refuse_duplicates(side_a: list[Path], side_b: list[Path], evaluations: dict[Path, dict]) -> None:
    """One evaluation never counts twice as seeds of a side (a copy or a link of a seed's folder), and two sides
    holding the same evaluations are not compared (Δ would be 0 by construction). Folders are told apart by
    their run files' and per-query scores' content, not by their paths."""
    identities = {}
    for name, side in (("a", side_a), ("b", side_b)):
        seen: dict[tuple[str, ...], Path] = {}
        for folder in side:
            identity = _identity(evaluations[folder])
            if identity in seen:
                raise ClirOtError(f"{folder} holds the same evaluation as {seen[identity]} (identical run files and "
                                  f"scores) twice on side {name}: each seed's evaluation counts once")
            seen[identity] = folder
        identities[name] = sorted(seen)
    if identities["a"] == identities["b"]:
        raise ClirOtError(f"both sides hold the same evaluation{'s' if len(side_a) > 1 else ''} ({side_a[0]} and "
                          f"{side_b[0]} have identical run files and scores): there is nothing to compare")


def compare_evaluations(a: Path | Sequence[Path], b: Path | Sequence[Path], langs: list[str] | None = None,
                        seed: int = 0, n_samples: int = 10000) -> list[MeasureComparison]:
    """Compare side ``a`` with side ``b`` — each an evaluation folder (written by ``clir-ot evaluate`` or
    ``reproduce``) or a sequence of them, one per seed — language by language; ``langs`` restricts the
    languages (each must be evaluated in every folder)."""
    side_a, side_b = ([a] if isinstance(a, Path) else list(a)), ([b] if isinstance(b, Path) else list(b))
    folders = side_a + side_b
    if not side_a or not side_b:
        raise ClirOtError("each side of a comparison needs at least one evaluation folder")
    for side in (side_a, side_b):
        repeated = next((f for i, f in enumerate(side) if f in side[:i]), None)
        if repeated is not None:
            raise ClirOtError(f"{repeated} is given twice on one side: each seed's evaluation counts once")
    evaluations = {f: read_evaluation(f) for f in dict.fromkeys(folders)}
    for folder, found in evaluations.items():
        if not found:
            raise ClirOtError(f"{folder} holds no evaluation (no <lang>/metrics.json): give a folder written by "
                              "`clir-ot evaluate --out` or `clir-ot reproduce`")
    _refuse_duplicates(side_a, side_b, evaluations)
    common = [lang for lang in evaluations[folders[0]] if all(lang in ev for ev in evaluations.values())]
    if langs:
        absent = [lang for lang in langs if lang not in common]
        if absent:
            raise ClirOtError(f"language(s) {', '.join(absent)} not evaluated in every folder; in all: "
                              f"{', '.join(common) or 'none'}")
        common = [lang for lang in common if lang in langs]
    if not common:
        listing = "; ".join(f"{f} ({', '.join(ev)})" for f, ev in evaluations.items())
        raise ClirOtError(f"the folders have no evaluated language in common: {listing}")
    several_seeds = len(side_a) > 1 or len(side_b) > 1
    rows: list[MeasureComparison] = []
    for lang in common:
        queries = _check_comparable(lang, evaluations)
        measures = [m for m in evaluations[folders[0]][lang]["metrics"]
                    if all(m in ev[lang]["metrics"] for ev in evaluations.values())]
        for measure in measures:
            scores_a, scores_b = ([[evaluations[f][lang]["per_query"][q][measure] for q in queries] for f in side]
                                  for side in (side_a, side_b))
            matrix_a, matrix_b = np.array(scores_a, float), np.array(scores_b, float)
            res = paired_compare(matrix_a.mean(axis=0), matrix_b.mean(axis=0), seed=seed, n_samples=n_samples)
            ci_low, ci_high, p_two_level = res.ci_low, res.ci_high, None
            if several_seeds:
                boot = two_level_bootstrap(matrix_a, matrix_b, n_samples=n_samples, seed=seed)
                ci_low, ci_high, p_two_level = boot["ci_low"], boot["ci_high"], boot["p"]
            rows.append(MeasureComparison(lang, measure, res.n, len(side_a), len(side_b), res.mean_a, res.mean_b,
                                          res.mean_diff, ci_low, ci_high, res.p_randomization, res.p_t,
                                          p_two_level, 1.0))
    for row, adjusted in zip(rows, holm([r.p_test for r in rows]), strict=True):
        row.p_holm = adjusted
    return rows
