"""`clir-ot compare`: a paired test of two saved evaluations, on real yo BM25 runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import stats
from test_cli import run

from clir_ot.errors import ClirOtError
from clir_ot.eval.compare import compare_evaluations
from clir_ot.eval.significance import holm


@pytest.fixture(scope="module")
def yo_runs(tmp_path_factory):
    """BM25 (Pyserini's tokens) and bm25-strong on yo's full corpus, and BM25 on a reduced pool."""
    root = tmp_path_factory.mktemp("compare")
    for name, args in (("bm25", ["--model", "bm25"]), ("strong", ["--model", "bm25-strong"]),
                       ("bm25-pool", ["--model", "bm25", "--pool", "100"])):
        result = run("eval", "--benchmark", "miracl", "--lang", "yo", *args, "--out", str(root / name))
        assert result.exit_code == 0, result.output
    return root


def per_query(folder, measure):
    scores = json.loads((folder / "yo" / "per_query.json").read_text())
    return np.array([scores[q][measure] for q in sorted(scores)])


def test_the_differences_are_those_of_the_saved_scores_and_the_tests_agree_with_scipy(yo_runs) -> None:
    a, b = yo_runs / "strong", yo_runs / "bm25"
    rows = compare_evaluations(a, b)
    assert [(r.lang, r.measure) for r in rows] == [("yo", m) for m in ("R@100", "AP", "nDCG@10", "RR@10")]
    metrics_a = json.loads((a / "yo" / "metrics.json").read_text())["result"]["metrics"]
    metrics_b = json.loads((b / "yo" / "metrics.json").read_text())["result"]["metrics"]
    for r in rows:
        # Δ is the difference of the aggregates the evaluation printed (bm25-strong − bm25: 0.5988 − 0.4066)
        assert r.n_queries == 119 and r.diff == pytest.approx(metrics_a[r.measure] - metrics_b[r.measure], abs=1e-12)
        assert r.ci_low <= r.diff <= r.ci_high
        x, y = per_query(a, r.measure), per_query(b, r.measure)
        assert r.p_t == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-9)
        oracle = stats.permutation_test((x, y), lambda u, v: np.mean(u - v), permutation_type="samples",
                                        n_resamples=9999, random_state=1).pvalue
        assert r.p_randomization == pytest.approx(oracle, abs=0.02)
    assert [r.p_holm for r in rows] == holm([r.p_randomization for r in rows])
    ndcg = next(r for r in rows if r.measure == "nDCG@10")
    assert ndcg.diff == pytest.approx(0.5988 - 0.4066, abs=1e-4) and ndcg.holds


def test_a_system_against_itself_differs_by_nothing(yo_runs) -> None:
    rows = compare_evaluations(yo_runs / "bm25", yo_runs / "bm25")
    assert all(r.diff == 0 and r.p_randomization == 1 and r.p_holm == 1 and not r.holds for r in rows)


def test_cli_prints_the_table_and_json(yo_runs) -> None:
    result = run("compare", str(yo_runs / "strong"), str(yo_runs / "bm25"), "--lang", "yo")
    assert result.exit_code == 0, result.output
    assert "nDCG@10 119 0.5988 0.4066 +0.1923" in " ".join(result.clean_stdout.split())
    as_json = run("compare", str(yo_runs / "strong"), str(yo_runs / "bm25"), "--json")
    record = json.loads(as_json.stdout)
    assert len(record["comparisons"]) == 4 and all(c["holds"] for c in record["comparisons"])


def test_refuses_what_did_not_search_the_same_thing(yo_runs, tmp_path) -> None:
    with pytest.raises(ClirOtError, match=r"yo: the two evaluations did not search the same thing "
                                          r"\(pool_distractors: 100 vs None\)"):
        compare_evaluations(yo_runs / "bm25-pool", yo_runs / "bm25")
    fewer = tmp_path / "fewer"
    shutil.copytree(yo_runs / "bm25", fewer)
    scores = json.loads((fewer / "yo" / "per_query.json").read_text())
    scores.pop(sorted(scores)[0])
    (fewer / "yo" / "per_query.json").write_text(json.dumps(scores))
    with pytest.raises(ClirOtError, match="scored different queries"):
        compare_evaluations(fewer, yo_runs / "bm25")
    with pytest.raises(ClirOtError, match="not evaluated in both folders; in both: yo"):
        compare_evaluations(yo_runs / "strong", yo_runs / "bm25", ["sw"])
    with pytest.raises(ClirOtError, match="holds no evaluation"):
        compare_evaluations(tmp_path / "missing", yo_runs / "bm25")
    result = run("compare", str(yo_runs / "bm25-pool"), str(yo_runs / "bm25"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not comparable" in result.clean_stderr
