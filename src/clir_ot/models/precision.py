"""Inference precisions an encoder can run at, and the choice ``auto`` makes from the hardware.

``auto`` takes bf16 weights where the hardware multiplies bf16 natively — a CUDA GPU that supports it,
or a CPU with AMX (``amx_bf16``) or AVX512-BF16 (``avx512_bf16``) — and fp32 elsewhere (AVX2-only CPUs
emulate bf16 and gain nothing). The choice and the flags it was made from are recorded with every
evaluation (:func:`precision_choice`), and the resolved precision, never ``auto``, keys saved results.
Kept apart from the encoder so that configs can list and resolve precisions without loading torch models.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: CPU flags (as ``/proc/cpuinfo`` and ``lscpu`` name them) with native bf16 matrix products
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return frozenset()
    for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def choose_precision(device_type: str, flags: frozenset[str], cuda_bf16: bool = False) -> tuple[str, str]:
    """``(precision, reason)`` that ``auto`` resolves to on a device of ``device_type`` ("cpu", "cuda", ...)."""
    if device_type == "cuda":
        return ("bf16", "CUDA GPU with bf16") if cuda_bf16 else ("fp32", "CUDA GPU without bf16")
    if device_type == "cpu":
        native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        if native:
            return "bf16", f"CPU flags {', '.join(native)}"
        return "fp32", f"CPU without {' or '.join(BF16_CPU_FLAGS)}"
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
