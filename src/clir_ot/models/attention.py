r"""Attention for bf16 inference on a CPU: bf16 matrix products around a float32 softmax, compiled.

.. math::

    \operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\big(S\big)\, V
    = \frac{E\,V}{E\,\mathbf{1}}, \qquad E = \exp\!\big(S - \max_j S\big), \qquad S = s\,Q K^\top + M,

per head, with :math:`s = d_{\text{head}}^{-1/2}` and :math:`M_{bj} = 0` where key :math:`j` of sequence
:math:`b` is a token and :math:`-\infty` (the float32 minimum) where it is padding. :math:`Q K^\top` and
:math:`E V` are bf16 matrix products (float32 accumulation); :math:`S`, its row maxima, :math:`E` and its
row sums are float32, :math:`E` is rounded to bf16 for the product with :math:`V`, and each output row is
divided by its sum afterwards: a flash-attention kernel's arithmetic, without its tiling. Dividing the
``(L, d_head)`` output instead of the ``(L, L)`` weights saves a pass over the weights.
``torch.compile`` (inductor) fuses the float32 steps into loops over :math:`S`; shapes are symbolic, so
batches of every size and length share one compiled kernel (a batch of one sequence compiles a second).
:math:`E` is written once, in bf16: its row sums are taken in the loop that computes it (the code computes
the exponentials twice, for the sums and for the product, so that inductor fuses both there; written as one
tensor, the sums waited for the product with :math:`V` and read a float32 copy of :math:`E` back, and the
attention at 512 tokens took 40% longer).

The row sums stay float32: summing the bf16-rounded exponentials moved yo's full-corpus R@100 outside the
fidelity bound (docs/performance.md). ``sdpa``, PyTorch's CPU flash-attention kernel, is what fp32 keeps; for
bf16 at me5-small's 12 heads of 32 dimensions this attention is the faster one on the measured CPUs
(docs/performance.md). Its output equals sdpa's within float32 rounding, and float64 arithmetic within the
rounding of its bf16 steps (tests/test_cpu_attention.py).

If inductor cannot compile here (it needs a C++ compiler), a warning says so once and the same arithmetic
runs uncompiled.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface

#: the name under which transformers' attention and mask registries know this attention
NAME = "clir_ot_cpu_bf16"


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
           scaling: float) -> torch.Tensor:
    """``softmax(scaling · query keyᵀ + mask) value`` for ``(B, heads, L, d)`` inputs as the module's docstring
    computes it, the result in the inputs' dtype; ``mask`` is additive, float32 and broadcastable to
    ``(B, heads, L, L)``."""
    scores = torch.matmul(query, key.transpose(2, 3)).float() * scaling
    if mask is not None:
        scores = scores + mask
    shifted = scores - scores.amax(dim=-1, keepdim=True)
    # exp twice: compiled, both fuse into the loop that takes the maxima, so no float32 copy of E is written
    total = torch.exp(shifted).sum(dim=-1, keepdim=True)
    return (torch.matmul(torch.exp(shifted).to(query.dtype), value).float() / total).to(query.dtype)


@lru_cache(maxsize=1)
def compiled_attend():  # noqa: ANN201 - what torch.compile returns
    """:func:`attend` compiled with symbolic shapes (compiled on its first call, once per process)."""
    return torch.compile(attend, dynamic=True)


_compile_failed: list[str] = []


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      **kwargs: object) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: ``(B, L, heads, d)`` output, no attention weights.
    Inference only: ``dropout`` is not applied."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    if not _compile_failed:
        try:
            out = compiled_attend()(query, key, value, attention_mask, scaling)
            return out.transpose(1, 2).contiguous(), None
        except Exception as error:  # inductor's failures have no common base class
            _compile_failed.append(f"{type(error).__name__}: {error}".splitlines()[0])
            warnings.warn(f"torch.compile could not compile the bf16 CPU attention ({_compile_failed[0]}); "
                          "running it uncompiled (slower, same arithmetic)", RuntimeWarning, stacklevel=2)
    return attend(query, key, value, attention_mask, scaling).transpose(1, 2).contiguous(), None


def padding_mask(attention_mask: torch.Tensor | None = None, **kwargs: object) -> torch.Tensor | None:
    """transformers' mask-function signature, for a bidirectional encoder: the ``(B, L)`` token mask (1 =
    token, 0 = padding) as an additive float32 ``(B, 1, 1, L)`` mask (0 or the float32 minimum)."""
    if attention_mask is None:
        return None
    return torch.where(attention_mask[:, None, None, :].bool(), 0.0, torch.finfo(torch.float32).min)


def use_cpu_bf16_attention(model: PreTrainedModel) -> bool:
    """Switch ``model`` to this attention; ``False`` (the model unchanged) where the model's code does not
    dispatch through transformers' attention registry."""
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, padding_mask)
    if not model._can_set_attn_implementation():
        return False
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME
