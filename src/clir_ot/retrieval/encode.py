"""Encode a MIRACL corpus and its queries into an embeddings directory, resumably.

    clir-ot encode --model me5-small --benchmark miracl --lang yo --out runs/emb/me5-yo

Layout::

    DIR/corpus/shard-00000.npy + shard-00000.ids   # float32 or float16 rows, one doc id a line
    DIR/queries.npy + queries.ids
    DIR/config.yaml, DIR/manifest.json, DIR/state.json (progress; ``complete`` at the end)

Shards are written atomically, and a shard whose two files exist is done: an interrupted run started
again with the same configuration encodes only the shards that are missing. Within a shard, texts are
encoded in token-sorted batches (dynamic padding) under ``torch.inference_mode``.

Sharded across processes (``shard=(i, n)``, ``clir-ot encode --shard i/n``): process ``i`` encodes the
shards ``s`` with ``s % n == i`` and leaves the directory unfinished; any later run without ``shard`` (the
merge step) finds every corpus shard done, encodes the queries and finishes it. Each shard is encoded
exactly as a single process would encode it, so the result is the same, bit for bit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..artifacts import (
    atomic_path,
    config_hash,
    folder_lock,
    prepare_output_dir,
    write_json_atomic,
    write_manifest,
)
from ..errors import ClirOtError
from ..inputs import read_json_or_none
from . import SHARD_SIZE

if TYPE_CHECKING:
    from ..models.encoder import Encoder, Kind

STATE = "state.json"


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _save_ids(path: Path, ids: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")


def open_embeddings_dir(out: Path, config: dict, overwrite: bool, replace_foreign: bool = False,
                        shard_size: int = SHARD_SIZE) -> dict:
    """Start or resume: returns the state. A directory made with another configuration (model weights,
    corpus, precision, ...) is refused unless ``overwrite``, or replaced when ``replace_foreign`` (a folder
    that the calling stage owns, e.g. ``evaluate``'s per-language embeddings). Processes that open the same
    directory at once (shards) take turns."""
    with folder_lock(out, "opening embeddings", name=".lock-open", wait=True):
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
        state = {"config_hash": config_hash(config), "shard_size": shard_size, "complete": False}
        write_json_atomic(state_file, state)
        return state


def encode_texts(encoder: Encoder, texts: Sequence[str], kind: Kind, batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    return encoder.encode(list(texts), kind=kind, batch_size=batch_size, sort_by_length=True, on_batch=on_batch)


def shard_ranges(n_docs: int, shard_size: int = SHARD_SIZE,
                 shard: tuple[int, int] | None = None) -> dict[int, range]:
    """Shard number → the positions of its documents, for every shard or, with ``shard=(i, n)``, for those
    process ``i`` of ``n`` encodes (``s % n == i``)."""
    return {s: range(lo, min(n_docs, lo + shard_size)) for s, lo in enumerate(range(0, n_docs, shard_size))
            if shard is None or s % shard[1] == shard[0]}


def _shard_path(out: Path, s: int) -> Path:
    return out / "corpus" / f"shard-{s:05d}.npy"


def _shard_done(out: Path, s: int) -> bool:
    return _shard_path(out, s).is_file() and _shard_path(out, s).with_suffix(".ids").is_file()


def encode_corpus(encoder: Encoder, doc_ids: Sequence[str], texts: Sequence[str], query_ids: Sequence[str],
                  queries: Sequence[str], out: Path, config: dict, *, shard_size: int = SHARD_SIZE,
                  batch_size: int = 32, fp16: bool = False, overwrite: bool = False, replace_foreign: bool = False,
                  shard: tuple[int, int] | None = None, on_progress: Callable[[int], None] | None = None) -> dict:
    """Encode passages (``kind="passage"``) and queries (``kind="query"``) into ``out``; return the manifest,
    or, with ``shard=(i, n)``, what this process did (see the module docstring).

    ``config`` must identify everything the embeddings depend on (model weights hash, corpus hash,
    precision, ...): a finished directory with the same configuration hash is reused, an unfinished one resumed.
    """
    started = time.time()
    out = Path(out)
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise ClirOtError(f"shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n")
    state = open_embeddings_dir(out, config, overwrite, replace_foreign, shard_size)
    if state.get("complete"):
        if shard is not None:
            return {"shard": f"{shard[0]}/{shard[1]}", "encoded_this_run": 0, "shards_missing": [], "complete": True}
        return json.loads((out / "manifest.json").read_text())
    if state.get("shard_size", SHARD_SIZE) != shard_size:
        raise ClirOtError(f"{out} was started with {state.get('shard_size', SHARD_SIZE)} documents per shard; "
                          f"continue it with --shard-size {state.get('shard_size', SHARD_SIZE)}")
    dtype = np.float16 if fp16 else np.float32
    n_shards = len(shard_ranges(len(texts), shard_size))
    (out / "corpus").mkdir(exist_ok=True)
    mine = shard_ranges(len(texts), shard_size, shard)
    todo = {s: rows for s, rows in mine.items() if not _shard_done(out, s)}
    if on_progress is not None:
        on_progress(sum(len(rows) for s, rows in mine.items() if s not in todo))
    encoded_now = 0
    for s, rows in todo.items():
        emb = encode_texts(encoder, texts[rows.start:rows.stop], "passage", batch_size, on_progress)
        _save_ids(_shard_path(out, s).with_suffix(".ids"), doc_ids[rows.start:rows.stop])
        _save_array(_shard_path(out, s), emb.astype(dtype))
        encoded_now += len(rows)
    if shard is not None:
        missing = [s for s in range(n_shards) if not _shard_done(out, s)]
        return {"shard": f"{shard[0]}/{shard[1]}", "shards": list(mine), "encoded_this_run": encoded_now,
                "shards_missing": missing, "complete": False}
    q = encode_texts(encoder, queries, "query", batch_size)
    _save_array(out / "queries.npy", q.astype(dtype))
    _save_ids(out / "queries.ids", query_ids)
    elapsed = time.time() - started
    manifest = write_manifest(out, "encode", config, started=started, extra={
        "documents": len(texts), "queries": len(queries), "dim": int(q.shape[1]) if len(q) else encoder.dim,
        "dtype": np.dtype(dtype).name, "shards": n_shards, "shard_size": shard_size, "encoded_this_run": encoded_now,
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
