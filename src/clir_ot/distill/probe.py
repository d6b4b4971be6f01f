"""Held-out alignment probe on UDHR paragraphs (never trained on) and a cheap retrieval check.

Probe, per language x: the student's embedding of x against the teacher's embedding of the English
paragraph, as sentence-transformers' evaluators report them:

- translation accuracy (``TranslationEvaluator``): the fraction of x whose nearest teacher-English
  embedding (cosine) is its own translation, averaged with the English→x direction;
- MSE × 100 (``MSEEvaluator``): mean squared difference of the two embeddings, times 100.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..data.bitext import BitextPair, read_bitext
from ..data.training import UDHR_PROBE, resolve_data_path
from ..models.encoder import Encoder


@cache
def _udhr() -> tuple[BitextPair, ...]:
    return tuple(read_bitext(resolve_data_path(UDHR_PROBE)[0]).pairs)


def probe_languages() -> list[str]:
    """The languages of the held-out UDHR probe (English excluded)."""
    return sorted({p.lang for p in _udhr()})


def udhr_pairs(langs: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    probe = _udhr()
    out = {}
    for lang in langs:
        rows = [p for p in probe if p.lang == lang]
        if rows:
            out[lang] = ([p.en for p in rows], [p.x for p in rows])
    return out


def translation_probe(student: Encoder, teacher: Encoder, langs: list[str], batch_size: int = 16,
                      teacher_cache: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
    """``{lang: {"accuracy", "src2trg", "trg2src", "mse_x100", "pairs", "per_pair"}}`` on UDHR paragraphs;
    ``per_pair`` holds each paragraph's share of the two directions it gets right (0, 0.5 or 1), whose
    mean is ``accuracy`` (what a bootstrap over paragraphs resamples).

    The teacher is frozen, so its embeddings of the English paragraphs are computed once per distinct
    paragraph and, given ``teacher_cache``, reused by later calls (the probe after training)."""
    pairs = udhr_pairs(langs)
    cache = {} if teacher_cache is None else teacher_cache
    missing = sorted({t for en, _ in pairs.values() for t in en} - cache.keys())
    if missing:
        cache.update(zip(missing, teacher.encode(missing, "passage", batch_size=batch_size), strict=True))
    results = {}
    for lang, (en, x) in pairs.items():
        t = np.stack([cache[text] for text in en])
        s = student.encode(x, "passage", batch_size=batch_size)
        sims = s @ t.T
        idx = np.arange(len(en))
        hit_s2t, hit_t2s = sims.argmax(1) == idx, sims.argmax(0) == idx
        src2trg, trg2src = float(hit_s2t.mean()), float(hit_t2s.mean())
        results[lang] = {"accuracy": (src2trg + trg2src) / 2, "src2trg": src2trg, "trg2src": trg2src,
                         "mse_x100": float(((t - s) ** 2).mean() * 100), "pairs": len(en),
                         "per_pair": ((hit_s2t.astype(float) + hit_t2s.astype(float)) / 2).tolist()}
    return results


def retrieval_check(student: Encoder, lang: str, pool: int | None, queries: int | None = None, depth: int = 100,
                    batch_size: int = 32) -> dict[str, float]:
    """Recall@100 and nDCG@10 of ``student`` on a reduced MIRACL pool: ``queries`` sampled queries (all if
    ``None``; seed 0), their judged passages and ``pool`` random ones (diagnostic, not a MIRACL result)."""
    from ..data.benchmarks import get_benchmark
    from ..retrieval.dense import evaluate_collection

    bench = get_benchmark("miracl")
    sample = bench.sample_query_ids(lang, "dev", queries)
    docs = bench.pool(lang, "dev", pool, query_ids=sample)
    topics = bench.selected_queries(lang, "dev", sample)
    qrels = bench.judged_qrels(lang, "dev", topics)
    result = evaluate_collection(student, docs, topics, qrels, depth, batch_size, ["R@100", "nDCG@10"])
    return result["aggregate"] | {"lang": lang, "corpus": bench.corpus_label(lang, pool, 0, queries),
                                  "documents": len(docs)}
