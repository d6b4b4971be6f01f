"""Linear layers whose bf16 weights are reordered once into oneDNN's blocked layout, for CPU inference.

A bf16 :class:`torch.nn.Linear` on a CPU hands oneDNN its weight in PyTorch's row-major layout on every call,
while oneDNN's bf16 kernels read a blocked layout. :func:`prepack_linear_layers` reorders every
weight once (``torch.ops.mkldnn._reorder_linear_weight``) and runs the layer through the operator that reads
the reordered weight (``torch.ops.mkldnn._linear_pointwise``), which is what inductor's weight freezing does for
bf16 linear layers on a CPU. The arithmetic is the same: only the weights' layout changes (measured speed-ups:
docs/performance.md).

Only where oneDNN runs bf16 on this CPU (``torch.ops.mkldnn._is_mkldnn_bf16_supported``); elsewhere the layers
are left as they are. Inference only: the reordered weights are not parameters, so a prepacked model is
neither trained nor saved.
"""

from __future__ import annotations

import torch


class PrepackedLinear(torch.nn.Module):
    """``torch.nn.functional.linear(x, weight, bias)`` with ``weight`` reordered once for oneDNN."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")


def can_prepack() -> bool:
    """Whether oneDNN runs bf16 matrix products on this CPU (so that :class:`PrepackedLinear` can run)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@torch.no_grad()
def prepack_linear_layers(model: torch.nn.Module) -> int:
    """Replace every bf16 :class:`torch.nn.Linear` of ``model`` (on a CPU) by a :class:`PrepackedLinear`, in
    place; the number replaced (0 where :func:`can_prepack` is false)."""
    if not can_prepack():
        return 0
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16 \
                    and child.weight.device.type == "cpu":
                setattr(parent, name, PrepackedLinear(child))
                replaced += 1
    return replaced
