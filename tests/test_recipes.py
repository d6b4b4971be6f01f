"""The precision recipes: one registered function each, its docstring the description and fidelity bound."""

from __future__ import annotations

import pytest

from clir_ot.models.precision import PRECISIONS
from clir_ot.models.recipes import RECIPES, recipe, recipe_for

pytestmark = pytest.mark.unit


def test_every_precision_has_a_recipe_with_a_description_and_a_fidelity_bound() -> None:
    assert set(PRECISIONS) - {"auto"} <= RECIPES.keys() == {"fp32", "bf16", "bf16-own-attention", "int8"}
    assert len({r.key for r in RECIPES.values()}) == len(RECIPES)
    for name, r in RECIPES.items():
        assert r.name == name and r.version >= 1 and r.description, name
        assert name == "fp32" or "Fidelity" in r.description, name


def test_the_keys_of_saved_results_are_those_they_were_recorded_under() -> None:
    """Saved evaluations, embedding-cache entries and gate verdicts were filed under these texts before the
    recipes were functions; they stay reusable only while version 1 keeps them."""
    assert RECIPES["fp32"].key == "fp32"
    assert RECIPES["int8"].version == 2  # version 1 failed the gate and filed nothing that is kept
    assert RECIPES["bf16"].key == (
        "bf16 weights; on a CPU, linear layers prepacked for oneDNN where it runs bf16 and a float32 softmax, its "
        "sums fused with the exponentials, normalised after the product with V; float32 pooling")


def test_a_recipe_or_key_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        recipe("bf16", version=2, key="another key")(lambda model, device: model)
    with pytest.raises(ValueError, match="registered twice"):
        recipe("bf16-v2", version=1, key=RECIPES["bf16"].key)(lambda model, device: model)
    assert "bf16-v2" not in RECIPES


class _Registered:
    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        return True


class _OwnAttention(_Registered):
    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        return False


def test_bf16_keeps_a_models_own_attention_on_a_cpu_only() -> None:
    assert recipe_for("bf16", "cpu", _Registered) is RECIPES["bf16"]
    assert recipe_for("bf16", "cpu", _OwnAttention) is RECIPES["bf16-own-attention"]
    assert recipe_for("bf16", "cuda", _OwnAttention) is RECIPES["bf16"]
    assert recipe_for("int8", "cpu", _OwnAttention) is RECIPES["int8"]
