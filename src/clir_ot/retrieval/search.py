"""Exact inner-product search in chunks (no full score matrix in memory); FAISS's flat index and its ANN
indexes (:mod:`clir_ot.retrieval.ann`) as options.

Embeddings are L2-normalised, so inner product = cosine. ``exact_search`` keeps a running top-k over
corpus chunks: memory is O(Q·(chunk + k)), never O(Q·N).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ClirOtError
from . import BACKENDS
from .ann import ANN_BACKENDS, ann_search, require_faiss


def exact_search(queries: np.ndarray, corpus: np.ndarray, k: int,
                 chunk_size: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` corpus rows by inner product for each query: ``(scores, indices)``, each ``(Q, k')``
    with ``k' = min(k, N)``, scores descending (ties: lower index first)."""
    if queries.ndim != 2 or corpus.ndim != 2 or queries.shape[1] != corpus.shape[1]:
        raise ClirOtError(f"dimension mismatch: queries {queries.shape}, corpus {corpus.shape}")
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    k = min(k, corpus.shape[0])
    best_scores = torch.full((q.shape[0], 0), float("-inf"))
    best_idx = torch.zeros((q.shape[0], 0), dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, corpus.shape[0], chunk_size):
            block = torch.from_numpy(np.ascontiguousarray(corpus[start:start + chunk_size], dtype=np.float32))
            scores = q @ block.T
            top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            cand_scores = torch.cat([best_scores, top.values], dim=1)
            cand_idx = torch.cat([best_idx, top.indices + start], dim=1)
            # stable merge: sort by score desc, then index asc
            order = np.lexsort((cand_idx.numpy(), -cand_scores.numpy()))[:, :k]
            best_scores = torch.gather(cand_scores, 1, torch.from_numpy(order))
            best_idx = torch.gather(cand_idx, 1, torch.from_numpy(order))
    return best_scores.numpy(), best_idx.numpy()


def faiss_search(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same search with ``faiss.IndexFlatIP`` (install the ``faiss`` extra: faiss-cpu)."""
    faiss = require_faiss()
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(np.ascontiguousarray(corpus, dtype=np.float32))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, corpus.shape[0]))
    return scores, idx


def search(queries: np.ndarray, corpus: np.ndarray, k: int, backend: str = "exact",
           index_folder: Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(scores, indices, record)``: exact search, FAISS's flat index, or an ANN index
    (:mod:`clir_ot.retrieval.ann`, kept in ``index_folder``); the record says how it was searched."""
    if backend == "exact":
        return (*exact_search(queries, corpus, k), {"backend": backend})
    if backend == "faiss":
        return (*faiss_search(queries, corpus, k), {"backend": backend})
    if backend in ANN_BACKENDS:
        return ann_search(queries, corpus, k, backend, index_folder)
    raise ClirOtError(f"unknown search backend {backend!r}; expected one of {BACKENDS}")


def to_run(query_ids: list[str], doc_ids: list[str], scores: np.ndarray,
           idx: np.ndarray) -> dict[str, dict[str, float]]:
    """Search results → run dict (query id → doc id → score)."""
    return {qid: {doc_ids[j]: float(s) for s, j in zip(scores[i], idx[i], strict=True) if j >= 0}
            for i, qid in enumerate(query_ids)}
