"""Encode a MIRACL corpus and its queries into an embeddings directory, resumably.

    clir-ot encode --model me5-small --benchmark miracl --lang yo --out runs/emb/me5-yo

Layout::

    DIR/corpus/shard-00000.npy + shard-00000.ids   # float32 or float16 rows, one doc id a line
    DIR/queries.npy + queries.ids
    DIR/config.yaml, DIR/manifest.json, DIR/state.json (progress; ``complete`` at the end)

Shards are written atomically; an interrupted run started again with the same configuration
continues after its last finished shard. Within a shard, texts are encoded in length-sorted batches
(dynamic padding) under ``torch.inference_mode``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..artifacts import atomic_path, config_hash, prepare_output_dir, write_json_atomic, write_manifest
from ..errors import ClirOtError
from ..inputs import read_json_or_none
from ..models.encoder import Encoder, Kind

STATE = "state.json"


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _save_ids(path: Path, ids: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")


def open_embeddings_dir(out: Path, config: dict, overwrite: bool, replace_foreign: bool = False) -> dict:
    """Start or resume: returns the state. A directory made with another configuration (model weights,
    corpus, precision, ...) is refused unless ``overwrite``, or replaced when ``replace_foreign`` (a folder
    that the calling stage owns, e.g. ``evaluate``'s per-language embeddings)."""
    state_file = out / STATE
    if state_file.is_file() and not overwrite:
        state = read_json_or_none(state_file) or {}
        if state.get("config_hash") == config_hash(config):
            return state
        if not replace_foreign:
            raise ClirOtError(f"{out} holds embeddings made with another configuration; "
                              "choose another --out or pass --overwrite")
        overwrite = True
    prepare_output_dir(out, overwrite)
    state = {"config_hash": config_hash(config), "shards_done": 0, "complete": False}
    write_json_atomic(state_file, state)
    return state


def encode_texts(encoder: Encoder, texts: Sequence[str], kind: Kind, batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    return encoder.encode(list(texts), kind=kind, batch_size=batch_size, sort_by_length=True, on_batch=on_batch)


def encode_corpus(encoder: Encoder, doc_ids: Sequence[str], texts: Sequence[str], query_ids: Sequence[str],
                  queries: Sequence[str], out: Path, config: dict, *, shard_size: int = 8192, batch_size: int = 32,
                  fp16: bool = False, overwrite: bool = False, replace_foreign: bool = False,
                  on_progress: Callable[[int], None] | None = None) -> dict:
    """Encode passages (``kind="passage"``) and queries (``kind="query"``) into ``out``; return the manifest.

    ``config`` must identify everything the embeddings depend on (model weights hash, corpus hash,
    precision, ...): a finished directory with the same configuration hash is reused, an unfinished one resumed.
    """
    started = time.time()
    out = Path(out)
    state = open_embeddings_dir(out, config, overwrite, replace_foreign)
    if state.get("complete"):
        return json.loads((out / "manifest.json").read_text())
    dtype = np.float16 if fp16 else np.float32
    n_shards = (len(texts) + shard_size - 1) // shard_size
    (out / "corpus").mkdir(exist_ok=True)
    if on_progress is not None and state["shards_done"]:
        on_progress(min(len(texts), state["shards_done"] * shard_size))
    encoded_now = 0
    for s in range(state["shards_done"], n_shards):
        lo, hi = s * shard_size, min(len(texts), (s + 1) * shard_size)
        emb = encode_texts(encoder, texts[lo:hi], "passage", batch_size, on_progress)
        _save_array(out / "corpus" / f"shard-{s:05d}.npy", emb.astype(dtype))
        _save_ids(out / "corpus" / f"shard-{s:05d}.ids", doc_ids[lo:hi])
        encoded_now += hi - lo
        state["shards_done"] = s + 1
        write_json_atomic(out / STATE, state)
    q = encode_texts(encoder, queries, "query", batch_size)
    _save_array(out / "queries.npy", q.astype(dtype))
    _save_ids(out / "queries.ids", query_ids)
    elapsed = time.time() - started
    manifest = write_manifest(out, "encode", config, started=started, extra={
        "documents": len(texts), "queries": len(queries), "dim": int(q.shape[1]) if len(q) else encoder.dim,
        "dtype": np.dtype(dtype).name, "shards": n_shards, "encoded_this_run": encoded_now,
        "passages_per_second_this_run": round(encoded_now / elapsed, 2) if elapsed > 0 else None,
        "encoder": {"source": encoder.source, "label": encoder.spec.label, "pooling": encoder.spec.pooling,
                    "query_prefix": encoder.spec.query_prefix, "passage_prefix": encoder.spec.passage_prefix}})
    state["complete"] = True
    write_json_atomic(out / STATE, state)
    return manifest


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` is a finished embeddings directory."""
    return bool((read_json_or_none(Path(directory) / STATE) or {}).get("complete"))


def load_embeddings(directory: Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """``(doc_ids, corpus, query_ids, queries)`` from a finished embeddings directory."""
    directory = Path(directory)
    if not is_complete(directory):
        raise ClirOtError(f"{directory} is not a finished embeddings directory (run `clir-ot encode` to finish it)")
    shards = sorted((directory / "corpus").glob("shard-*.npy"))
    corpus = np.concatenate([np.load(p) for p in shards]) if shards else np.zeros((0, 0), dtype=np.float32)
    doc_ids = [i for p in shards for i in p.with_suffix(".ids").read_text(encoding="utf-8").splitlines()]
    query_ids = (directory / "queries.ids").read_text(encoding="utf-8").splitlines()
    return doc_ids, corpus, query_ids, np.load(directory / "queries.npy")
