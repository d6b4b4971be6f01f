r"""Geometry readouts of a set of normalised embeddings: how collinear they are, and how much closer a query
is to its relevant passages than to the others. Pure functions of the embeddings (and, for the query readout,
of the judged pairs: a readout, never fitted to anything).

- mean pairwise cosine (anisotropy): :math:`\frac{\lVert \sum_i x_i \rVert^2 - \sum_i \lVert x_i \rVert^2}{N(N-1)}`,
  exact over all N vectors;
- the share of the variance on the first principal component and on the first ten;
- per query, the mean cosine to its judged relevant passages among those searched, and to every other passage
  searched; then their means over queries and the gap between them.
"""

from __future__ import annotations

import numpy as np


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """The mean cosine over all pairs of distinct rows of ``x`` (rows normalised)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", x, x)) / (n * (n - 1)))


def variance_shares(x: np.ndarray, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """The share of the total variance on the first ``k`` principal components, for each ``k``."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    eigenvalues = np.clip(np.linalg.eigvalsh(centred.T @ centred / max(1, len(x)))[::-1], 0.0, None)
    total = eigenvalues.sum()
    return {f"pc{k}_share": float(eigenvalues[:k].sum() / total) if total > 0 else float("nan") for k in ks}


def relevance_gap(queries: np.ndarray, passages: np.ndarray, relevant: list[list[int]]) -> dict[str, float]:
    """Mean over queries (those with a relevant passage among ``passages``) of the mean cosine to the relevant
    passages (``relevant[i]``: row numbers of query i's) and to all the others, and their difference."""
    q, p = np.asarray(queries, np.float64), np.asarray(passages, np.float64)
    total = p.sum(axis=0)
    rel_means, other_means = [], []
    for i, rows in enumerate(relevant):
        if not rows:
            continue
        sims = p[rows] @ q[i]
        rel_means.append(float(sims.mean()))
        other_means.append(float((q[i] @ total - sims.sum()) / (len(p) - len(rows))))
    if not rel_means:
        return {"queries": 0}
    rel, other = float(np.mean(rel_means)), float(np.mean(other_means))
    return {"queries": len(rel_means), "cos_relevant": rel, "cos_other": other, "gap": rel - other}


def readouts(passages: np.ndarray, queries: np.ndarray, relevant: list[list[int]],
             english: np.ndarray | None) -> dict:
    """Every readout of one system: passages, queries, the relevance gap, and held-out English verses."""
    out = {"passages": {"n": len(passages), "mean_cosine": mean_pairwise_cosine(passages),
                        **variance_shares(passages)},
           "queries": {"n": len(queries), "mean_cosine": mean_pairwise_cosine(queries), **variance_shares(queries)},
           "relevance": relevance_gap(queries, passages, relevant)}
    if english is not None:
        out["english"] = {"n": len(english), "mean_cosine": mean_pairwise_cosine(english), **variance_shares(english)}
    return out
