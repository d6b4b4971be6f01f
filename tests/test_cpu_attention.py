"""bf16 CPU inference: the float32-softmax attention (against PyTorch's SDPA as the oracle) and the heap setting."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
import torch

from clir_ot.models import attention, heap, load_encoder
from clir_ot.models.recipes import RECIPES

BF16_OWN_ATTENTION = RECIPES["bf16-own-attention"].key

pytestmark = pytest.mark.integration

TEXTS = ["passage one about rain", "ọ̀rọ̀ kejì", "a third, somewhat longer passage about the sea, rivers and the rain",
         "x"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attend_equals_pytorch_sdpa_with_a_padding_mask(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    query, key, value = (torch.randn(3, 4, 7, 8, dtype=dtype) for _ in range(3))
    tokens = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] + [0] * 6])
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=tokens[:, None, None, :].bool(), scale=0.3)
    got = attention.attend(query, key, value, attention.padding_mask(tokens), 0.3)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)  # softmax in float32 bounds float64's match
    assert attention.padding_mask(None) is None


@pytest.mark.parametrize("compiled", [False, True])
def test_bf16_attention_is_float64_arithmetic_up_to_the_rounding_of_its_bf16_steps(compiled: bool) -> None:
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 3, 9, 8).to(torch.bfloat16) for _ in range(3))
    mask = attention.padding_mask(torch.tensor([[1] * 9, [1] * 4 + [0] * 5]))
    scores = query.double() @ key.double().transpose(2, 3) * 0.4 + mask.double()
    expected = torch.softmax(scores, dim=-1) @ value.double()
    got = (attention.compiled_attend() if compiled else attention.attend)(query, key, value, mask, 0.4)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), expected, rtol=1.6e-2, atol=1.6e-2)  # a few bf16 steps of 2^-8


def test_bf16_on_cpu_runs_this_attention_and_matches_sdpa_in_bf16(tiny_xlmr_dir: Path) -> None:
    sdpa = load_encoder(str(tiny_xlmr_dir), device="cpu")
    sdpa.model.to(dtype=torch.bfloat16)
    assert sdpa.model.config._attn_implementation == "sdpa"
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("bf16")
    assert encoder.model.config._attn_implementation == attention.NAME
    fp32 = load_encoder(str(tiny_xlmr_dir), device="cpu").encode(TEXTS)
    ours, theirs = encoder.encode(TEXTS), sdpa.encode(TEXTS)
    assert (ours * fp32).sum(1).min() > 0.995 and (ours * theirs).sum(1).min() > 0.995
    # padding is masked: a text alone and in a batch padded to a longer one embed alike (unmasked padding moved
    # these embeddings by up to 0.0026)
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(alone, ours, atol=5e-4)


def test_fp32_keeps_sdpa(tiny_xlmr_dir: Path) -> None:
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("fp32")
    assert encoder.model.config._attn_implementation == "sdpa" and encoder.recipe == RECIPES["fp32"].key


def test_the_recipe_says_whether_the_bf16_attention_took(tiny_xlmr_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot.data.benchmarks import get_benchmark
    from clir_ot.eval.evaluate import embeddings_config

    switched = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("bf16")
    assert switched.recipe == RECIPES["bf16"].key
    kept = load_encoder(str(tiny_xlmr_dir), device="cpu")
    monkeypatch.setattr(kept.model, "_can_set_attn_implementation", lambda: False)  # code outside the registry
    kept.set_precision("bf16")
    assert kept.model.config._attn_implementation == "sdpa" and kept.recipe == BF16_OWN_ATTENTION
    configs = [embeddings_config(e, str(tiny_xlmr_dir), get_benchmark("miracl"), "yo", "dev", "bf16", False,
                                 "full corpus", [], ["d1"]) for e in (switched, kept)]
    assert [c["precision_recipe"] for c in configs] == [RECIPES["bf16"].key, BF16_OWN_ATTENTION]


def test_a_saved_bf16_result_is_keyed_by_the_recipe_that_would_run(tiny_xlmr_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Reuse is decided before the model is loaded: the recipe comes from the model's class, and a model that
    would now keep its own attention does not reuse the result that the registry's attention made."""
    from transformers import XLMRobertaModel

    from clir_ot.eval.evaluate import EvalConfig, evaluate
    from clir_ot.models.loading import precision_recipe

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    cfg = EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), pool_distractors=30, query_sample=10, batch_size=16,
                     precision="bf16")
    (first,) = evaluate(cfg, tmp_path / "out")
    assert first.info["precision"]["recipe"] == RECIPES["bf16"].key == precision_recipe(str(tiny_xlmr_dir), "bf16")
    (again,) = evaluate(cfg, tmp_path / "out")
    assert again.reused
    monkeypatch.setattr(XLMRobertaModel, "_can_set_attn_implementation", classmethod(lambda cls: False))
    assert precision_recipe(str(tiny_xlmr_dir), "bf16") == BF16_OWN_ATTENTION
    assert precision_recipe(str(tiny_xlmr_dir), "fp32") == RECIPES["fp32"].key
    (own,) = evaluate(cfg, tmp_path / "out")
    assert not own.reused and own.info["precision"]["recipe"] == BF16_OWN_ATTENTION
    assert own.info["embeddings"]["key"] != first.info["embeddings"]["key"]


def test_a_failed_compile_warns_once_and_runs_the_same_arithmetic_uncompiled(tiny_xlmr_dir: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("bf16")
    compiled = encoder.encode(TEXTS)

    def no_compiler(*args: object) -> None:
        raise RuntimeError("no C++ compiler found\nsecond line")

    monkeypatch.setattr(attention, "compiled_attend", lambda: no_compiler)
    monkeypatch.setattr(attention, "_compile_failed", [])
    with pytest.warns(RuntimeWarning, match=r"could not compile .*RuntimeError: no C\+\+ compiler found\)") as caught:
        uncompiled = encoder.encode(TEXTS)
    assert len(caught) == 1
    assert (uncompiled * compiled).sum(1).min() > 0.9999


def test_the_heap_setting_is_taken_by_glibc_and_left_alone_where_the_user_chose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    libc = ctypes.CDLL(None)
    glibc = hasattr(libc, "gnu_get_libc_version")
    heap.keep_freed_memory.cache_clear()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert heap.keep_freed_memory() is False
    heap.keep_freed_memory.cache_clear()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert heap.keep_freed_memory() is glibc
    heap.keep_freed_memory.cache_clear()
