"""Approximate nearest-neighbour search with FAISS, for corpora too large for exact search.

Backends (inner product = cosine on the normalised embeddings):

- ``hnsw``: ``IndexHNSWFlat`` (M 32, efConstruction 200; efSearch max(2·k, 256)): full vectors, graph
  search; the fastest queries, memory ≈ vectors + 256 bytes a passage.
- ``ivf``: ``IndexIVFFlat`` (4·√N lists, k-means on the corpus, an eighth of them probed, at least 32): full
  vectors, faster to build than HNSW.
- ``ivfpq``: ``IndexIVFPQ`` (the same lists, 48 sub-quantisers of 8 bits: 48 bytes a passage): where the
  vectors do not fit in memory (e.g. all 18 MIRACL languages, 106 M passages: 82 GB in fp16, 5 GB as PQ codes).
  Lossy: its scores are approximate, and on yo it loses about 0.1 of R@100 (README).

An index is a stage artifact: it is written (atomically) beside the embeddings it was built from, named
by its build parameters and the sha256 of the vectors, with a JSON record beside it, and read back
whenever the same vectors are searched with the same parameters: it is rebuilt exactly when its inputs
change. HNSW
graphs are built on one thread (FAISS's parallel insertion order varies) and k-means is seeded, so a
rebuild gives the same index. Where FAISS sees GPUs, IVF indexes are searched on them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from ..artifacts import atomic_path, config_hash, sha256_file
from ..errors import ClirOtError
from ..inputs import read_json_or_none

ANN_BACKENDS = ("hnsw", "ivf", "ivfpq")
SEED = 0


def require_faiss():
    """The ``faiss`` module, or one clear line saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ClirOtError("the faiss backends need faiss-cpu (or faiss-gpu): pip install faiss-cpu "
                          "(or '.[faiss]')") from exc
    return faiss


#: the rules :func:`parameters` follows; saved results of an ANN search are keyed by them (with FAISS's version)
RULES = {"hnsw": {"M": 32, "efConstruction": 200, "efSearch": "max(2k, 256)"},
         "ivf": {"nlist": "min(N // 39, 4 sqrt N)", "nprobe": "min(nlist, max(32, nlist // 8))", "seed": SEED},
         "ivfpq": {"nlist": "as ivf", "nprobe": "as ivf", "m": "48 (or the largest divisor of the dimension)",
                   "nbits": 8, "seed": SEED}}


def identity(kind: str) -> dict:
    """What an ANN search's results depend on besides the vectors: the rules of ``kind`` and FAISS's version."""
    return {"rules": RULES[kind], "faiss": require_faiss().__version__}


def parameters(kind: str, n: int, dim: int, k: int) -> dict:
    """The build and search parameters of ``kind`` for ``n`` vectors of ``dim`` dimensions searched ``k`` deep
    (:data:`RULES`)."""
    if kind == "hnsw":
        return {"kind": kind, "M": 32, "efConstruction": 200, "efSearch": max(2 * k, 256)}
    nlist = max(1, min(n // 39, int(round(4 * math.sqrt(n)))))  # FAISS wants >= 39 training points a list
    nprobe = min(nlist, max(32, nlist // 8))  # yo (886 lists): 32 probed lost 0.09 of R@100, 110 none
    if kind == "ivf":
        return {"kind": kind, "nlist": nlist, "nprobe": nprobe, "seed": SEED}
    if kind == "ivfpq":
        m = 48 if dim % 48 == 0 else next(d for d in (32, 24, 16, 8, 4, 2, 1) if dim % d == 0)
        return {"kind": kind, "nlist": nlist, "nprobe": nprobe, "m": m, "nbits": 8, "seed": SEED}
    raise ClirOtError(f"unknown ANN backend {kind!r}; expected one of {ANN_BACKENDS}")


def build(corpus: np.ndarray, params: dict):
    """A FAISS index of ``corpus`` (float32 rows) with ``params`` (:func:`parameters`)."""
    faiss = require_faiss()
    dim = corpus.shape[1]
    vectors = np.ascontiguousarray(corpus, dtype=np.float32)
    if params["kind"] == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # parallel insertion would make the graph depend on thread timing
        try:
            index.add(vectors)
        finally:
            faiss.omp_set_num_threads(threads)
        return index
    quantizer = faiss.IndexFlatIP(dim)
    if params["kind"] == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["m"], params["nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = params["seed"]
    index.train(vectors)
    index.add(vectors)
    return index


def _prepare_for_search(index, params: dict):
    faiss = require_faiss()
    if params["kind"] == "hnsw":
        index.hnsw.efSearch = params["efSearch"]
        return index
    index.nprobe = params["nprobe"]
    if faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
        index.nprobe = params["nprobe"]
    return index


def vectors_sha256(corpus: np.ndarray) -> str:
    """sha256 of the float32 vectors an index is built from (its name carries it: other vectors, other index)."""
    digest = hashlib.sha256()
    for start in range(0, corpus.shape[0], 65536):
        digest.update(np.ascontiguousarray(corpus[start:start + 65536], dtype=np.float32).tobytes())
    return digest.hexdigest()


def cached_index(corpus: np.ndarray, kind: str, k: int, folder: Path | None) -> tuple[object, dict]:
    """The index of ``corpus`` for ``kind``: read from ``folder`` (the embeddings' folder) when it was built there
    with the same parameters, else built and, with a folder, saved. Returns ``(index, record)``; the record
    names the file and says whether it was reused."""
    faiss = require_faiss()
    params = parameters(kind, corpus.shape[0], corpus.shape[1], k)
    build_params = {key: v for key, v in params.items() if key not in ("efSearch", "nprobe")}
    name = f"index-{kind}-{config_hash(build_params | {'vectors': vectors_sha256(corpus)})[:16]}"
    path = Path(folder) / f"{name}.faiss" if folder is not None else None
    record = {"backend": kind, "parameters": params, "file": str(path) if path else None}
    rebuilt = None
    if path is not None and path.is_file():
        saved = read_json_or_none(path.with_suffix(".json")) or {}
        if saved.get("index_sha256") != sha256_file(path):
            rebuilt = f"{path} does not match the sha256 recorded when it was written; built again"
        else:
            index = faiss.read_index(str(path))
            if index.ntotal == corpus.shape[0] and index.d == corpus.shape[1]:
                return index, record | {"reused": True, "build_s": 0.0}
            rebuilt = f"{path} holds {index.ntotal} vectors of {index.d} dimensions; built again"
    started = time.time()
    index = build(corpus, params)
    record |= {"reused": False, "build_s": round(time.time() - started, 2)} | ({"rebuilt": rebuilt} if rebuilt else {})
    if path is not None:
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))
        with atomic_path(path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(record | {"vectors": corpus.shape[0], "dim": corpus.shape[1],
                                                "vectors_sha256": vectors_sha256(corpus), "faiss": faiss.__version__,
                                                "index_sha256": sha256_file(path)},
                                      indent=2) + "\n", encoding="utf-8")
    return index, record


def ann_search(queries: np.ndarray, corpus: np.ndarray, k: int, kind: str,
               folder: Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Top-``k`` by inner product through an ANN index: ``(scores, indices, record)``; indices are -1 where the
    index found fewer than ``k`` neighbours."""
    k = min(k, corpus.shape[0])
    index, record = cached_index(corpus, kind, k, folder)
    index = _prepare_for_search(index, record["parameters"])
    started = time.time()
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, idx, record | {"search_s": round(time.time() - started, 3)}
