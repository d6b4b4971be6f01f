"""The pre-registered family: both tests per hypothesis, Holm over the family alone, the verdict."""

from __future__ import annotations

import numpy as np
import pytest

from clir_ot.eval.confirmatory import confirm_family, hypothesis_label

pytestmark = pytest.mark.unit


def entry(matrix: np.ndarray) -> dict:
    return {"per_query": [{f"q{i}": {"nDCG@10": float(v), "R@100": float(v)} for i, v in enumerate(row)}
                          for row in matrix]}


def hyp(a: str, b: str, lang: str = "yo", direction: str | None = "greater") -> dict:
    return {"a": a, "b": b, "benchmark": "miracl", "lang": lang, "measure": "nDCG@10", "direction": direction,
            "query_encoder": None}


@pytest.fixture
def miracl() -> dict:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, size=30)
    seeds = lambda shift, spread: np.array([base + shift + rng.normal(0, spread) for _ in range(4)])  # noqa: E731
    return {"yo": {"strong": entry(seeds(0.2, 0.01)), "weak": entry(seeds(0.0, 0.02)), "b": entry(seeds(0.0, 0.01)),
                   "before": entry(base[None])}}


def test_the_family_is_holm_corrected_alone_and_needs_both_tests(miracl: dict) -> None:
    family = [hyp("strong", "b"), hyp("weak", "b"), hyp("strong", "b", lang="sw")]
    rows = confirm_family(family, miracl, {})
    assert [r["hypothesis"] for r in rows] == ["strong > b: miracl yo nDCG@10", "weak > b: miracl yo nDCG@10",
                                               "strong > b: miracl sw nDCG@10"]
    p1, p2 = rows[0]["p_seed"], rows[1]["p_seed"]
    assert p1 < p2 < 1
    # Holm by hand over the three (the untested one counts with p = 1): 3·p1, max(3·p1, 2·p2), max(…, 1·1)
    assert rows[0]["p_seed_holm"] == pytest.approx(3 * p1)
    assert rows[1]["p_seed_holm"] == pytest.approx(min(1.0, max(3 * p1, 2 * p2)))
    assert rows[2]["p_seed_holm"] == 1.0 and rows[2]["verdict"] == "not tested" and "sw" in rows[2]["reason"]
    assert rows[0]["p_boot_holm"] == pytest.approx(min(1.0, 3 * rows[0]["p_boot"]))
    assert rows[0]["verdict"] == "holds" and rows[1]["verdict"] == "not shown"
    alone = confirm_family(family[:1], miracl, {})[0]  # a family of one: nothing to correct
    assert alone["p_seed_holm"] == pytest.approx(p1) and alone["p_boot_holm"] == alone["p_boot"]
    # the per-seed means are the rows' means over the queries both conditions scored
    a = np.array([[q["nDCG@10"] for q in pq.values()] for pq in miracl["yo"]["strong"]["per_query"]])
    assert rows[0]["seed_means_a"] == pytest.approx(a.mean(axis=1).tolist())
    assert rows[0]["seed_test"] == "Welch t over seeds" and rows[0]["alternative"] == "greater"


def test_a_hypothesis_against_one_run_uses_the_one_sample_t_and_direction_matters(miracl: dict) -> None:
    up, down = confirm_family([hyp("strong", "before"), hyp("strong", "before", direction="less")], miracl, {})
    assert up["seed_test"] == "one-sample t against the single run" and up["df"] == 3.0
    assert up["verdict"] == "holds" and down["verdict"] == "not shown" and down["p_seed"] > 0.9
    two = confirm_family([hyp("strong", "before", direction=None)], miracl, {})[0]
    assert hypothesis_label(two) == "strong ≠ before: miracl yo nDCG@10"
    assert two["p_seed"] == pytest.approx(2 * up["p_seed"])


def test_a_condition_short_of_its_declared_seeds_gets_no_verdict(miracl: dict) -> None:
    from clir_ot.eval.confirmatory import markdown

    family = [hyp("strong", "b"), hyp("strong", "before")]
    rows = confirm_family(family, miracl, {}, {"strong": 5, "b": 4})
    assert [r["verdict"] for r in rows] == ["interim", "interim"] and rows[0]["interim"] == "strong 4 of 5 seeds"
    assert rows[0]["p_boot_holm"] < 0.05  # the statistics are there; the verdict waits for the declared seeds
    text = "\n".join(markdown(rows, None))
    assert "INTERIM: 2 of 2 hypotheses lack seeds" in text and "HOLDS" not in text and "not registered" in text
    complete = confirm_family(family, miracl, {}, {"strong": 4, "b": 4})
    assert [r["verdict"] for r in complete] == ["holds", "holds"]
