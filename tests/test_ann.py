"""ANN search (FAISS HNSW / IVF / IVF-PQ): close to exact search, kept as an artifact, rebuilt when inputs change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clir_ot.cli import app
from clir_ot.eval.evaluate import EvalConfig, evaluate
from clir_ot.retrieval import ann
from clir_ot.retrieval.search import exact_search, search

pytestmark = pytest.mark.integration

pytest.importorskip("faiss")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def yo_embeddings(tiny_xlmr_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The tiny encoder's embeddings of the yo pool (judged + 2,000 passages) and of the yo queries."""
    from clir_ot.data.benchmarks import get_benchmark
    from clir_ot.models import load_encoder

    bench = get_benchmark("miracl")
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu")
    docs = bench.pool("yo", "dev", 2000, 0)
    queries = bench.queries("yo", "dev")
    return (encoder.encode([d.text for d in docs], "passage"),
            encoder.encode([q.text for q in queries], "query"))


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


@pytest.mark.parametrize(("kind", "least"), [("hnsw", 0.95), ("ivf", 0.9), ("ivfpq", 0.9)])
def test_ann_finds_most_of_the_exact_top_100_and_is_kept_beside_the_embeddings(
        kind: str, least: float, yo_embeddings: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    corpus, queries = yo_embeddings
    _, exact = exact_search(queries, corpus, 100)
    scores, idx, record = search(queries, corpus, 100, kind, tmp_path / "a")
    assert idx.shape == exact.shape and not record["reused"]
    assert _overlap(exact, idx) >= least, _overlap(exact, idx)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # descending
    saved = json.loads(Path(record["file"]).with_suffix(".json").read_text())
    assert saved["vectors"] == len(corpus) and saved["parameters"]["kind"] == kind
    _, again, second = search(queries, corpus, 100, kind, tmp_path / "a")
    assert second["reused"] and second["file"] == record["file"]
    np.testing.assert_array_equal(again, idx)
    # built again elsewhere: the same index (one-thread HNSW insertion, seeded k-means)
    _, rebuilt, third = search(queries, corpus, 100, kind, tmp_path / "b")
    assert not third["reused"]
    np.testing.assert_array_equal(rebuilt, idx)
    # other vectors of the same shape: another index, never the stale one
    _, _, other = search(queries, corpus[::-1].copy(), 100, kind, tmp_path / "a")
    assert not other["reused"] and other["file"] != record["file"]
    # a damaged saved index (bytes changed, or cut short) is built again, never reused or a traceback
    path = Path(record["file"])
    for damage in (lambda b: b[:-64] + bytes(64), lambda b: b[: len(b) // 2]):
        path.write_bytes(damage(path.read_bytes()))
        _, fixed, fourth = search(queries, corpus, 100, kind, tmp_path / "a")
        assert not fourth["reused"] and "does not match the sha256" in fourth["rebuilt"]
        np.testing.assert_array_equal(fixed, idx)


def test_an_hnsw_evaluation_records_its_index_and_reuses_it(tiny_xlmr_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = dict(langs=["yo"], model=str(tiny_xlmr_dir), pool_distractors=300, precision="fp32")
    (exact,) = evaluate(EvalConfig(**cfg), tmp_path / "exact")
    (hnsw,) = evaluate(EvalConfig(**cfg, backend="hnsw"), tmp_path / "hnsw")
    index = hnsw.info["index"]
    assert index["backend"] == "hnsw" and not index["reused"] and Path(index["file"]).is_file()
    assert Path(index["file"]).parent == Path(hnsw.info["embeddings"]["entry"])  # beside its embeddings
    assert abs(hnsw.metrics["R@100"] - exact.metrics["R@100"]) <= 0.01
    assert "- search: hnsw (approximate), 1000 documents per query" in (tmp_path / "hnsw" / "results.md").read_text()
    (again,) = evaluate(EvalConfig(**cfg, backend="hnsw"), tmp_path / "hnsw-2")
    assert again.info["index"]["reused"] and again.metrics == hnsw.metrics
    (saved,) = evaluate(EvalConfig(**cfg, backend="hnsw"), tmp_path / "hnsw-2")
    assert saved.reused
    # other ANN rules (a new default): the saved result is not taken for theirs
    monkeypatch.setitem(ann.RULES, "hnsw", ann.RULES["hnsw"] | {"efSearch": "max(4k, 256)"})
    (changed,) = evaluate(EvalConfig(**cfg, backend="hnsw"), tmp_path / "hnsw-2")
    assert not changed.reused


def test_the_index_command_searches_an_encoded_folder_with_ann(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    encoded = CliRunner().invoke(app, ["encode", "--model", str(tiny_xlmr_dir), "--lang", "yo", "--pool", "100",
                                       "--precision", "fp32", "--out", str(tmp_path / "emb")])
    assert encoded.exit_code == 0, encoded.output
    for backend in ("exact", "ivf"):
        result = CliRunner().invoke(app, ["index", "--embeddings", str(tmp_path / "emb"), "--backend", backend,
                                          "--depth", "50", "--out", str(tmp_path / f"{backend}.trec")])
        assert result.exit_code == 0, result.output
    runs = {b: (tmp_path / f"{b}.trec").read_text().splitlines() for b in ("exact", "ivf")}
    assert len(runs["exact"]) == len(runs["ivf"]) == 119 * 50
    assert list((tmp_path / "emb").glob("index-ivf-*.faiss"))
    bad = CliRunner().invoke(app, ["index", "--embeddings", str(tmp_path / "emb"), "--backend", "annoy",
                                   "--out", str(tmp_path / "x.trec")])
    assert bad.exit_code != 0 and not (tmp_path / "x.trec").exists()


def test_parameters_fit_the_corpus() -> None:
    assert ann.parameters("ivf", 49_043, 384, 100)["nlist"] == 886  # 4·√N
    assert ann.parameters("ivf", 49_043, 384, 100)["nprobe"] == 110  # an eighth of the lists
    assert ann.parameters("ivf", 100, 384, 100)["nlist"] == 2  # >= 39 training points per list
    assert ann.parameters("ivfpq", 49_043, 384, 100)["m"] == 48
    assert ann.parameters("hnsw", 49_043, 384, 1000)["efSearch"] == 2000
