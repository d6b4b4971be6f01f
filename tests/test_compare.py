"""`clir-ot compare`: a paired test of two saved systems (one evaluation or several seeds each), on real yo
BM25 runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import stats
from test_cli import run

from clir_ot.errors import ClirOtError
from clir_ot.eval.compare import compare_evaluations
from clir_ot.eval.significance import holm, two_level_bootstrap

pytestmark = pytest.mark.integration


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


def test_a_system_against_itself_differs_by_nothing_and_is_refused(yo_runs) -> None:
    from clir_ot.eval.significance import compare as paired_compare

    for measure in ("R@100", "nDCG@10"):
        x = per_query(yo_runs / "bm25", measure)
        same = paired_compare(x, x)
        assert same.mean_diff == 0 and same.p_randomization == 1
    with pytest.raises(ClirOtError, match="both sides hold the same evaluation"):
        compare_evaluations(yo_runs / "bm25", yo_runs / "bm25")


def test_cli_prints_the_table_and_json(yo_runs) -> None:
    result = run("compare", str(yo_runs / "strong"), str(yo_runs / "bm25"), "--lang", "yo")
    assert result.exit_code == 0, result.output
    assert "nDCG@10 119 0.5988 0.4066 +0.1923" in " ".join(result.clean_stdout.split())
    as_json = run("compare", str(yo_runs / "strong"), str(yo_runs / "bm25"), "--json")

    def strict(constant: str):
        raise AssertionError(f"--json printed the non-JSON constant {constant}")

    record = json.loads(as_json.stdout, parse_constant=strict)
    assert len(record["comparisons"]) == 4 and all(c["holds"] for c in record["comparisons"])


def test_refuses_what_did_not_search_the_same_thing(yo_runs, tmp_path) -> None:
    with pytest.raises(ClirOtError, match=r"yo: .*bm25-pool and .*bm25 did not search the same thing "
                                          r"\(pool_distractors: 100 vs None\)"):
        compare_evaluations(yo_runs / "bm25-pool", yo_runs / "bm25")
    fewer = tmp_path / "fewer"
    shutil.copytree(yo_runs / "bm25", fewer)
    scores = json.loads((fewer / "yo" / "per_query.json").read_text())
    scores.pop(sorted(scores)[0])
    (fewer / "yo" / "per_query.json").write_text(json.dumps(scores))
    with pytest.raises(ClirOtError, match="per_query.json does not match the sha256 that metrics.json recorded"):
        compare_evaluations(fewer, yo_runs / "bm25")  # edited after evaluate wrote it
    from clir_ot.eval.saved import record_files, record_sha256

    record = json.loads((fewer / "yo" / "metrics.json").read_text())  # as if an evaluation had scored fewer
    record.pop("record_sha256")
    record["files"] = record_files(fewer / "yo")
    (fewer / "yo" / "metrics.json").write_text(json.dumps(record | {"record_sha256": record_sha256(record)}))
    with pytest.raises(ClirOtError, match="scored different queries"):
        compare_evaluations(fewer, yo_runs / "bm25")
    with pytest.raises(ClirOtError, match="not evaluated in every folder; in all: yo"):
        compare_evaluations(yo_runs / "strong", yo_runs / "bm25", ["sw"])
    with pytest.raises(ClirOtError, match="holds no evaluation"):
        compare_evaluations(tmp_path / "missing", yo_runs / "bm25")
    result = run("compare", str(yo_runs / "bm25-pool"), str(yo_runs / "bm25"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not comparable" in result.clean_stderr


def test_several_seeds_a_side_pool_them_and_resample_queries_and_seeds(yo_runs) -> None:
    """Side a holds two evaluations (standing in for two seeds of one condition): Δ is the difference of the
    sides' means over seeds and queries, the interval and Holm's p those of the two-level bootstrap of the
    (seeds × queries) matrices, and the query-level tests those of the seed means."""
    strong, bm25 = yo_runs / "strong", yo_runs / "bm25"
    rows = compare_evaluations([strong, bm25], [bm25])
    assert [(r.n_seeds_a, r.n_seeds_b) for r in rows] == [(2, 1)] * 4
    for r in rows:
        x, y = per_query(strong, r.measure), per_query(bm25, r.measure)
        assert r.diff == pytest.approx((x.mean() + y.mean()) / 2 - y.mean(), abs=1e-12)
        boot = two_level_bootstrap(np.stack([x, y]), y[None, :])
        assert (r.ci_low, r.ci_high, r.p_two_level) == (boot["ci_low"], boot["ci_high"], boot["p"])
        assert r.p_t == pytest.approx(stats.ttest_rel((x + y) / 2, y).pvalue, rel=1e-9)
        # seed variance widens the interval beyond the query bootstrap of the seed means
        single = compare_evaluations(strong, bm25)[rows.index(r)]
        assert r.ci_high - r.ci_low > (single.ci_high - single.ci_low) / 2
    assert [r.p_holm for r in rows] == holm([r.p_two_level for r in rows])
    # a side of one folder, as a list, is that folder
    one = compare_evaluations(strong, bm25)
    assert [r.diff for r in compare_evaluations([strong], [bm25])] == [r.diff for r in one]
    with pytest.raises(ClirOtError, match="is given twice"):
        compare_evaluations([strong, strong], [bm25])


def test_cli_expands_a_quoted_glob_into_seeds_and_refuses_three_arguments(yo_runs) -> None:
    result = run("compare", str(yo_runs / "*[g5]"), str(yo_runs / "bm25"), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["a"] == [str(yo_runs / "bm25"), str(yo_runs / "strong")] and record["b"] == [str(yo_runs / "bm25")]
    assert all(c["n_seeds_a"] == 2 and c["p_test"] == c["p_two_level"] for c in record["comparisons"])
    table = run("compare", str(yo_runs / "*[g5]"), str(yo_runs / "bm25"))
    assert "2 seeds" in table.clean_stdout and "two-level bootstrap" in table.clean_stdout
    ndcg = next(c for c in record["comparisons"] if c["measure"] == "nDCG@10")
    row = (f"yo nDCG@10 119 {ndcg['mean_a']:.4f} {ndcg['mean_b']:.4f} {ndcg['diff']:+.4f} "
           f"[{ndcg['ci_low']:+.4f}, {ndcg['ci_high']:+.4f}] {ndcg['p_two_level']:.4f} {ndcg['p_holm']:.4f} "
           f"{ndcg['p_t']:.4f}")
    assert row in " ".join(table.clean_stdout.split())  # every number whole in an 80-column, non-terminal output
    # an unquoted glob reaches compare as many arguments: one line, exit 1
    many = run("compare", str(yo_runs / "bm25"), str(yo_runs / "strong"), str(yo_runs / "bm25-pool"))
    assert many.exit_code == 1 and "compare takes two sides" in many.clean_stderr
    # a glob over folders that searched different pools is refused like any other pair
    mixed = run("compare", str(yo_runs / "bm25*"), str(yo_runs / "strong"))
    assert mixed.exit_code == 1 and "not comparable" in mixed.clean_stderr
    nothing = run("compare", str(yo_runs / "nothing-*"), str(yo_runs / "strong"))
    assert nothing.exit_code == 1 and "neither a folder nor a pattern" in nothing.clean_stderr


def test_one_evaluation_never_counts_twice_and_holds_is_a_word(yo_runs, tmp_path) -> None:
    """A copied or linked seed folder was counted as another seed (3 "seeds", mean R@100 0.2449 instead of
    0.2475), and the same folder on both sides was accepted; "holds" was bold styling only, lost in a pipe."""
    copy = tmp_path / "copy"
    shutil.copytree(yo_runs / "bm25", copy)
    link = tmp_path / "link"
    link.symlink_to(yo_runs / "bm25")
    for a, b in (([yo_runs / "bm25", copy], [yo_runs / "strong"]), ([yo_runs / "bm25", link], [yo_runs / "strong"])):
        with pytest.raises(ClirOtError, match="holds the same evaluation as .* twice on side a"):
            compare_evaluations(a, b)
    for other in (copy, link, yo_runs / "bm25"):
        with pytest.raises(ClirOtError, match="both sides hold the same evaluation"):
            compare_evaluations(yo_runs / "bm25", other)
    result = run("compare", str(yo_runs / "strong"), str(yo_runs / "bm25"))
    header = next(line for line in result.clean_stdout.splitlines() if "measure" in line)
    assert result.exit_code == 0 and header.split()[-1] == "holds"
    rows = [line.split() for line in result.clean_stdout.splitlines() if line.startswith("yo ")]
    assert len(rows) == 4 and {r[-1] for r in rows} <= {"yes", "no"} and "yes" in {r[-1] for r in rows}
