"""``clir-ot gate``: measure a lower precision against fp32 and record the verdict that
:func:`clir_ot.eval.fidelity.require_fidelity` reads (the checks and thresholds: :mod:`clir_ot.eval.fidelity`)."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable

import numpy as np

from ..artifacts import hardware, seal, write_json_atomic
from ..errors import ClirOtError
from ..models.recipes import RECIPES
from . import metrics
from .evaluate import EvalConfig, dense_run, selected_queries
from .fidelity import (
    COSINE_PASSAGES,
    GATE_LANG,
    MEASURES,
    MIN_COSINE,
    TOLERANCE,
    _weights_sha256,
    read_record,
    record_path,
)


def _measuring(config, precision: str):
    """``config`` at ``precision`` without the gate's own check: the gate is what measures it."""
    candidate = copy.copy(config)
    candidate.precision, candidate.precision_reason = precision, "fidelity gate"
    return candidate


def cosine_checks(model: str, precision: str, texts: dict[str, list[str]], batch_size: int) -> dict[str, dict]:
    """Minimum and mean cosine between ``precision`` and fp32 embeddings, per kind of text
    (``{"passage": [...], "query": [...]}``), with each precision's encoding rate (texts/s); each encoder is
    loaded once."""
    from ..models import load_encoder

    encoders = {"fp32": load_encoder(model).set_precision("fp32"),
                precision: load_encoder(model).set_precision(precision)}
    out = {}
    for kind, items in texts.items():
        embeddings, rates = {}, {}
        for name, encoder in encoders.items():
            started = time.perf_counter()
            embeddings[name] = encoder.encode(items, kind, batch_size=batch_size)
            rates[name] = round(len(items) / (time.perf_counter() - started), 2)
        a, b = embeddings["fp32"], embeddings[precision]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out[kind] = {{"passage": "passages", "query": "queries"}[kind]: len(items), "min": float(cosine.min()),
                     "mean": float(cosine.mean()), "per_second": rates}
    return out


def run_gate(model: str, precision: str, *, pool_distractors: int | None = None, passages: int = COSINE_PASSAGES,
             batch_size: int = 32, on_stage: Callable[[str], None] | None = None) -> dict:
    """Measure ``precision`` against fp32 for ``model`` (the module docstring's two checks), record the result
    and return it. Document embeddings go through the embedding cache, so fp32's are computed once per
    machine."""
    if precision == "fp32":
        raise ClirOtError("the fidelity gate compares a lower precision with fp32; give bf16 or int8")
    kept = read_record(record_path(_weights_sha256(model), precision))
    if kept and kept["passed"] and kept["full_corpus"] and (pool_distractors is not None
                                                             or passages < kept["cosine"]["passages"]):
        raise ClirOtError(f"{precision} passed the full-corpus gate for {model} on {kept['cosine']['passages']:,} "
                          f"passages ({kept.get('measured')}); a smaller gate (a reduced pool or fewer passages) "
                          "would replace that record: refused")
    started = time.time()
    config = EvalConfig(langs=[GATE_LANG], model=model, precision="fp32", pool_distractors=pool_distractors,
                        batch_size=batch_size)
    docs = config.bench.documents(GATE_LANG, config.split)
    texts = [d.text for d in random.Random(0).sample(docs, min(passages, len(docs)))]
    if on_stage:
        on_stage(f"cosine to fp32 on {len(texts):,} yo passages")
    query_texts = [q.text for q in config.bench.queries(GATE_LANG, config.split)]
    checked = cosine_checks(model, precision, {"passage": texts, "query": query_texts}, batch_size)
    cosine = checked["passage"]
    record: dict = {"model": model, "weights_sha256": _weights_sha256(model), "precision": precision,
                    "recipe": RECIPES[precision].key,
                    "corpus": config.corpus_label(GATE_LANG), "full_corpus": pool_distractors is None,
                    "thresholds": {"min_cosine": MIN_COSINE, "tolerance": TOLERANCE, "measures": list(MEASURES)},
                    "cosine": cosine, "retrieval": None,
                    # the yo queries too, for the record (the threshold applies to the passages)
                    "query_cosine": checked["query"]}
    failures = []
    if cosine["min"] < MIN_COSINE:
        failures.append(f"min cosine {cosine['min']:.4f} < {MIN_COSINE} on {len(texts):,} passages; "
                        "retrieval not run")
    else:
        queries = selected_queries(GATE_LANG, config)
        qrels = config.bench.judged_qrels(GATE_LANG, config.split, queries)
        scores = {}
        for name in ("fp32", precision):
            if on_stage:
                on_stage(f"{name}: {config.corpus_label(GATE_LANG)}")
            run, _ = dense_run(GATE_LANG, _measuring(config, name), None)
            scores[name] = metrics.evaluate(qrels, run, MEASURES)
        delta = {m: scores[precision][m] - scores["fp32"][m] for m in MEASURES}
        record["retrieval"] = {"fp32": scores["fp32"], precision: scores[precision], "difference": delta}
        failures += [f"{m} {scores[precision][m]:.4f} vs fp32 {scores['fp32'][m]:.4f} (off by {abs(d):.4f} > "
                     f"{TOLERANCE})" for m, d in delta.items() if abs(d) > TOLERANCE]
    record |= {"passed": not failures,
               "verdict": "; ".join(failures) if failures
               else f"min cosine {cosine['min']:.4f}; " + ", ".join(
                   f"{m} off by {abs(d):.4f}" for m, d in record["retrieval"]["difference"].items()),
               "measured": time.strftime("%Y-%m-%d %H:%M"), "wall_time_s": round(time.time() - started, 1),
               "machine": hardware()}
    record = seal(record)
    write_json_atomic(record_path(record["weights_sha256"], precision), record)
    return record
