"""Metrics against pytrec_eval (trec_eval's own code) on real MIRACL qrels, and run files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from clir_ot.data import miracl
from clir_ot.errors import ClirOtError
from clir_ot.eval import metrics
from clir_ot.retrieval.runfile import read_run, write_run

pytestmark = pytest.mark.unit

ORACLE = {"R@100": "recall_100", "AP": "map", "nDCG@10": "ndcg_cut_10", "RR@10": "recip_rank"}


def oracle_per_query(qrels, run) -> dict[str, dict[str, float]]:
    """pytrec_eval per query, with trec_eval -c: qrels queries missing from the run score 0.

    pytrec_eval's recip_rank has no cut-off, so the run given to it for RR@10 is cut at 10.
    """
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"recall.100", "map", "ndcg_cut.10"})
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    full = evaluator.evaluate(run)
    top10 = rr.evaluate({q: {d: docs[d] for d in metrics.rank(docs)[:10]} for q, docs in run.items()})
    out = {}
    for qid in qrels:
        scores = {m: full.get(qid, {}).get(o, 0.0) for m, o in ORACLE.items() if m != "RR@10"}
        scores["RR@10"] = top10.get(qid, {}).get("recip_rank", 0.0)
        out[qid] = scores
    return out


def generated_runs(qrels, docs, rng: random.Random):
    qids = list(qrels)
    judged = sorted({d for j in qrels.values() for d in j})
    yield "empty", {}
    for n in range(25):
        run = {}
        for qid in qids:
            if rng.random() < 0.15:
                continue  # query missing from the run
            pool = list(qrels[qid]) + rng.sample(judged, 20) + rng.sample(docs, 40)
            rng.shuffle(pool)
            depth = rng.choice([0, 3, 15, 120, len(pool)])
            tie = n % 3 == 0
            run[qid] = {d: (round(rng.random(), 1) if tie else rng.random()) for d in pool[:depth]}
        yield f"random-{n}{'-ties' if n % 3 == 0 else ''}", run


@pytest.mark.parametrize("lang", ["yo", "sw", "th"])
def test_metrics_equal_pytrec_eval_on_real_qrels(lang: str) -> None:
    qrels = metrics.qrels_dict(miracl.load_qrels(lang))
    rng = random.Random(lang)
    distractors = [f"{rng.randrange(10**6)}#{rng.randrange(20)}" for _ in range(500)]
    for name, run in generated_runs(qrels, distractors, rng):
        ours = metrics.per_query(qrels, run)
        ref = oracle_per_query(qrels, run)
        assert ours.keys() == ref.keys()
        for qid in qrels:
            for m in metrics.DEFAULT_MEASURES:
                assert ours[qid][m] == pytest.approx(ref[qid][m], abs=1e-9), (name, qid, m)
        agg = metrics.aggregate(ours)
        for m in metrics.DEFAULT_MEASURES:
            assert agg[m] == pytest.approx(np.mean([ref[q][m] for q in qrels]), abs=1e-9)


def test_ties_are_broken_by_docid_descending_like_trec_eval() -> None:
    qrels = {"q": {"a": 1, "c": 1, "b": 0}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0, "z": 1.0}}
    assert metrics.rank(run["q"]) == ["z", "c", "b", "a"]
    got = metrics.evaluate(qrels, run)
    assert got["RR@10"] == 0.5 and got["AP"] == 0.5
    assert got == pytest.approx(metrics.aggregate(oracle_per_query(qrels, run)), abs=1e-12)


def test_recall_is_fraction_of_relevant_not_success() -> None:
    qrels = {"q": {"a": 1, "b": 1, "c": 1, "d": 1}}
    run = {"q": {"a": 3.0, "x": 2.0}}
    assert metrics.evaluate(qrels, run, ["R@100"])["R@100"] == 0.25
    curve = metrics.recall_curve(qrels, {"q": {"a": 3.0, "x": 2.0, "b": 1.0}}, [1, 2, 3, 1000])
    assert curve == {1: 0.25, 2: 0.25, 3: 0.5, 1000: 0.5}


def test_run_file_roundtrip_uses_trec_order(tmp_path: Path) -> None:
    run = {"q2": {"d1": 0.5, "d3": 0.5, "d2": 0.9}, "q1": {"x": -1.25}}
    path = tmp_path / "run.trec"
    write_run(path, run, tag="my system")
    lines = path.read_text().splitlines()
    assert lines == ["q1 Q0 x 1 -1.250000 mysystem", "q2 Q0 d2 1 0.900000 mysystem",
                     "q2 Q0 d3 2 0.500000 mysystem", "q2 Q0 d1 3 0.500000 mysystem"]
    assert all(len(line.split()) == 6 for line in lines)
    assert read_run(path) == {"q1": {"x": -1.25}, "q2": {"d2": 0.9, "d3": 0.5, "d1": 0.5}}


@pytest.mark.parametrize(("content", "message"), [
    ("q1 Q0 d1 1 0.5\n", "run.trec:1: expected 6 fields"),
    ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 high t\n", "run.trec:2: rank '2' / score 'high' is not numeric"),
    ("q1 Q0 d1 1 0.5 t\nqX Q0 d2 1 0.4 t\n", "run.trec:2: unknown query id 'qX'"),
    ("q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n", "run.trec:2: document 'd1' appears twice"),
])
def test_mangled_run_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "run.trec"
    path.write_text(content)
    with pytest.raises(ClirOtError, match=message):
        read_run(path, known_queries=["q1"])
