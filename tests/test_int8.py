"""int8 linear layers with per-token activation and per-channel weight scales (clir_ot.models.int8)."""

from __future__ import annotations

import pytest
import torch

from clir_ot.models.int8 import QMAX, Int8Linear, int8_linear_layers, quantize_rows

pytestmark = pytest.mark.unit


def _linear(k: int = 48, n: int = 24, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(k, n)


def test_the_layer_computes_the_docstring_formula_in_float64() -> None:
    linear = _linear()
    x = torch.randn(2, 5, 48)
    rows = x.reshape(-1, 48).double()
    s_x = rows.abs().amax(1, keepdim=True) / QMAX
    s_w = linear.weight.double().abs().amax(1) / QMAX
    x_hat = torch.round(rows / s_x)
    w_hat = torch.round(linear.weight.double() / s_w[:, None])
    expected = (x_hat @ w_hat.T) * s_x * s_w + linear.bias.double()
    got = Int8Linear(linear)(x)
    assert got.shape == (2, 5, 24) and got.dtype == torch.float32
    torch.testing.assert_close(got.reshape(-1, 24).double(), expected, rtol=1e-6, atol=1e-6)


def test_a_tokens_result_does_not_depend_on_the_rest_of_its_batch() -> None:
    """One token with a 50× activation: PyTorch's dynamic int8 (one scale per input tensor) changes every other
    token's result, this layer none."""
    linear = _linear()
    x = torch.randn(8, 48)
    loud = x.clone()
    loud[0] *= 50
    ours = Int8Linear(linear)
    assert torch.equal(ours(loud)[1:], ours(x)[1:]) and torch.equal(ours(x)[3:4], ours(x[3:4]))
    dynamic = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear},
                                                     dtype=torch.qint8)
    assert not torch.allclose(dynamic(loud)[1:], dynamic(x)[1:], atol=1e-3)


def test_rounding_error_stays_small_and_zero_stays_zero() -> None:
    linear = _linear(384, 96)
    x = torch.randn(64, 384)
    exact, got = linear(x), Int8Linear(linear)(x)
    assert torch.nn.functional.cosine_similarity(exact, got, dim=1).min() > 0.999
    assert torch.equal(Int8Linear(linear)(torch.zeros(3, 384)), linear.bias.expand(3, -1))
    q, scale = quantize_rows(torch.tensor([[0.0, 0.0], [-2.0, 1.0]]))
    assert q.tolist() == [[0, 0], [-127, 64]] and scale.flatten().tolist() == pytest.approx([1.0, 2.0 / 127])


def test_every_linear_layer_of_a_model_is_replaced() -> None:
    model = torch.nn.Sequential(_linear(8, 8), torch.nn.GELU(), torch.nn.Sequential(_linear(8, 4)))
    assert int8_linear_layers(model) == 2
    assert [type(m).__name__ for m in model.modules()].count("Int8Linear") == 2
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert model(torch.randn(3, 8)).shape == (3, 4)
