"""Precision recipes: what each inference precision does to a loaded model, one registered function each.

    RECIPES["bf16"]                              # name, version, key, the function and its description
    recipe_for("bf16", "cpu", hf_model)          # the recipe that runs for this model on this device

A recipe's function takes the model and its device and returns the model to run; its docstring is the
recipe's description and states its fidelity bound against fp32. :attr:`Recipe.key` files every saved
result, embedding-cache entry and fidelity verdict made with the recipe (``Encoder.set_precision`` records it
as ``Encoder.recipe``), so that a changed recipe never reuses an earlier one's numbers: change what a
function does, raise its ``version`` and give it a new ``key``. Version 1 of each recipe keeps the key text
its results were first recorded under, so that they stay reusable.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ClirOtError
from .attention import use_cpu_bf16_attention
from .int8 import int8_linear_layers
from .prepack import prepack_linear_layers

Apply = Callable[[torch.nn.Module, torch.device], torch.nn.Module]


@dataclass(frozen=True)
class Recipe:
    """One registered precision recipe (:func:`recipe`)."""

    name: str
    version: int
    #: what results made with this recipe are filed under (a new version: a new key)
    key: str
    apply: Apply

    @property
    def description(self) -> str:
        """The recipe function's docstring: what it does and its fidelity bound."""
        return inspect.getdoc(self.apply) or ""


#: every recipe by name: the precisions of :data:`~clir_ot.models.precision.PRECISIONS` but ``auto``, and the
#: variant :func:`recipe_for` picks for a model
RECIPES: dict[str, Recipe] = {}


def recipe(name: str, version: int, key: str) -> Callable[[Apply], Apply]:
    """Register the decorated function as recipe ``name`` (its ``version`` and ``key``)."""

    def register(apply: Apply) -> Apply:
        if name in RECIPES or any(r.key == key for r in RECIPES.values()):
            raise ValueError(f"recipe {name!r} or its key is registered twice")
        RECIPES[name] = Recipe(name, version, key, apply)
        return apply

    return register


@recipe("fp32", version=1, key="fp32")
def fp32(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The weights as loaded, in float32: the reference every other recipe is measured against."""
    return model


@recipe("bf16", version=1, key="bf16 weights; on a CPU, linear layers prepacked for oneDNN where it runs bf16 and a "
        "float32 softmax, its sums fused with the exponentials, normalised after the product with V; float32 pooling")
def bf16(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """bf16 weights, cast once; on a CPU, the linear layers prepacked for oneDNN where it runs bf16
    (:mod:`.prepack`) and attention with a float32 softmax whose sums are fused with the exponentials, normalised
    after the product with V (:mod:`.attention`); pooling in float32.

    Fidelity (me5-small, MIRACL yo dev, full corpus, AMD EPYC with ``avx512_bf16``): R@100 0.7941 against fp32's
    0.7941 and nDCG@10 0.4974 against 0.4939, within the 0.005 of ``clir-ot gate``; passage embeddings at a
    cosine ≥ 0.99995 to fp32's (docs/precision.md)."""
    model.to(dtype=torch.bfloat16)
    if device.type == "cpu":
        prepack_linear_layers(model)
        if not use_cpu_bf16_attention(model):
            raise ClirOtError(f"{type(model).__name__} did not take the bf16 CPU attention; its recipe is "
                              "bf16-own-attention (recipe_for)")
    return model


@recipe("bf16-own-attention", version=1, key="bf16 weights; linear layers prepacked for oneDNN where it runs bf16; "
        "the model's own attention (not in transformers' registry); float32 pooling")
def bf16_own_attention(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """bf16 on a CPU for a model whose code does not dispatch through transformers' attention registry: bf16
    weights and prepacked linear layers as :func:`bf16`, the model's own attention in bf16.

    Fidelity: not measured; keyed apart from :func:`bf16` so that its results never stand for bf16's."""
    model.to(dtype=torch.bfloat16)
    if device.type == "cpu":
        prepack_linear_layers(model)
    return model


@recipe("int8", version=2, key="int8 of every linear layer: per-token activation and per-channel weight scales, "
        "int32 sums (torch._int_mm); the rest in fp32")
def int8(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every linear layer in int8 with a symmetric scale per token of its input and per output channel of its
    weight, summed exactly in int32 (:mod:`.int8`); attention, GELU, layer norm and pooling stay fp32. On the
    CPU (a model elsewhere is moved there), inference only. A token's result in a linear layer does not depend
    on the other tokens of its batch.

    Version 1 (PyTorch's dynamic int8 of the attention's linear layers, one scale per batch) failed the gate on
    an Intel Xeon: R@100 0.7346 against fp32's 0.7941. Version 2 failed it for me5-small too (docs/evaluation.md).

    Fidelity: refused for a model until ``clir-ot gate`` passed it for those weights (:mod:`clir_ot.eval.fidelity`):
    a minimum passage cosine ≥ 0.99 to fp32 and full-corpus yo R@100 and nDCG@10 within 0.005 of fp32."""
    model = model.cpu()
    int8_linear_layers(model)
    return model


def recipe_for(precision: str, device_type: str, model: object) -> Recipe:
    """The recipe a resolved ``precision`` (not ``auto``) runs for ``model`` (a transformers model or its class,
    before it is loaded) on a device of ``device_type``: bf16 on a CPU keeps the model's own attention where its
    code does not dispatch through transformers' attention registry."""
    if precision == "bf16" and device_type == "cpu" and not model._can_set_attn_implementation():
        return RECIPES["bf16-own-attention"]
    return RECIPES[precision]
