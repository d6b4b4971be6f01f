"""Statistics against scipy.stats on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from clir_ot.eval import significance as sig

pytestmark = pytest.mark.unit


@pytest.fixture
def paired() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=200)
    return a, np.clip(a - 0.03 + rng.normal(scale=0.1, size=200), 0, 1)


def test_paired_t_equals_scipy(paired) -> None:
    a, b = paired
    t, p = sig.paired_t(a, b)
    ref = stats.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-12)
    assert sig.paired_t(a, a) == (0.0, 1.0)


def test_randomization_agrees_with_scipy_permutation_test(paired) -> None:
    a, b = paired
    ours = sig.paired_randomization(a, b, n_samples=20000, seed=1)
    ref = stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                 n_resamples=20000, random_state=1).pvalue
    assert ours == pytest.approx(ref, abs=0.01)
    assert sig.paired_randomization(a, a) == 1.0
    exact = sig.paired_randomization([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], n_samples=50000, seed=0)
    assert exact == pytest.approx(2 / 8, abs=0.01)  # 2 of 8 sign patterns reach |mean| = 2


def test_bootstrap_ci_equals_scipy_percentile(paired) -> None:
    a, b = paired
    lo, hi = sig.bootstrap_ci(a, b, n_samples=20000, seed=0)
    ref = stats.bootstrap(((a - b),), np.mean, n_resamples=20000, method="percentile", random_state=0)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=2e-3)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=2e-3)
    assert lo < np.mean(a - b) < hi


def test_cohens_dz_and_mean_ci() -> None:
    d = np.array([0.1, 0.3, 0.2, 0.4])
    assert sig.cohens_dz(d, np.zeros(4)) == pytest.approx(d.mean() / d.std(ddof=1))
    ci = sig.mean_ci([0.70, 0.72, 0.74])
    half = stats.t.ppf(0.975, 2) * np.std([0.70, 0.72, 0.74], ddof=1) / np.sqrt(3)
    assert ci["mean"] == pytest.approx(0.72) and ci["ci_high"] - ci["mean"] == pytest.approx(half)
    assert sig.mean_ci([0.5]) == {"mean": 0.5, "std": 0.0, "ci_low": 0.5, "ci_high": 0.5, "n": 1}


def test_holm_matches_the_textbook_procedure() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert sig.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert sig.holm([0.9, 0.8]) == [1.0, 1.0]


def test_two_level_bootstrap_equals_the_exact_resampling_distribution() -> None:
    """2 seeds × 3 queries against a single run: all 3³ query draws × 2² seed draws enumerated directly."""
    import itertools

    a = np.array([[0.2, 0.9, 0.4], [0.6, 0.5, 1.0]])
    b = np.array([[0.3, 0.4, 0.5]])
    exact = []
    for q in itertools.product(range(3), repeat=3):
        for s in itertools.product(range(2), repeat=2):
            exact.append(np.mean([a[si, qi] for si in s for qi in q]) - np.mean([b[0, qi] for qi in q]))
    exact = np.array(exact)
    res = sig.two_level_bootstrap(a, b, n_samples=200000, seed=3)
    assert res["mean_diff"] == pytest.approx(a.mean() - b.mean())
    assert res["se"] == pytest.approx(exact.std(), rel=0.01)
    lo, hi = np.quantile(exact, [0.025, 0.975])
    assert res["ci_low"] == pytest.approx(lo, abs=0.02) and res["ci_high"] == pytest.approx(hi, abs=0.02)
    p_exact = min(1.0, 2 * min(np.mean(exact <= 0), np.mean(exact >= 0)))
    assert res["p"] == pytest.approx(p_exact, abs=0.01)


def test_seed_variance_widens_the_two_level_interval() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(size=300)
    steady = np.stack([base + 0.02] * 3)
    shaky = np.stack([base + 0.02 + off for off in (-0.05, 0.0, 0.05)])  # same mean, seeds disagree
    narrow = sig.two_level_bootstrap(steady, base[None, :], seed=0)
    wide = sig.two_level_bootstrap(shaky, base[None, :], seed=0)
    assert narrow["mean_diff"] == pytest.approx(wide["mean_diff"])
    assert wide["ci_high"] - wide["ci_low"] > 3 * (narrow["ci_high"] - narrow["ci_low"])
    alone = sig.two_level_bootstrap(steady)
    assert alone["ci_low"] < steady.mean() < alone["ci_high"] and np.isnan(alone["p"])


def test_seed_level_t_equals_scipy_and_the_textbook_welch_formula() -> None:
    a, b = [0.52, 0.55, 0.50, 0.58], [0.45, 0.47, 0.49]
    ours = sig.seed_level_t(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert ours["t"] == pytest.approx(ref.statistic, rel=1e-12) and ours["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3  # Welch–Satterthwaite by hand
    assert ours["t"] == pytest.approx((np.mean(a) - np.mean(b)) / np.sqrt(va + vb), rel=1e-12)
    assert ours["df"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2), rel=1e-12)
    greater = sig.seed_level_t(a, b, "greater")
    assert greater["p"] == pytest.approx(stats.t.sf(ours["t"], ours["df"]), rel=1e-9)
    assert greater["p"] == pytest.approx(ours["p"] / 2, rel=1e-9) and ours["test"] == "Welch t over seeds"
    assert sig.seed_level_t(a, b, "less")["p"] == pytest.approx(1 - greater["p"], rel=1e-9)
    single = sig.seed_level_t(a, [0.5], "greater")  # against one run: a one-sample t test, n − 1 df
    ref1 = stats.ttest_1samp(a, 0.5, alternative="greater")
    assert (single["t"], single["df"], single["p"]) == pytest.approx((ref1.statistic, 3.0, ref1.pvalue), rel=1e-12)
    assert np.isnan(sig.seed_level_t([0.5], [0.4, 0.3])["p"])  # one seed: no seed-level test
    with pytest.raises(ValueError, match="unknown alternative"):
        sig.seed_level_t(a, b, "bigger")


def test_one_sided_bootstrap_p_is_the_share_of_replicates_on_the_wrong_side() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(size=(3, 40))
    b = a - 0.02 + rng.normal(scale=0.1, size=(3, 40))
    two = sig.two_level_bootstrap(a, b, n_samples=4000)
    greater = sig.two_level_bootstrap(a, b, n_samples=4000, alternative="greater")
    less = sig.two_level_bootstrap(a, b, n_samples=4000, alternative="less")
    assert greater["mean_diff"] == two["mean_diff"] and greater["ci_low"] == two["ci_low"]  # same replicates
    assert greater["p"] + less["p"] == pytest.approx(1 + 1 / 4001, abs=1e-9)  # no replicate is exactly 0
    assert two["p"] == pytest.approx(2 * min(greater["p"], less["p"]), rel=1e-9)


def test_seed_and_query_tests_is_the_bootstrap_and_the_seed_t_of_the_same_scores() -> None:
    from clir_ot.eval.significance import seed_and_query_tests, seed_level_t, two_level_bootstrap

    rng = np.random.default_rng(3)
    a, b = rng.random((4, 30)) + 0.05, rng.random((3, 30))
    both = seed_and_query_tests(a, b, "greater")
    assert both["seed_means_a"] == a.mean(axis=1).tolist() and both["seed_means_b"] == b.mean(axis=1).tolist()
    assert both["bootstrap"] == two_level_bootstrap(a, b, alternative="greater")
    assert both["seed"] == seed_level_t(a.mean(axis=1), b.mean(axis=1), "greater")
    assert both["seed"]["test"] == "Welch t over seeds"
    assert seed_and_query_tests(a, b[:1])["seed"]["test"] == "one-sample t against the single run"
