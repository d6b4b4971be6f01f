"""The fidelity gate: a lower precision is used only where it retrieves like fp32.

A reduced precision changes every embedding a little; whether the ranking survives is an empirical
question per model, so ``int8`` is refused until the gate has measured it for that model's weights:

1. **Cosine** between the candidate's and fp32's passage embeddings on ``COSINE_PASSAGES`` passages drawn
   at random (seed 0) from the yo corpus: the minimum must be at least ``MIN_COSINE``.
2. **Retrieval** on MIRACL yo dev, full corpus: every one of ``MEASURES`` within ``TOLERANCE`` of fp32
   (absolute difference of the means over queries). Run only when the cosine check passes.

The result is kept in ``$CLIR_OT_CACHE/fidelity/<weights sha256>-<precision>-<recipe hash>.json`` with the numbers
measured, the machine and the time, whether it passed or not; :func:`require_fidelity` reads it before
any work. A gate run on a reduced pool (``pool_distractors``) is recorded but unlocks nothing: pools
saturate (R@100 near 0.95) and would hide differences the full corpus shows.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..artifacts import config_hash, hardware, write_json_atomic
from ..errors import ClirOtError
from ..inputs import read_json_or_none
from ..models.precision import RECIPES
from ..settings import cache_dir

#: precisions that need a passed gate before they are used
GATED = ("int8",)
MIN_COSINE = 0.99
TOLERANCE = 0.005
MEASURES = ("R@100", "nDCG@10")
COSINE_PASSAGES = 1000
GATE_LANG = "yo"


def record_path(weights_sha256: str, precision: str) -> Path:
    """Where the verdict for these weights and this precision's recipe (:data:`RECIPES`) is kept."""
    recipe = config_hash(RECIPES[precision])[:8]
    return cache_dir() / "fidelity" / f"{weights_sha256}-{precision}-{recipe}.json"


def _weights_sha256(model: str) -> str:
    from ..models.loading import model_fingerprint

    fingerprint = model_fingerprint(model)
    return fingerprint.get("sha256") or fingerprint["hub_id"].replace("/", "--")


def _measuring(config, precision: str):
    """``config`` at ``precision`` without the gate's own check: the gate is what measures it."""
    candidate = copy.copy(config)
    candidate.precision, candidate.precision_reason = precision, "fidelity gate"
    return candidate


def gate_command(model: str, precision: str) -> str:
    return f"clir-ot gate --model {model} --precision {precision}"


def require_fidelity(model: str, precision: str) -> None:
    """Refuse ``precision`` for ``model`` (one clear line) unless it is not gated or has passed the full-corpus
    gate for these weights; the refusal quotes the numbers of a failed gate."""
    if precision not in GATED:
        return
    record = read_json_or_none(record_path(_weights_sha256(model), precision))
    if record is None or not record.get("full_corpus"):
        ran = " (it ran on a reduced pool only, which cannot show the difference)" if record else ""
        raise ClirOtError(f"--precision {precision} has not passed the fidelity gate for {model}{ran}: run "
                          f"`{gate_command(model, precision)}` (min cosine ≥ {MIN_COSINE} on {COSINE_PASSAGES:,} "
                          f"yo passages, then full-corpus yo {' and '.join(MEASURES)} within {TOLERANCE} of fp32), "
                          "or use fp32")
    if not record["passed"]:
        raise ClirOtError(f"--precision {precision} is refused for {model}: it failed the fidelity gate on "
                          f"{record['measured']} ({record['verdict']}); use fp32")


def cosine_checks(model: str, precision: str, texts: dict[str, list[str]], batch_size: int) -> dict[str, dict]:
    """Minimum and mean cosine between ``precision`` and fp32 embeddings, per kind of text
    (``{"passage": [...], "query": [...]}``); each encoder is loaded once."""
    from ..models import load_encoder

    reference = load_encoder(model).set_precision("fp32")
    candidate = load_encoder(model).set_precision(precision)
    out = {}
    for kind, items in texts.items():
        a = reference.encode(items, kind, batch_size=batch_size)
        b = candidate.encode(items, kind, batch_size=batch_size)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out[kind] = {{"passage": "passages", "query": "queries"}[kind]: len(items), "min": float(cosine.min()),
                     "mean": float(cosine.mean())}
    return out


def run_gate(model: str, precision: str, *, pool_distractors: int | None = None, passages: int = COSINE_PASSAGES,
             batch_size: int = 32, on_stage: Callable[[str], None] | None = None) -> dict:
    """Measure ``precision`` against fp32 for ``model`` (the module docstring's two checks), record the result
    and return it. Document embeddings go through the embedding cache, so fp32's are computed once per
    machine."""
    from . import metrics
    from .evaluate import EvalConfig, dense_run, selected_queries

    if precision == "fp32":
        raise ClirOtError("the fidelity gate compares a lower precision with fp32; give bf16 or int8")
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
                    "recipe": RECIPES[precision],
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
    write_json_atomic(record_path(record["weights_sha256"], precision), record)
    return record
