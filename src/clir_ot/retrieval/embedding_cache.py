"""A machine-wide cache of document embeddings, so that a model encodes a collection once per machine.

    $CLIR_OT_CACHE/embeddings/<key>/     an embeddings directory (:mod:`clir_ot.retrieval.encode`)
    $CLIR_OT_CACHE/embeddings/<key>.lock held while one process encodes that entry

``key`` hashes everything the vectors depend on (:func:`cache_key`): the model's weights (sha256 of its
files, not its name or path), the encoder's pooling, prefixes and maximum length, the benchmark,
language and split, the corpus's sha256 and the documents encoded (the sha256 of their ids: full corpus or
which reduced pool; the label that says so in words is not keyed),
the precision and the storage dtype. Any change of these misses; the same inputs hit, across
experiments, profiles and output folders (the student before distillation and the baselines are then
encoded once per machine).

A second process that wants an entry being written waits for the first and then reads it; an entry left
unfinished by a killed process is resumed shard by shard. ``clir-ot cache`` lists the entries and
``clir-ot cache --clear`` removes them.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml

from ..artifacts import acquire_lock, write_json_atomic
from ..errors import ClirOtError
from ..inputs import read_json_or_none
from ..models.encoder import Encoder
from ..settings import cache_dir
from .encode import STATE, embeddings_key, embeddings_problem, encode_corpus, is_complete, load_embeddings


def cache_root() -> Path:
    return cache_dir() / "embeddings"


def cache_key(config: dict) -> str:
    """The entry name for an embeddings configuration: its :func:`~clir_ot.retrieval.encode.embeddings_key`
    (no model name or path, no label: the weights' fingerprint and the documents' ids are keyed)."""
    return embeddings_key(config)[:24]


def document_embeddings(encoder: Encoder, config: dict, doc_ids: Sequence[str], texts: Sequence[str], *,
                        batch_size: int, fp16: bool = False,
                        on_progress: Callable[[int], None] | None = None) -> tuple[list[str], np.ndarray, dict]:
    """``(doc_ids, embeddings, record)`` of ``texts``: read from the cache entry of ``config``, encoded into
    it first on a miss. ``record`` says which entry and whether it was reused (``hit``)."""
    key = cache_key(config)
    root = cache_root()
    entry = root / key
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "a+") as lock:
        acquire_lock(lock, f"the embedding cache entry {entry}")  # another process encoding it: wait, then read
        try:
            hit = is_complete(entry)
            damaged = embeddings_problem(entry) if hit else None
            if damaged:  # vectors changed after they were written: the damaged shards are encoded again
                hit = False
                state = read_json_or_none(entry / STATE) or {}
                write_json_atomic(entry / STATE, state | {"complete": False})
            if not hit:
                encode_corpus(encoder, doc_ids, texts, [], [], entry, config, batch_size=batch_size, fp16=fp16,
                              replace_foreign=True, on_progress=on_progress)
            ids, matrix, _, _ = load_embeddings(entry)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if ids != list(doc_ids):
        raise ClirOtError(f"the embedding cache entry {entry} holds other documents than its key promises; "
                          "remove it (clir-ot cache --clear) and run again")
    return ids, matrix, {"entry": str(entry), "key": key, "hit": hit} | ({"recomputed": damaged} if damaged else {})


def entries() -> list[dict]:
    """Every entry: key, model, benchmark, language, what was searched, documents, size, finished or not."""
    root = cache_root()
    found = []
    for entry in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        manifest = read_json_or_none(entry / "manifest.json")
        manifest = manifest if isinstance(manifest, dict) else {}
        config = _read_config(entry)
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        found.append({"key": entry.name, "model": config.get("model"), "benchmark": config.get("benchmark"),
                      "lang": config.get("lang"), "corpus": config.get("corpus"),
                      "precision": config.get("precision"), "documents": manifest.get("documents"),
                      "bytes": size, "complete": is_complete(entry)})
    return found


def _read_config(entry: Path) -> dict:
    """An entry's configuration, or ``{}`` where it is missing or damaged (the listing says nothing of it)."""
    try:
        config = yaml.safe_load((entry / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def clear() -> tuple[int, int]:
    """Remove every entry not being written now; returns ``(entries removed, bytes freed)``."""
    removed, freed = 0, 0
    for item in entries():
        lock_path = cache_root() / f"{item['key']}.lock"
        with open(lock_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another process is encoding it
            shutil.rmtree(cache_root() / item["key"], ignore_errors=True)
            fcntl.flock(lock, fcntl.LOCK_UN)
        # the empty lock file stays: removing it could give a process already waiting on it and a new one
        # two different locks for the same entry
        removed, freed = removed + 1, freed + item["bytes"]
    return removed, freed
