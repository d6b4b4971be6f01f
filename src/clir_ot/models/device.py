"""Which torch device a run uses."""

from __future__ import annotations

from ..errors import ClirOtError


def resolve_device(name: str = "auto"):
    """``torch.device(name)``; ``auto`` is the GPU where one exists, else the CPU. A device that this machine
    does not have is refused with one line."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ClirOtError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    missing = (device.type == "cuda" and (not torch.cuda.is_available()
                                          or (device.index or 0) >= torch.cuda.device_count())) \
        or (device.type == "mps" and not torch.backends.mps.is_available())
    if missing:
        raise ClirOtError(f"device {name!r} is not available on this machine (use device: auto or cpu)")
    return device
