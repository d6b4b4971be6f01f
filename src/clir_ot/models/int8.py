"""Linear layers in int8 for CPU inference: per-token activation scales, per-channel weight scales.

For an input row (one token) :math:`x \\in \\mathbb{R}^{K}` and a weight :math:`W \\in \\mathbb{R}^{N \\times K}`
with bias :math:`b`:

.. math::

    s_x = \\max_k |x_k| / 127, \\qquad \\hat{x} = \\mathrm{round}(x / s_x) \\in [-127, 127]^K

    s_n = \\max_k |W_{nk}| / 127, \\qquad \\hat{W}_{nk} = \\mathrm{round}(W_{nk} / s_n)

    y_n = s_x \\, s_n \\sum_k \\hat{x}_k \\hat{W}_{nk} + b_n

The sum is an exact int8 × int8 → int32 matrix product (``torch._int_mm``; at most 127² × K, far inside int32
for the widths of these encoders). Both scales are symmetric, so zero stays zero.

Why per token: PyTorch's dynamic int8 (``torch.ao.quantization.quantize_dynamic``) takes one activation scale
for the whole input tensor, that is for every token of the batch. The feed-forward output layer's input (after
GELU) has rare tokens with activations 4–55 times the median channel's maximum in me5-small, so one such token
coarsens every other token's rounding, and a passage's embedding depends on which passages share its batch.
Per-token scales make each token's result independent of the batch, and per-channel weight scales keep a
large weight from coarsening the rest of its layer. Measured on me5-small and 200 random yo passages against
fp32 (docs/evaluation.md): every linear layer this way, minimum cosine 0.9986; PyTorch's dynamic int8 of every
linear layer 0.930 (0.951 with per-channel weights); the full-corpus gate still refused it for me5-small
(docs/evaluation.md). What this does not fix: an input *channel* that is large in
every token sets every token's scale (the per-token scheme's own outlier case); the fidelity gate
(:mod:`clir_ot.eval.fidelity`) decides per model whether the result retrieves like fp32.

Inference only: the int8 weights are buffers, not parameters, so a converted model is neither trained nor saved.
"""

from __future__ import annotations

import torch

#: the largest magnitude of a symmetric int8 value
QMAX = 127


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x̂, s)``: each row of the 2-D float ``x`` as int8 with its own symmetric scale (``s`` shape ``(rows, 1)``;
    an all-zero row gets scale 1 and stays zero)."""
    scale = x.abs().amax(dim=1, keepdim=True) / QMAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(x / scale).clamp(-QMAX, QMAX).to(torch.int8), scale


class Int8Linear(torch.nn.Module):
    """``torch.nn.Linear`` in int8 (the module docstring's formula); float in, float out."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight, scale = quantize_rows(linear.weight.detach().float())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        #: the int8 weight, transposed once to the ``(K, N)`` layout the product reads
        self.register_buffer("weight_t", weight.t().contiguous())
        self.register_buffer("weight_scale", scale.reshape(1, -1))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        quantized, scale = quantize_rows(rows)
        y = torch._int_mm(quantized, self.weight_t).float() * (scale * self.weight_scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def int8_linear_layers(model: torch.nn.Module) -> int:
    """Replace every ``torch.nn.Linear`` of ``model`` (on the CPU) by :class:`Int8Linear`, in place; returns how
    many were replaced."""
    targets = [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    for name in targets:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, Int8Linear(getattr(owner, child)))
    return len(targets)
