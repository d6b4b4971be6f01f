"""Encode a MIRACL corpus and its queries into an embeddings directory, resumably.

    clir-ot encode --model me5-small --benchmark miracl --lang yo --out runs/emb/me5-yo

Layout::

    DIR/corpus/shard-00000.npy + shard-00000.ids   # float32 or float16 rows, one doc id a line
    DIR/queries.npy + queries.ids
    DIR/config.yaml, DIR/manifest.json, DIR/state.json (progress; ``complete`` at the end)

Shards are written atomically, each with a record of its rows and the sha256 of its two files
(``shard-00000.json``, written last): a shard is done when its files match its record, so an interrupted
run started again with the same configuration encodes only the shards that are missing or damaged, and
a reader (:func:`load_embeddings`) refuses vectors that changed after they were written, or whose count
differs from their ids'. Shards written before the records existed are checked by their counts alone.
Within a shard, texts are encoded in token-sorted batches (dynamic padding) under ``torch.inference_mode``.

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
    sha256_file,
    stage_state,
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


#: fields of an embeddings configuration that say nothing about the vectors: the model's name or path (its
#: weights' fingerprint is keyed) and what was searched in words (the documents' ids are keyed)
DISPLAY_FIELDS = ("model", "corpus")


def embeddings_key(config: dict) -> str:
    """The key of a set of embeddings: a hash of everything the vectors depend on (weights, documents, precision,
    recipe, encoder settings), never of a name, a path or a label."""
    keyed = {k: v for k, v in config.items() if k not in DISPLAY_FIELDS}
    if isinstance(keyed.get("model_fingerprint"), dict):
        keyed["model_fingerprint"] = {k: v for k, v in keyed["model_fingerprint"].items() if k != "name"}
    return config_hash(keyed)


def open_embeddings_dir(out: Path, config: dict, overwrite: bool, replace_foreign: bool = False,
                        shard_size: int = SHARD_SIZE) -> dict:
    """Start or resume: returns the state. A directory made with another configuration (model weights,
    corpus, precision, ...) is refused unless ``overwrite``, or replaced when ``replace_foreign`` (a folder
    that the calling stage owns, e.g. ``evaluate``'s per-language embeddings). Processes that open the same
    directory at once (shards) take turns."""
    with folder_lock(out, "opening embeddings", name=".lock-open", wait=True):
        state_file = out / STATE
        if replace_foreign and not state_file.is_file():  # the caller's own folder, left without its state
            overwrite = True
        if state_file.is_file() and not overwrite:
            if stage_state(state_file, embeddings_key(config)) == "done":
                return read_json_or_none(state_file)
            if not replace_foreign:
                raise ClirOtError(f"{out} holds embeddings made with another configuration; "
                                  "choose another --out or pass --overwrite")
            overwrite = True
        prepare_output_dir(out, overwrite)
        state = {"config_hash": embeddings_key(config), "shard_size": shard_size, "complete": False}
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


def _rows_and_ids(npy: Path, ids: Path) -> tuple[int, int]:
    """How many vectors and ids a pair of files holds (``ValueError`` where the array cannot be read)."""
    try:
        rows = np.load(npy, mmap_mode="r").shape[0]
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{npy} cannot be read ({exc})") from None
    return rows, len(ids.read_text(encoding="utf-8").splitlines())


def shard_problem(out: Path, s: int, expected_rows: int | None = None) -> str | None:
    """``None`` when shard ``s`` of ``out`` is whole (files as recorded, as many vectors as ids, and
    ``expected_rows`` of them when given), else what is wrong with it."""
    npy = _shard_path(out, s)
    ids, record_path = npy.with_suffix(".ids"), npy.with_suffix(".json")
    if not npy.is_file() or not ids.is_file():
        return f"{npy} or its ids are missing"
    record = read_json_or_none(record_path)
    if isinstance(record, dict):
        if sha256_file(npy) != record.get("npy_sha256") or sha256_file(ids) != record.get("ids_sha256"):
            return f"{npy} or its ids do not match the sha256 recorded when they were written"
        rows = ids_count = record.get("rows")
    else:
        try:
            rows, ids_count = _rows_and_ids(npy, ids)
        except ValueError as exc:
            return str(exc)
    if rows != ids_count:
        return f"{npy} holds {rows} vectors and {ids_count} ids"
    if expected_rows is not None and rows != expected_rows:
        return f"{npy} holds {rows} vectors, not the {expected_rows} of its shard"
    return None


def _shard_done(out: Path, s: int, expected_rows: int | None = None) -> bool:
    return shard_problem(out, s, expected_rows) is None


def _save_shard(out: Path, s: int, ids: Sequence[str], emb: np.ndarray) -> None:
    npy = _shard_path(out, s)
    _save_ids(npy.with_suffix(".ids"), ids)
    _save_array(npy, emb)
    write_json_atomic(npy.with_suffix(".json"), {"rows": len(ids), "npy_sha256": sha256_file(npy),
                                                 "ids_sha256": sha256_file(npy.with_suffix(".ids"))})


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
        return json.loads((out / "manifest.json").read_text()) | {"encoded_this_run": 0, "already_complete": True}
    if state.get("shard_size", SHARD_SIZE) != shard_size:
        raise ClirOtError(f"{out} was started with {state.get('shard_size', SHARD_SIZE)} documents per shard; "
                          f"continue it with --shard-size {state.get('shard_size', SHARD_SIZE)}")
    dtype = np.float16 if fp16 else np.float32
    n_shards = len(shard_ranges(len(texts), shard_size))
    (out / "corpus").mkdir(exist_ok=True)
    mine = shard_ranges(len(texts), shard_size, shard)
    todo = {s: rows for s, rows in mine.items() if not _shard_done(out, s, len(rows))}
    if on_progress is not None:
        on_progress(sum(len(rows) for s, rows in mine.items() if s not in todo))
    encoded_now = 0
    for s, rows in todo.items():
        emb = encode_texts(encoder, texts[rows.start:rows.stop], "passage", batch_size, on_progress)
        _save_shard(out, s, doc_ids[rows.start:rows.stop], emb.astype(dtype))
        encoded_now += len(rows)
    if shard is not None:
        all_rows = shard_ranges(len(texts), shard_size)
        missing = [s for s in range(n_shards) if not _shard_done(out, s, len(all_rows[s]))]
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


def embeddings_problem(directory: Path) -> str | None:
    """``None`` when every shard of a finished embeddings directory is whole (:func:`shard_problem`) and the
    queries have as many vectors as ids, else the first thing wrong."""
    directory = Path(directory)
    for npy in sorted((directory / "corpus").glob("shard-*.npy")):
        problem = shard_problem(directory, int(npy.stem.split("-")[1]))
        if problem:
            return problem
    if (directory / "queries.npy").is_file():
        try:
            rows, ids = _rows_and_ids(directory / "queries.npy", directory / "queries.ids")
        except (ValueError, OSError) as exc:
            return str(exc)
        if rows != ids:
            return f"{directory / 'queries.npy'} holds {rows} vectors and {ids} ids"
    return None


def load_embeddings(directory: Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """``(doc_ids, corpus, query_ids, queries)`` from a finished embeddings directory, each shard checked
    (:func:`embeddings_problem`) first."""
    directory = Path(directory)
    if not is_complete(directory):
        raise ClirOtError(f"{directory} is not a finished embeddings directory (run `clir-ot encode` to finish it)")
    problem = embeddings_problem(directory)
    if problem:
        raise ClirOtError(f"{problem}: the embeddings in {directory} changed after they were written; encode them "
                          "again (`clir-ot encode … --overwrite`, or `clir-ot cache --clear` for a cache entry)")
    shards = sorted((directory / "corpus").glob("shard-*.npy"))
    corpus = np.concatenate([np.load(p) for p in shards]) if shards else np.zeros((0, 0), dtype=np.float32)
    doc_ids = [i for p in shards for i in p.with_suffix(".ids").read_text(encoding="utf-8").splitlines()]
    query_ids = (directory / "queries.ids").read_text(encoding="utf-8").splitlines()
    return doc_ids, corpus, query_ids, np.load(directory / "queries.npy")
