r"""Training-free controls: the embeddings a dense model searched, re-centred or whitened before the search.

Each transform is fitted from embeddings alone, never from judgements, and says what it was fitted on:

- ``centre``: passages minus the corpus mean :math:`\mu_P`, queries minus the mean :math:`\mu_Q` of the
  evaluated queries themselves, each renormalised. :math:`\mu_Q` comes from the test queries: the control is
  **transductive** (it sees the whole test query set at once, though no judgement).
- ``centre-corpus``: passages minus :math:`\mu_P`; queries minus the mean of corpus passages encoded as
  *queries* (a seeded sample of :data:`QUERY_MEAN_SAMPLE` passages with the query prefix): inductive, it uses
  the corpus alone.
- ``whiten``: ZCA whitening fitted on the corpus alone (Su et al. 2021, "Whitening sentence representations"),
  :math:`W = U (\Lambda + \epsilon)^{-1/2} U^\top` from the passages' covariance, :math:`x \mapsto
  (x - \mu_P) W`, renormalised, applied to passages and queries alike; :math:`\epsilon` is
  :data:`WHITEN_EPS` times the mean eigenvalue.

Searching normalised vectors by inner product ranks by cosine, as the untransformed search does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TRANSFORMS = {
    "none": "the embeddings as the model gives them",
    "centre": "passages minus the corpus mean, queries minus the evaluated queries' own mean (transductive)",
    "centre-corpus": "passages minus the corpus mean, queries minus the mean of corpus passages encoded as queries",
    "whiten": "ZCA whitening fitted on the corpus passages alone, applied to passages and queries",
}
#: corpus passages encoded as queries for ``centre-corpus``'s query mean
QUERY_MEAN_SAMPLE = 1000
#: the whitening's ridge, relative to the covariance's mean eigenvalue
WHITEN_EPS = 1e-3


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _summary(vector: np.ndarray) -> dict[str, float]:
    return {"norm": float(np.linalg.norm(vector)), "sum": float(vector.sum())}


def fit_and_apply(name: str, queries: np.ndarray, passages: np.ndarray,
                  corpus_as_queries: Callable[[], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(queries, passages, fitted)`` after transform ``name`` (:data:`TRANSFORMS`); ``fitted`` says what each
    statistic was fitted on and summarises it (norms and sums, so that two fits can be compared).
    ``corpus_as_queries`` gives the corpus sample encoded as queries (``centre-corpus`` only)."""
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
    if name == "none":
        return queries, passages, {"transform": "none"}
    q, p = np.asarray(queries, np.float64), np.asarray(passages, np.float64)
    mu_p = p.mean(axis=0)
    if name == "whiten":
        centred = p - mu_p
        cov = centred.T @ centred / len(p)
        eigenvalues, vectors = np.linalg.eigh(cov)
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        eps = WHITEN_EPS * float(eigenvalues.mean())
        w = (vectors / np.sqrt(eigenvalues + eps)) @ vectors.T
        top = eigenvalues[::-1]
        fitted = {"transform": name, "fitted_on": f"corpus passages ({len(p):,})", "passage_mean": _summary(mu_p),
                  "eps": eps, "variance_share_top1": float(top[0] / top.sum()),
                  "variance_share_top10": float(top[:10].sum() / top.sum())}
        return _normalise((q - mu_p) @ w), _normalise(centred @ w), fitted
    if name == "centre":
        mu_q = q.mean(axis=0)
        source = f"the evaluated queries themselves ({len(q):,}; transductive)"
    else:
        if corpus_as_queries is None:
            raise ValueError("centre-corpus needs the corpus sample encoded as queries")
        sample = np.asarray(corpus_as_queries(), np.float64)
        mu_q = sample.mean(axis=0)
        source = f"{len(sample):,} corpus passages encoded as queries"
    fitted = {"transform": name, "fitted_on": f"passage mean: corpus passages ({len(p):,}); query mean: {source}",
              "passage_mean": _summary(mu_p), "query_mean": _summary(mu_q)}
    return _normalise(q - mu_q), _normalise(p - mu_p), fitted


def corpus_sample(n_docs: int, size: int = QUERY_MEAN_SAMPLE, seed: int = 0) -> list[int]:
    """The positions of ``centre-corpus``'s passages: a seeded sample, in corpus order (all when fewer)."""
    if n_docs <= size:
        return list(range(n_docs))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_docs, size=size, replace=False))
