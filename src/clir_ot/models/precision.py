"""Inference precisions an encoder can run at, and the choice ``auto`` makes from the hardware.

``auto`` takes bf16 weights where bf16 matrix products are faster than fp32 ones, and fp32 elsewhere:

- a CUDA GPU: bf16 where it supports bf16;
- a CPU: bf16 only where it has native bf16 matrix instructions (``lscpu`` flag ``amx_bf16`` or
  ``avx512_bf16``; elsewhere bf16 is emulated, at 1–2 GFLOP/s) **and** a bf16 matrix product at
  me5-small's feed-forward shape, measured once per machine (:func:`bf16_matmul_speedup`), runs at least
  :data:`BF16_MIN_SPEEDUP` times as fast as an fp32 one. The flags alone do not decide: machines with
  ``avx512_bf16`` and no AMX were measured on both sides of the threshold (docs/performance.md).

The choice, its reason and the measured rates are recorded with every evaluation (:func:`precision_choice`),
the CPU's flags in every manifest (:func:`clir_ot.artifacts.hardware`), and the resolved precision's recipe
(:mod:`.recipes`), never ``auto``, keys saved results. Kept apart from the encoder so that configs can list
and resolve precisions without loading models.
"""

from __future__ import annotations

import time
from functools import lru_cache

from ..artifacts import config_hash, cpu_flags, hardware, read_sealed, seal, write_json_atomic
from ..settings import cache_dir

#: the precisions a command or configuration can ask for; each but ``auto`` names a recipe of :mod:`.recipes`
#: the precisions, each with one line for the command line's help and the docs' tables
PRECISION_DESCRIPTIONS: dict[str, str] = {
    "auto": "bf16 where bf16 matrix products run ≥ 1.5× fp32 ones (measured once per CPU) or on a GPU with bf16; "
            "int8 only where it passed the full-corpus gate on this machine and encoded faster; else fp32",
    "fp32": "the reference",
    "bf16": "weights cast once; machine-dependent in the last digits",
    "int8": "per-token / per-channel int8 linear layers; only after `clir-ot gate` passed for the model",
}
PRECISIONS = tuple(PRECISION_DESCRIPTIONS)
#: CPU flags (as ``/proc/cpuinfo`` and ``lscpu`` name them) of native bf16 matrix instructions: AMX tiles,
#: AVX-512 bf16 dot products
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: how much faster than fp32 a bf16 matrix product must run for ``auto`` to take bf16 on a CPU: encoding gains
#: less than its matrix products (attention, GELU and layer norm speed up less; on the AMD EPYC a 4.4× faster
#: matrix product made encoding 3.0× faster)
BF16_MIN_SPEEDUP = 1.5
#: the probe's matrix product: ``(rows × hidden) @ (hidden × ffn)``, me5-small's feed-forward input layer
PROBE_SHAPE = (1024, 384, 1536)


def choose_precision(device_type: str, flags: frozenset[str], cuda_bf16: bool = False,
                     bf16_speedup: float | None = None) -> tuple[str, str]:
    """``(precision, reason)`` that ``auto`` resolves to on a device of ``device_type`` ("cpu", "cuda", ...).

    On a CPU with a native bf16 flag, ``bf16_speedup`` is the measured ratio of bf16 to fp32 matrix-product
    rates (:func:`bf16_matmul_speedup`); without it such a CPU keeps fp32."""
    if device_type == "cuda":
        return ("bf16", "CUDA GPU with bf16") if cuda_bf16 else ("fp32", "CUDA GPU without bf16")
    if device_type != "cpu":
        return "fp32", f"device {device_type}"
    native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if not native:
        return "fp32", f"CPU without {' or '.join(BF16_CPU_FLAGS)}: bf16 is emulated there"
    if bf16_speedup is None:
        return "fp32", f"CPU flag {native[0]}, bf16 speed not measured"
    verdict = "bf16" if bf16_speedup >= BF16_MIN_SPEEDUP else "fp32"
    relation = "≥" if verdict == "bf16" else "<"
    return verdict, (f"CPU flag {native[0]}; bf16 matrix products measured {bf16_speedup:.2f}× fp32 here "
                     f"({relation} {BF16_MIN_SPEEDUP})")


def matmul_gflops(dtype: object, shape: tuple[int, int, int] = PROBE_SHAPE, repeat: int = 5) -> float:
    """Best rate (GFLOP/s) of ``repeat`` timed matrix products of ``shape`` in ``dtype``, after one warm-up."""
    import torch

    rows, k, n = shape
    a, b = torch.randn(rows, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * rows * k * n / best / 1e9


@lru_cache(maxsize=1)
def bf16_matmul_speedup() -> dict:
    """``{"fp32_gflops", "bf16_gflops", "speedup", "measured", "cpu", "shape"}``: this CPU's matrix-product rates at
    :data:`PROBE_SHAPE`.

    Measured once per machine and kept in ``$CLIR_OT_CACHE/hardware/`` under the CPU model, its speed-deciding
    flags, torch's version and thread count (:func:`~clir_ot.artifacts.hardware`), so that every later run on
    the machine makes the same choice."""
    import torch

    here = hardware()
    key = config_hash([here["cpu"], here["cpu_flags"], torch.__version__, here["torch_threads"], PROBE_SHAPE])
    path = cache_dir() / "hardware" / f"bf16-speedup-{key}.json"
    recorded = read_sealed(path)  # a hand-written or edited record is measured again, never trusted
    if recorded is not None and all(isinstance(recorded.get(k), int | float) and not isinstance(recorded.get(k), bool)
                                    for k in ("fp32_gflops", "bf16_gflops", "speedup")):
        return recorded
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    result = {"fp32_gflops": round(fp32, 1), "bf16_gflops": round(bf16, 1), "speedup": round(bf16 / fp32, 3),
              "measured": time.strftime("%Y-%m-%d %H:%M"), "cpu": here["cpu"], "shape": list(PROBE_SHAPE)}
    path.parent.mkdir(parents=True, exist_ok=True)
    result = seal(result)
    write_json_atomic(path, result)
    return result


def precision_choice(requested: str, device_type: str | None = None) -> dict:
    """``{"requested", "precision", "reason"}`` (plus ``"bf16_matmul"``, the measured rates, where the CPU's
    choice rested on them): ``requested`` itself unless it is ``auto``; then the choice for ``device_type``
    (default: the device encoders load on here)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; expected one of {PRECISIONS}")
    if requested != "auto":
        return {"requested": requested, "precision": requested, "reason": "asked for"}
    import torch

    if device_type is None:
        from .device import resolve_device

        device_type = resolve_device().type
    cuda_bf16 = device_type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    flags = cpu_flags()
    measured = bf16_matmul_speedup() if device_type == "cpu" and set(BF16_CPU_FLAGS) & flags else None
    precision, reason = choose_precision(device_type, flags, cuda_bf16, measured and measured["speedup"])
    return {"requested": "auto", "precision": precision, "reason": reason} | (
        {"bf16_matmul": measured} if measured else {})
