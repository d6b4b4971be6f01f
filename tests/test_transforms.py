"""Training-free controls (:mod:`clir_ot.retrieval.transforms`) and evaluation variants (:mod:`clir_ot.eval.variants`):
fitted from embeddings alone, reported as systems of their own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clir_ot.retrieval.transforms import corpus_sample, fit_and_apply


def _anisotropic(n: int, dim: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * np.linspace(3.0, 0.1, dim) + shift  # a common direction and unequal spread
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _mean_pairwise_cosine(x: np.ndarray) -> float:
    sims = x @ x.T
    return float((sims.sum() - np.trace(sims)) / (len(x) * (len(x) - 1)))


@pytest.mark.unit
def test_centring_subtracts_each_sides_mean_and_renormalises() -> None:
    passages, queries = _anisotropic(400, 16, 0, 2.0), _anisotropic(50, 16, 1, 3.0)
    q, p, fitted = fit_and_apply("centre", queries, passages)
    assert _mean_pairwise_cosine(passages) > 0.5 and abs(_mean_pairwise_cosine(p)) < 0.01
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    expected = queries - queries.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(q, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert "transductive" in fitted["fitted_on"]


@pytest.mark.unit
def test_whitening_is_fitted_on_the_corpus_and_makes_it_isotropic() -> None:
    passages, queries = _anisotropic(2000, 8, 0, 1.0), _anisotropic(30, 8, 1, 1.0)
    q, p, fitted = fit_and_apply("whiten", queries, passages)
    assert abs(_mean_pairwise_cosine(p)) < 0.01 and fitted["fitted_on"] == "corpus passages (2,000)"
    # the fit does not move when the queries do: the same passages give the same statistics and passages
    _, p_other, fitted_other = fit_and_apply("whiten", queries[:5] * -1, passages)
    assert fitted_other == fitted and np.array_equal(p_other, p)
    assert 0 < fitted["variance_share_top1"] < fitted["variance_share_top10"] <= 1


@pytest.mark.unit
def test_centre_corpus_takes_its_query_mean_from_the_corpus_sample_alone() -> None:
    passages, queries = _anisotropic(300, 8, 0, 1.0), _anisotropic(20, 8, 1, 2.0)
    sample = passages[corpus_sample(len(passages), 100)] * 0.5
    q, _, fitted = fit_and_apply("centre-corpus", queries, passages, lambda: sample)
    expected = queries - sample.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(q, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert "100 corpus passages encoded as queries" in fitted["fitted_on"]
    assert corpus_sample(300, 100) == corpus_sample(300, 100) and len(set(corpus_sample(300, 100))) == 100


@pytest.mark.integration
def test_a_control_is_fitted_without_judgements_and_both_sides_of_one_encoder_equal_the_plain_run(
        tiny_xlmr_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot.data.benchmarks import Benchmark
    from clir_ot.eval.evaluate import EvalConfig, evaluate
    from clir_ot.retrieval.runfile import read_run

    model = str(tiny_xlmr_dir)
    common = {"langs": ["yo"], "pool_distractors": 30, "query_sample": 10, "precision": "fp32"}
    (plain,) = evaluate(EvalConfig(model=model, **common), tmp_path / "plain")
    (mixed,) = evaluate(EvalConfig(model=model, query_model=model, **common), tmp_path / "mixed")
    assert read_run(Path(mixed.run_path)) == read_run(Path(plain.run_path)) and mixed.metrics == plain.metrics
    for transform in ("centre", "centre-corpus", "whiten"):
        (first,) = evaluate(EvalConfig(model=model, transform=transform, **common), tmp_path / transform)
        real = Benchmark.judged_qrels

        def fewer(self, lang, split, queries, real=real):  # a judgement of every query gone
            return {q: dict(list(d.items())[1:]) for q, d in real(self, lang, split, queries).items()}

        monkeypatch.setattr(Benchmark, "judged_qrels", fewer)
        (second,) = evaluate(EvalConfig(model=model, transform=transform, **common), tmp_path / f"{transform}-b",
                             overwrite=True)
        monkeypatch.setattr(Benchmark, "judged_qrels", real)
        assert second.metrics != first.metrics  # the judgements did change
        assert first.info["transform"] == second.info["transform"]
        assert read_run(Path(first.run_path)) == read_run(Path(second.run_path))
        assert read_run(Path(first.run_path)) != read_run(Path(plain.run_path))
        assert first.info["transform"]["transform"] == transform


@pytest.mark.e2e
def test_declared_variants_are_evaluated_and_reported_as_systems(tmp_path: Path, tiny_xlmr_dir: Path,
                                                                 tiny_experiment) -> None:
    from clir_ot.data.bitext import read_bitext, write_bitext
    from clir_ot.data.training import DEMO_BITEXT, resolve_data_path
    from clir_ot.reproduce import reproduce

    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).pairs
    bitext = tmp_path / "bitext.tsv"
    write_bitext(bitext, [p for p in pairs if p.lang == "de"][:24])
    path = tiny_experiment(
        "variants", bitext, compare=[["kd+queries", "before"], ["before+centre", "before"]],
        eval_variants=["centre", "queries"], geometry=True, per_query=[["kd", "before"]],
        hypotheses=[{"a": "kd+centre", "b": "before+centre", "lang": "yo", "measure": "nDCG@10"}])
    report = reproduce(path, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
    root = tmp_path / "runs" / "variants" / "tiny"
    result = json.loads((report / "results.json").read_text())
    assert {"before", "kd", "before+centre", "kd+centre", "kd+queries"} <= set(result["summary"]["yo"])
    assert "before+queries" not in result["summary"]["yo"]  # before's own sides are before
    saved = json.loads((root / "variants" / "queries" / "kd-s0" / "yo" / "metrics.json").read_text())
    assert saved["config"]["query_model"].endswith("kd-s0/student") and saved["config"]["model"] == str(tiny_xlmr_dir)
    centred = json.loads((root / "variants" / "centre" / "before" / "yo" / "metrics.json").read_text())
    assert centred["config"]["transform"] == "centre" and "transductive" in centred["result"]["info"]["transform"][
        "fitted_on"]
    geometry = result["geometry"]["systems"]
    assert set(geometry) == {"before", "kd"} and -1 <= geometry["kd"]["passages.mean_cosine"] <= 1
    assert 0 < geometry["before"]["passages.pc1_share"] <= geometry["before"]["passages.pc10_share"] <= 1
    assert "english.mean_cosine" in geometry["kd"] and "relevance.gap" in geometry["before"]
    assert "## Geometry (exploratory)" in (report / "results.md").read_text()
    (per_query,) = result["per_query"]
    assert (per_query["a"], per_query["b"], per_query["lang"]) == ("kd", "before", "yo") and per_query["queries"] > 0
    assert per_query["better"] + per_query["worse"] + per_query["same"] == per_query["queries"]
    assert per_query["quantiles"]["0"] <= per_query["quantiles"]["50"] <= per_query["quantiles"]["100"]
    assert per_query["bm25_solved"]["queries"] + per_query["bm25_unsolved"]["queries"] == per_query["queries"]
    assert "## Per query (exploratory)" in (report / "results.md").read_text()
    assert {s["comparison"] for s in result["significance"]} == {"kd+queries vs before", "before+centre vs before"}
    assert result["confirmatory"][0]["hypothesis"].startswith("kd+centre > before+centre") or \
        result["confirmatory"][0]["a"] == "kd+centre"


@pytest.mark.unit
def test_the_first_relevant_rank_follows_trec_eval_order() -> None:
    from clir_ot.eval.report_per_query import first_relevant_rank

    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 2.0, "d4": 1.0}, "q2": {"d9": 1.0}}
    qrels = {"q1": {"d3": 1, "d4": 1, "d1": 0}, "q2": {"d5": 1}, "q3": {"d1": 1}}
    # trec_eval breaks the tie of d2 and d3 by document id, descending: d3 before d2
    assert first_relevant_rank(run, qrels) == {"q1": 2, "q2": None, "q3": None}


@pytest.mark.unit
def test_geometry_readouts_against_their_definitions() -> None:
    from clir_ot.eval.geometry import mean_pairwise_cosine, readouts, relevance_gap, variance_shares

    x = _anisotropic(60, 6, 3, 1.0)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    brute = (sims.sum() - np.trace(sims)) / (60 * 59)
    assert mean_pairwise_cosine(x) == pytest.approx(brute, abs=1e-9)
    eig = np.sort(np.linalg.eigvalsh(np.cov(x.T.astype(np.float64), bias=True)))[::-1]
    shares = variance_shares(x, (1, 3))
    assert shares["pc1_share"] == pytest.approx(eig[0] / eig.sum()) and shares["pc3_share"] == pytest.approx(
        eig[:3].sum() / eig.sum())
    q = x[:2]
    gap = relevance_gap(q, x, [[0, 5], []])  # the second query has no relevant passage: left out
    others = [j for j in range(60) if j not in (0, 5)]
    assert gap["queries"] == 1 and gap["cos_relevant"] == pytest.approx(float(np.mean(sims[0, [0, 5]])))
    assert gap["cos_other"] == pytest.approx(float(np.mean(sims[0, others])))
    assert gap["gap"] == pytest.approx(gap["cos_relevant"] - gap["cos_other"])
    assert set(readouts(x, q, [[0], [1]], None)) == {"passages", "queries", "relevance"}
