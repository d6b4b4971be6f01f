"""The machine-wide embedding cache: what hits, what misses, waiting writers, and `clir-ot cache`."""

from __future__ import annotations

import fcntl
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from clir_ot.cli import app
from clir_ot.eval.evaluate import EvalConfig, evaluate
from clir_ot.models import EncoderSpec, load_encoder
from clir_ot.models.encoder import Encoder
from clir_ot.retrieval import embedding_cache

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _eval(model: Path, out: Path, **changes) -> dict:
    cfg = dict(langs=["yo"], model=str(model), pool_distractors=30, query_sample=10, batch_size=16,
               precision="fp32") | changes
    (result,) = evaluate(EvalConfig(**cfg), out)
    assert result.status == "ok"
    return result.info["embeddings"] | {"metrics": result.metrics}


def _copy(model: Path, target: Path) -> Path:
    shutil.copytree(model, target)
    return target


def test_the_same_weights_and_corpus_hit_from_any_folder_and_path(tiny_xlmr_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first = _eval(tiny_xlmr_dir, tmp_path / "a")
    assert not first["hit"]
    kinds: list[str] = []
    original = Encoder.encode

    def counting(self, texts, kind="passage", **kwargs):
        kinds.append(kind)
        return original(self, texts, kind, **kwargs)

    monkeypatch.setattr(Encoder, "encode", counting)
    # another output folder and a copy of the model elsewhere: the same weights, the same entry
    second = _eval(_copy(tiny_xlmr_dir, tmp_path / "copy"), tmp_path / "b")
    assert second["hit"] and second["entry"] == first["entry"] and second["metrics"] == first["metrics"]
    assert "passage" not in kinds  # no document was encoded again


def test_a_change_of_weights_pool_precision_or_prefix_misses(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    base = _eval(tiny_xlmr_dir, tmp_path / "base")
    keys = {base["key"]}

    changed = _copy(tiny_xlmr_dir, tmp_path / "weights")
    encoder = load_encoder(str(changed), device="cpu")
    with torch.no_grad():
        next(encoder.model.parameters()).add_(0.01)
    encoder.save(changed)
    prefix = _copy(tiny_xlmr_dir, tmp_path / "prefix")
    spec = EncoderSpec.read(prefix)
    spec.passage_prefix = "document: "
    spec.write(prefix)
    for model, changes in ((changed, {}), (tiny_xlmr_dir, {"pool_distractors": 31}),
                           (tiny_xlmr_dir, {"precision": "bf16"}), (prefix, {})):
        result = _eval(model, tmp_path / f"run{len(keys)}", **changes)
        assert not result["hit"] and result["key"] not in keys, changes or model.name
        keys.add(result["key"])
    assert len(embedding_cache.entries()) == 5


def test_the_summary_says_which_precision_made_each_dense_number(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    """bf16 and fp32 scores differ (on me5-small full yo nDCG@10 by 0.004), so the printed table says which ran."""
    for precision in ("fp32", "bf16"):
        _eval(tiny_xlmr_dir, tmp_path / precision, precision=precision)
        summary = (tmp_path / precision / "results.md").read_text()
        assert f"- precision: {precision} (asked for)" in summary
    cfg = EvalConfig(langs=["yo"], model="bm25", pool_distractors=30, query_sample=10)
    evaluate(cfg, tmp_path / "bm25")
    assert "precision" not in (tmp_path / "bm25" / "results.md").read_text()  # BM25 has none


def test_cached_embeddings_equal_fresh_ones(tiny_xlmr_dir: Path) -> None:
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu")
    texts = ["Ọjọ́ dára", "a much longer passage about the weather in Lagos today", "kukuru"]
    ids = ["d1", "d2", "d3"]
    config = {"model_fingerprint": "test", "texts": texts}
    cached_ids, cached, record = embedding_cache.document_embeddings(encoder, config, ids, texts, batch_size=2)
    assert not record["hit"] and cached_ids == ids
    fresh = encoder.encode(texts, "passage", batch_size=2)
    np.testing.assert_array_equal(cached, fresh)
    _, again, record = embedding_cache.document_embeddings(encoder, config, ids, texts, batch_size=2)
    assert record["hit"]
    np.testing.assert_array_equal(again, fresh)


def test_a_second_writer_waits_for_the_first_and_clear_skips_what_is_being_written(tiny_xlmr_dir: Path,
                                                                                  own_cache: Path) -> None:
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu")
    config = {"model_fingerprint": "test", "what": "waiting"}
    key = embedding_cache.cache_key(config)
    own_cache.joinpath("embeddings").mkdir(parents=True)
    results: list = []
    with open(own_cache / "embeddings" / f"{key}.lock", "a+") as held:  # another process encoding this entry
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: results.append(embedding_cache.document_embeddings(
            encoder, config, ["d1"], ["text"], batch_size=1)))
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not results  # waiting, not refused and not writing
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=60)
    assert results and results[0][0] == ["d1"]
    with open(own_cache / "embeddings" / f"{key}.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert embedding_cache.clear() == (0, 0)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert embedding_cache.clear()[0] == 1 and embedding_cache.entries() == []


def test_cache_command_lists_and_clears(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    _eval(tiny_xlmr_dir, tmp_path / "a")
    listed = CliRunner().invoke(app, ["cache", "--json"])
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)
    assert entry["benchmark"] == "miracl" and entry["lang"] == "yo" and entry["complete"]
    assert entry["documents"] == len(_docs_of(entry)) and "reduced pool: judged + 30" in entry["corpus"]
    cleared = CliRunner().invoke(app, ["cache", "--clear"])
    assert cleared.exit_code == 0 and "removed 1 embedding cache entry" in cleared.output
    assert json.loads(CliRunner().invoke(app, ["cache", "--json"]).stdout) == []


def _docs_of(entry: dict) -> list[str]:
    folder = embedding_cache.cache_root() / entry["key"] / "corpus"
    return [i for p in sorted(folder.glob("*.ids")) for i in p.read_text().splitlines()]


def test_changed_vectors_in_a_cache_entry_are_encoded_again_and_a_lost_id_is_refused(tiny_xlmr_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """64 zeroed rows in a cached shard gave R@100 0.2185 instead of 0.2395 as a cache hit; a shard that lost an
    id line shifted every later id by one; a truncated shard counted as done. Each is now found by content."""
    import numpy as np

    from clir_ot.errors import ClirOtError
    from clir_ot.retrieval.encode import load_embeddings

    first = _eval(tiny_xlmr_dir, tmp_path / "a")
    entry = Path(first["entry"])
    shard = entry / "corpus" / "shard-00000.npy"
    vectors = np.load(shard)
    vectors[:64] = 0
    np.save(shard, vectors)
    again = _eval(tiny_xlmr_dir, tmp_path / "b")
    assert not again["hit"] and "sha256" in again["recomputed"]
    assert again["metrics"] == first["metrics"]
    ids = shard.with_suffix(".ids")
    ids.write_text("".join(ids.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(ClirOtError, match="do not match the sha256 recorded"):
        load_embeddings(entry)
    shard.with_suffix(".json").unlink()  # a shard written before records existed: checked by its counts
    with pytest.raises(ClirOtError, match=r"holds \d+ vectors and \d+ ids"):
        load_embeddings(entry)
    shard.write_bytes(shard.read_bytes()[:1000])  # truncated
    with pytest.raises(ClirOtError, match="cannot be read"):
        load_embeddings(entry)
    fixed = _eval(tiny_xlmr_dir, tmp_path / "c")  # the cache encodes the damaged shard again
    assert fixed["metrics"] == first["metrics"] and "cannot be read" in fixed["recomputed"]
    ids.unlink()  # a deleted .ids
    deleted = _eval(tiny_xlmr_dir, tmp_path / "d")
    assert deleted["metrics"] == first["metrics"] and "missing" in deleted["recomputed"]


def test_waiting_for_a_stopped_writer_says_so_and_gives_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    """A second process waited forever, without a word, on a cache entry whose writer was stopped."""
    import subprocess
    import sys
    import time

    from clir_ot.artifacts import acquire_lock
    from clir_ot.errors import ClirOtError

    lock = tmp_path / "entry.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(lock)!r}, 'a+'); fcntl.flock(h, fcntl.LOCK_EX); h.write('pid stopped-writer'); h.flush()\n"
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("CLIR_OT_LOCK_TIMEOUT", "1.5")
        started = time.monotonic()
        with open(lock, "a+") as handle, pytest.raises(ClirOtError, match=r"gave up waiting for the entry after 1.5 s "
                                                                          r"\(held by pid stopped-writer\)"):
            acquire_lock(handle, "the entry")
        assert 1.4 <= time.monotonic() - started < 10
        assert "waiting for the entry: held by pid stopped-writer" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    with open(lock, "a+") as handle:  # the holder is gone: taken at once, and the new holder is written
        acquire_lock(handle, "the entry")
        assert lock.read_text().startswith("pid ")
    monkeypatch.setenv("CLIR_OT_LOCK_TIMEOUT", "soon")
    with open(lock, "a+") as handle, pytest.raises(ClirOtError, match="CLIR_OT_LOCK_TIMEOUT"):
        acquire_lock(handle, "the entry")
