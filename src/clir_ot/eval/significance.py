"""Paired significance tests over queries, effect sizes, confidence intervals, Holm correction.

- ``paired_t``: Student's paired t-test (``scipy.stats.ttest_rel``), two-sided.
- ``paired_randomization``: sign-flip permutation test of the mean difference (Fisher; Smucker,
  Allan & Carterette, CIKM 2007, recommend it for IR), two-sided, seeded, with the +1 correction
  p = (1 + #{|mean*| ≥ |mean|}) / (1 + n_samples).
- ``bootstrap_ci``: percentile bootstrap CI of the mean difference.
- ``cohens_dz``: mean difference / standard deviation of the differences (paired effect size).
- ``holm``: Holm–Bonferroni adjusted p-values for a family of tests.
- ``mean_ci``: mean, standard deviation and t-based 95% CI over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass
class PairedResult:
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float  # a − b
    t_stat: float
    p_t: float
    p_randomization: float
    ci_low: float
    ci_high: float
    cohens_dz: float

    def to_dict(self) -> dict:
        return asdict(self)


def paired_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    if len(d) < 2 or np.allclose(d, d[0]):
        return (0.0, 1.0) if np.allclose(d, 0) else (float("inf") * np.sign(d.mean()), 0.0)
    res = stats.ttest_rel(a, b)
    return float(res.statistic), float(res.pvalue)


def paired_randomization(a: Sequence[float], b: Sequence[float], n_samples: int = 10000, seed: int = 0) -> float:
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) == 0 or np.allclose(d, 0):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_samples, len(d)))
    observed = abs(d.mean())
    extreme = np.sum(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12)
    return float((1 + extreme) / (1 + n_samples))


def bootstrap_ci(a: Sequence[float], b: Sequence[float], n_samples: int = 10000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_samples, len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def cohens_dz(a: Sequence[float], b: Sequence[float]) -> float:
    d = np.asarray(a, float) - np.asarray(b, float)
    sd = d.std(ddof=1) if len(d) > 1 else 0.0
    return float(d.mean() / sd) if sd > 0 else 0.0


def compare(a: Sequence[float], b: Sequence[float], seed: int = 0, n_samples: int = 10000) -> PairedResult:
    """All paired statistics of ``a`` vs ``b`` (same queries, same order)."""
    t, p_t = paired_t(a, b)
    lo, hi = bootstrap_ci(a, b, n_samples, seed)
    return PairedResult(len(a), float(np.mean(a)), float(np.mean(b)), float(np.mean(a) - np.mean(b)), t, p_t,
                        paired_randomization(a, b, n_samples, seed), lo, hi, cohens_dz(a, b))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (monotone, capped at 1), in input order."""
    p = np.asarray(pvalues, float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, sample std and the t-distribution CI of the mean over seeds."""
    x = np.asarray(values, float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * std / np.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}
