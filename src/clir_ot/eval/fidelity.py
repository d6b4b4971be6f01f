"""The fidelity gate: a lower precision is used only where it retrieves like fp32.

A reduced precision changes every embedding a little; whether the ranking survives is an empirical
question per model, so ``int8`` is refused until the gate has measured it for that model's weights:

1. **Cosine** between the candidate's and fp32's passage embeddings on ``COSINE_PASSAGES`` passages drawn
   at random (seed 0) from the yo corpus: the minimum must be at least ``MIN_COSINE``.
2. **Retrieval** on MIRACL yo dev, full corpus: every one of ``MEASURES`` within ``TOLERANCE`` of fp32
   (absolute difference of the means over queries). Run only when the cosine check passes.

The result is kept in ``$CLIR_OT_CACHE/fidelity/<weights sha256>-<precision>-<recipe hash>.json`` with the numbers
measured, the machine and the time, whether it passed or not, sealed by the sha256 of its content
(:func:`~clir_ot.artifacts.seal`): a record that is not sealed, was changed since, or holds a value of the wrong
kind (``"full_corpus": "false"``) is no record (:func:`read_record`). A gate smaller than a passed full-corpus
one (a reduced pool, fewer passages) is refused rather than written over it; :mod:`clir_ot.eval.gate` measures and
writes it, :func:`require_fidelity` reads it before any work. A gate run on a reduced pool (``pool_distractors``) is
recorded but unlocks nothing: pools saturate (R@100 near 0.95) and would hide differences the full corpus shows.

``auto`` (:func:`resolve_precision`) takes a gated precision only where the hardware alone would choose fp32 on
a CPU and the precision passed the full-corpus gate for the model **on this machine** (the same CPU model,
speed-deciding flags and thread count) and encoded its passages faster than fp32 there.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import config_hash, hardware, read_sealed
from ..errors import ClirOtError
from ..models.recipes import RECIPES
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
    recipe = config_hash(RECIPES[precision].key)[:8]
    return cache_dir() / "fidelity" / f"{weights_sha256}-{precision}-{recipe}.json"


def _weights_sha256(model: str) -> str:
    from ..models.loading import model_fingerprint

    fingerprint = model_fingerprint(model)
    return fingerprint.get("sha256") or fingerprint["hub_id"].replace("/", "--")


def gate_command(model: str, precision: str) -> str:
    return f"clir-ot gate --model {model} --precision {precision}"


def read_record(path: Path) -> dict | None:
    """The gate's record at ``path`` when it is sealed, unchanged and of the right kinds; ``None`` otherwise."""
    record = read_sealed(path)
    if record is None:
        return None
    cosine = record.get("cosine")
    kinds_ok = (isinstance(record.get("passed"), bool) and isinstance(record.get("full_corpus"), bool)
                and isinstance(record.get("machine"), dict) and isinstance(cosine, dict)
                and isinstance(cosine.get("passages"), int) and not isinstance(cosine.get("passages"), bool))
    return record if kinds_ok else None


def require_fidelity(model: str, precision: str) -> None:
    """Refuse ``precision`` for ``model`` (one clear line) unless it is not gated or has passed the full-corpus
    gate for these weights; the refusal quotes the numbers of a failed gate."""
    if precision not in GATED:
        return
    path = record_path(_weights_sha256(model), precision)
    if path.is_file() and read_record(path) is None:
        raise ClirOtError(f"the fidelity record {path} is not one the gate wrote (unsealed, changed since, or a "
                          f"value of the wrong kind); run `{gate_command(model, precision)}` again")
    record = read_record(path)
    if record is None or not record["full_corpus"]:
        ran = " (it ran on a reduced pool only, which cannot show the difference)" if record else ""
        raise ClirOtError(f"--precision {precision} has not passed the fidelity gate for {model}{ran}: run "
                          f"`{gate_command(model, precision)}` (min cosine ≥ {MIN_COSINE} on {COSINE_PASSAGES:,} "
                          f"yo passages, then full-corpus yo {' and '.join(MEASURES)} within {TOLERANCE} of fp32), "
                          "or use fp32")
    if not record["passed"]:
        raise ClirOtError(f"--precision {precision} is refused for {model}: it failed the fidelity gate on "
                          f"{record['measured']} ({record['verdict']}); use fp32")
    used = (record.get("cosine") or {}).get("passages", 0)
    if not isinstance(used, int) or used < COSINE_PASSAGES:
        raise ClirOtError(f"--precision {precision} has not passed the fidelity gate for {model}: its record checked "
                          f"the cosine on {used} passages, fewer than the {COSINE_PASSAGES:,} the gate needs; run "
                          f"`{gate_command(model, precision)}`")


def passed_here(model: str, precision: str) -> dict | None:
    """The fidelity record of ``precision`` for ``model`` if it passed the full-corpus gate on this machine (CPU
    model, speed-deciding flags and torch threads as :func:`~clir_ot.artifacts.hardware` reports them now) and
    encoded passages faster than fp32 there; ``None`` otherwise."""
    record = read_record(record_path(_weights_sha256(model), precision))
    if record is None or record["passed"] is not True or record["full_corpus"] is not True:
        return None
    here, there = hardware(), record.get("machine") or {}
    if any(here.get(k) != there.get(k) for k in ("cpu", "cpu_flags", "torch_threads")):
        return None
    rates = (record.get("cosine") or {}).get("per_second") or {}
    if not isinstance(rates.get(precision), int | float) or not isinstance(rates.get("fp32"), int | float):
        return None
    return record if rates[precision] > rates["fp32"] and record["cosine"].get("passages", 0) >= COSINE_PASSAGES \
        else None


def resolve_precision(requested: str, models: list[str]) -> dict:
    """:func:`~clir_ot.models.precision.precision_choice` of ``requested`` for the dense ``models`` of one run;
    where ``auto`` chose fp32 on a CPU, a gated precision that :func:`passed_here` for every one of them instead,
    its gate's rates in the reason."""
    from ..models.device import resolve_device
    from ..models.precision import precision_choice

    choice = precision_choice(requested)
    if requested != "auto" or choice["precision"] != "fp32" or not models or resolve_device().type != "cpu":
        return choice
    for precision in GATED:
        records = [passed_here(model, precision) for model in models]
        if all(records):
            rates = records[0]["cosine"]["per_second"]
            return choice | {"precision": precision, "reason": (
                f"{choice['reason']}; {precision} passed the fidelity gate for {', '.join(models)} on this machine, "
                f"{rates[precision]} passages/s against fp32's {rates['fp32']} ({records[0]['measured']})")}
    return choice
