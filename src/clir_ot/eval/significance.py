"""Paired significance tests over queries, effect sizes, confidence intervals, Holm correction.

- ``paired_t``: Student's paired t-test (``scipy.stats.ttest_rel``), two-sided.
- ``paired_randomization``: sign-flip permutation test of the mean difference (Fisher; Smucker,
  Allan & Carterette, CIKM 2007, recommend it for IR), two-sided, seeded, with the +1 correction
  p = (1 + #{|mean*| ≥ |mean|}) / (1 + n_samples).
- ``bootstrap_ci``: percentile bootstrap CI of the mean difference.
- ``cohens_dz``: mean difference / standard deviation of the differences (paired effect size).
- ``holm``: Holm–Bonferroni adjusted p-values for a family of tests.
- ``mean_ci``: mean, standard deviation and t-based 95% CI over seeds.
- ``two_level_bootstrap``: the headline interval, resampling queries *and* seeds, so that seed variance
  enters it (for a difference of two conditions, or the mean of one); two- or one-sided p.
- ``seed_level_t``: Welch's t test over the per-seed means of two conditions (a one-sample t test against
  a single run), two- or one-sided, with its degrees of freedom: the check that does not lean on queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")


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


def seed_level_t(a: Sequence[float], b: Sequence[float], alternative: Alternative = "two-sided") -> dict:
    r"""Welch's t test of the per-seed means ``a`` against ``b`` (unequal variances; Welch–Satterthwaite degrees
    of freedom), or, when ``b`` is one run (the student before), the one-sample t test of ``a`` against it
    (:math:`n_a - 1` degrees of freedom). ``alternative`` ``greater`` tests a > b. Seeds are the units: unlike
    the two-level bootstrap, no query enters the variance, so three or four seeds give a wide test.

    Returns ``{"t", "df", "p", "test"}``; ``p`` is nan where the test is undefined (fewer than two seeds on a
    side, or no variance at all).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"unknown alternative {alternative!r}; expected one of {ALTERNATIVES}")
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(b) == 1:
        test = "one-sample t against the single run"
        if len(a) < 2 or np.ptp(a) == 0:
            return {"t": float("nan"), "df": float(len(a) - 1), "p": float("nan"), "test": test}
        res = stats.ttest_1samp(a, b[0], alternative=alternative)
    else:
        test = "Welch t over seeds"
        if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
            return {"t": float("nan"), "df": float("nan"), "p": float("nan"), "test": test}
        res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    return {"t": float(res.statistic), "df": float(res.df), "p": float(res.pvalue), "test": test}


def two_level_bootstrap(a: np.ndarray, b: np.ndarray | None = None, n_samples: int = 10000, seed: int = 0,
                        level: float = 0.95, alternative: Alternative = "two-sided") -> dict[str, float]:
    r"""Two-level percentile bootstrap of a mean over seeds and items (queries, or probe paragraphs).

    ``a`` is ``(S_a, Q)``: condition a's score of each item under each seed; ``b`` likewise ``(S_b, Q)``
    with the same items in the same order (``S_b = 1`` for a single run such as the student before), or
    ``None`` for the mean of ``a`` alone. Each replicate draws ``Q`` items with replacement — the same
    items for both conditions, which are paired by item — and, independently per condition, ``S`` seeds
    with replacement; its statistic is

    .. math:: \Delta^* = \frac{1}{S_a Q}\sum_{s \in S_a^*}\sum_{q \in Q^*} a_{sq}
              - \frac{1}{S_b Q}\sum_{s \in S_b^*}\sum_{q \in Q^*} b_{sq}.

    Returns the observed statistic (``mean_diff``), the percentile interval (``ci_low``, ``ci_high``), the
    replicates' standard deviation (``se``) and a bootstrap p-value with the +1 correction (for ``b`` given;
    ``nan`` for a single condition): two-sided :math:`\min(1, 2\min(P^*(\Delta^* \le 0), P^*(\Delta^* \ge 0)))`;
    ``greater`` (a > b) :math:`P^*(\Delta^* \le 0)`; ``less`` :math:`P^*(\Delta^* \ge 0)`.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"unknown alternative {alternative!r}; expected one of {ALTERNATIVES}")
    a = np.atleast_2d(np.asarray(a, float))
    rng = np.random.default_rng(seed)
    n_items = a.shape[1]
    items = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n_samples) / n_items  # (n, Q) weights

    def replicate_means(x: np.ndarray) -> np.ndarray:
        seeds = rng.multinomial(x.shape[0], np.full(x.shape[0], 1 / x.shape[0]), size=n_samples) / x.shape[0]
        return np.einsum("ns,sq,nq->n", seeds, x, items)

    stat = replicate_means(a)
    observed = float(a.mean())
    p = float("nan")
    if b is not None:
        b = np.atleast_2d(np.asarray(b, float))
        if b.shape[1] != n_items:
            raise ValueError(f"a and b must score the same items: {n_items} vs {b.shape[1]}")
        stat = stat - replicate_means(b)
        observed -= float(b.mean())
        below, above = np.sum(stat <= 0), np.sum(stat >= 0)
        if alternative == "two-sided":
            p = float(min(1.0, 2 * (1 + min(below, above)) / (1 + n_samples)))
        else:
            p = float((1 + (below if alternative == "greater" else above)) / (1 + n_samples))
    lo, hi = np.quantile(stat, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean_diff": observed, "ci_low": float(lo), "ci_high": float(hi), "se": float(stat.std(ddof=1)),
            "p": p, "n_items": n_items, "n_seeds_a": int(a.shape[0]),
            "n_seeds_b": int(b.shape[0]) if b is not None else 0}


def seed_and_query_tests(a: np.ndarray, b: np.ndarray, alternative: Alternative = "two-sided") -> dict:
    """Both tests of a − b for two conditions' ``(seeds, queries)`` scores on the same queries: the two-level
    bootstrap (:func:`two_level_bootstrap`: queries and seeds resampled) and the t test over the per-seed means
    (:func:`seed_level_t`: seeds are the units). Every comparison of conditions in a report goes through here.

    Returns ``{"bootstrap": {...}, "seed": {"t", "df", "p", "test"}, "seed_means_a": [...], "seed_means_b": [...]}``.
    """
    means_a, means_b = a.mean(axis=1).tolist(), b.mean(axis=1).tolist()
    return {"bootstrap": two_level_bootstrap(a, b, alternative=alternative),
            "seed": seed_level_t(means_a, means_b, alternative), "seed_means_a": means_a, "seed_means_b": means_b}
