"""Paired comparison of two saved evaluations (``clir-ot compare A B``).

For each language both folders evaluated and each measure both scored, over the same queries:

- Δ = mean(a) − mean(b) over queries (a, b: per-query scores, trec_eval ``-c`` semantics as saved),
- the percentile bootstrap 95% interval of Δ (10,000 query resamples, seeded),
- the two-sided paired randomization (sign-flip) p-value and the paired t-test's,
- Holm's adjustment of the randomization p-values across every (language, measure) test printed.

One seed per side: query variance only (an experiment's report resamples seeds too). Two evaluations are
compared only when they searched the same thing — benchmark, split, language, topics and qrels (or Bible
editions), corpus, reduced pool and query sample, depth — and scored the same queries; anything else is
refused with one line, since a difference between, say, a reduced pool and the full corpus is not an effect
of the systems. The systems may differ in anything else (model, query encoder, precision, backend, fusion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ClirOtError
from .saved import read_evaluation
from .significance import compare as paired_compare
from .significance import holm

#: Configuration fields that say what was searched and how deep (must match between the two sides).
SEARCH_FIELDS = ("benchmark", "split", "lang", "depth", "pool_distractors", "pool_seed", "query_sample")
#: Recorded input hashes that must match: the judgements (topics and qrels, or Bible editions) and corpus.
INPUT_FIELDS = ("judgements", "corpus")


@dataclass
class MeasureComparison:
    lang: str
    measure: str
    n_queries: int
    mean_a: float
    mean_b: float
    diff: float  # a − b
    ci_low: float
    ci_high: float
    p_randomization: float
    p_t: float
    p_holm: float

    @property
    def holds(self) -> bool:
        """Holm-adjusted p < 0.05 and the interval excludes 0."""
        return self.p_holm < 0.05 and (self.ci_low > 0 or self.ci_high < 0)


def _what_was_searched(folder: Path, lang: str, saved: dict) -> dict:
    config, inputs = saved["config"], saved["inputs"]
    missing = [f for f in SEARCH_FIELDS if f not in config] + [f for f in INPUT_FIELDS if f not in inputs]
    if missing:
        raise ClirOtError(f"{folder / lang / 'metrics.json'} does not record {', '.join(missing)}: "
                          "not written by this version of `clir-ot evaluate`")
    return {**{f: config[f] for f in SEARCH_FIELDS}, **{f: inputs[f] for f in INPUT_FIELDS}}


def compare_evaluations(a: Path, b: Path, langs: list[str] | None = None, seed: int = 0,
                        n_samples: int = 10000) -> list[MeasureComparison]:
    """Compare the evaluation folders ``a`` and ``b`` (written by ``clir-ot evaluate`` or ``reproduce``)
    language by language; ``langs`` restricts the languages (each must be in both)."""
    ev_a, ev_b = read_evaluation(a), read_evaluation(b)
    for folder, found in ((a, ev_a), (b, ev_b)):
        if not found:
            raise ClirOtError(f"{folder} holds no evaluation (no <lang>/metrics.json): give a folder written by "
                              "`clir-ot evaluate --out` or `clir-ot reproduce`")
    common = [lang for lang in ev_a if lang in ev_b]
    if langs:
        absent = [lang for lang in langs if lang not in common]
        if absent:
            raise ClirOtError(f"language(s) {', '.join(absent)} not evaluated in both folders; in both: "
                              f"{', '.join(common) or 'none'}")
        common = [lang for lang in common if lang in langs]
    if not common:
        raise ClirOtError(f"{a} ({', '.join(ev_a)}) and {b} ({', '.join(ev_b)}) have no evaluated language in "
                          "common")
    rows: list[MeasureComparison] = []
    for lang in common:
        searched_a = _what_was_searched(a, lang, ev_a[lang]["saved"])
        searched_b = _what_was_searched(b, lang, ev_b[lang]["saved"])
        differ = [k for k in searched_a if searched_a[k] != searched_b[k]]
        if differ:
            k = differ[0]
            raise ClirOtError(f"{lang}: the two evaluations did not search the same thing ({k}: "
                              f"{searched_a[k]!r} vs {searched_b[k]!r}); their scores are not comparable")
        per_a, per_b = ev_a[lang]["per_query"], ev_b[lang]["per_query"]
        if per_a.keys() != per_b.keys():
            only = sorted(per_a.keys() ^ per_b.keys())
            raise ClirOtError(f"{lang}: the two evaluations scored different queries ({len(only)} in one only, "
                              f"e.g. {only[0]!r})")
        queries = sorted(per_a)
        measures = [m for m in ev_a[lang]["metrics"] if m in ev_b[lang]["metrics"]]
        for measure in measures:
            res = paired_compare([per_a[q][measure] for q in queries], [per_b[q][measure] for q in queries],
                                 seed=seed, n_samples=n_samples)
            rows.append(MeasureComparison(lang, measure, res.n, res.mean_a, res.mean_b, res.mean_diff,
                                          res.ci_low, res.ci_high, res.p_randomization, res.p_t, 1.0))
    for row, adjusted in zip(rows, holm([r.p_randomization for r in rows]), strict=True):
        row.p_holm = adjusted
    return rows
