"""Inference precisions an encoder can run at, and the choice ``auto`` makes from the hardware.

``auto`` takes bf16 weights where bf16 matrix products are faster than fp32 ones — a CUDA GPU that
supports bf16, or a CPU with AMX (``amx_bf16``) — and fp32 elsewhere. AVX512-BF16 without AMX is not
enough: on a 2-core Intel Xeon with ``avx512_bf16`` and no AMX (``make bench``, 2026-11-28) bf16 matrix
products at the encoder's shapes ran at 162 GFLOP/s against 313 in fp32, and me5-small encoded 29 yo
passages/s in bf16 against 45 in fp32. AVX2-only CPUs emulate bf16 and gain nothing either. The
choice and its reason are recorded with every evaluation (:func:`precision_choice`), the CPU's flags in every
manifest (:func:`clir_ot.artifacts.hardware`), and the resolved precision, never ``auto``, keys saved results.
Kept apart from the encoder so that configs can list and resolve precisions without loading torch models.
"""

from __future__ import annotations

from ..artifacts import cpu_flags

PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: what each precision does to the model (:meth:`clir_ot.models.Encoder.set_precision`); results, cache entries and
#: fidelity verdicts are keyed by it, so that a change of recipe never reuses the old one's numbers
RECIPES = {"fp32": "fp32", "bf16": "bf16 weights, float32 pooling",
           "int8": "PyTorch dynamic int8 of the attention's linear layers; feed-forward in fp32"}
#: CPU flag (as ``/proc/cpuinfo`` and ``lscpu`` name it) whose bf16 matrix products beat fp32 ones
BF16_CPU_FLAG = "amx_bf16"


def choose_precision(device_type: str, flags: frozenset[str], cuda_bf16: bool = False) -> tuple[str, str]:
    """``(precision, reason)`` that ``auto`` resolves to on a device of ``device_type`` ("cpu", "cuda", ...)."""
    if device_type == "cuda":
        return ("bf16", "CUDA GPU with bf16") if cuda_bf16 else ("fp32", "CUDA GPU without bf16")
    if device_type == "cpu":
        if BF16_CPU_FLAG in flags:
            return "bf16", f"CPU flag {BF16_CPU_FLAG} (AMX)"
        if "avx512_bf16" in flags:
            return "fp32", "CPU with avx512_bf16 but no AMX (amx_bf16): bf16 matrix products are slower than fp32 there"
        return "fp32", f"CPU without {BF16_CPU_FLAG} (AMX)"
    return "fp32", f"device {device_type}"


def precision_choice(requested: str, device_type: str | None = None) -> dict:
    """``{"requested", "precision", "reason"}``: ``requested`` itself unless it is ``auto``; then the choice for
    ``device_type`` (default: the device encoders load on here)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; expected one of {PRECISIONS}")
    if requested != "auto":
        return {"requested": requested, "precision": requested, "reason": "asked for"}
    import torch

    if device_type is None:
        from .loading import resolve_device

        device_type = resolve_device().type
    cuda_bf16 = device_type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    precision, reason = choose_precision(device_type, cpu_flags(), cuda_bf16)
    return {"requested": "auto", "precision": precision, "reason": reason}
