"""Drift: how far a student moved from the student before, as 1 − the mean cosine between their embeddings of
the same texts, on the evaluation passages (from the two saved evaluations: :func:`drift`) and on held-out
English verses (encoded again: :func:`english_drift`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..artifacts import config_hash
from ..layout import baseline_dir

#: held-out English verses (bible-clir's books, never trained on) on which English drift is measured
ENGLISH_DRIFT_VERSES = 500


def english_verses(limit: int = ENGLISH_DRIFT_VERSES) -> list[str]:
    """The first ``limit`` non-empty English (KJV) verses of the held-out books, in canonical order."""
    from ..data import bible

    verses = bible.read_edition(bible.EDITIONS["en"], bible.HELD_OUT_BOOKS)
    return [v for v in verses.values() if not bible.is_empty(v)][:limit]


def english_embeddings(model: str, precision: str, batch_size: int) -> np.ndarray:
    """``model``'s passage embeddings of :func:`english_verses`, computed once per weights and precision in a
    process."""
    from ..models.loading import model_fingerprint

    return _english_embeddings(model, config_hash(model_fingerprint(model)), precision, batch_size)


@lru_cache(maxsize=2)
def _english_embeddings(model: str, weights: str, precision: str, batch_size: int) -> np.ndarray:
    """``model``'s passage embeddings of :func:`english_verses`, once per weights (``weights``: their fingerprint's
    hash) and precision in a process: the student before's serve every student's drift."""
    from ..models import load_encoder

    return load_encoder(model).set_precision(precision).encode(english_verses(), "passage", batch_size)


def english_drift(exp, model: str) -> dict[str, float]:
    """Mean cosine between ``model``'s and the student before's embeddings of held-out English verses (encoded as
    passages, in the experiment's evaluation precision), and the drift ``1 − cosine``."""
    texts = english_verses()
    ours, base = (english_embeddings(m, exp.eval_precision, exp.eval_batch_size) for m in (model, exp.student))
    cosine = float(np.mean(np.sum(np.asarray(ours, np.float64) * np.asarray(base, np.float64), axis=1)))
    return {"lang": "en", "passages": len(texts), "cosine": cosine, "drift": 1.0 - cosine}


def drift(root: Path, exp, student_eval: Path, before_eval: Path | None = None) -> dict[str, float] | None:
    """Mean cosine between a student's passage embeddings and the initial student's (``before_eval``; default:
    its baseline evaluation), over the passages both evaluations encoded (the first evaluation language with
    embeddings), and the drift ``1 − cosine``."""
    from ..retrieval.encode import load_embeddings
    from .saved import saved_embeddings

    before_eval = before_eval or baseline_dir(root, exp.student)
    for lang in exp.eval_langs:
        ours, base = saved_embeddings(student_eval / lang), saved_embeddings(before_eval / lang)
        if ours is None or base is None:
            continue
        ids_a, emb_a, _, _ = load_embeddings(ours)
        ids_b, emb_b, _, _ = load_embeddings(base)
        where = {d: i for i, d in enumerate(ids_b)}
        common = [(i, where[d]) for i, d in enumerate(ids_a) if d in where]
        if not common:
            continue
        rows_a, rows_b = np.array([i for i, _ in common]), np.array([j for _, j in common])
        cosine = float(np.mean(np.sum(emb_a[rows_a].astype(np.float64) * emb_b[rows_b], axis=1)))
        return {"lang": lang, "passages": len(common), "cosine": cosine, "drift": 1.0 - cosine}
    return None
