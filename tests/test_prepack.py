"""bf16 linear layers prepacked for oneDNN: the same products as ``torch.nn.Linear``, only where oneDNN runs bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clir_ot.models import load_encoder, prepack

pytestmark = pytest.mark.integration

needs_onednn_bf16 = pytest.mark.skipif(not prepack.can_prepack(), reason="oneDNN does not run bf16 on this CPU")
TEXTS = ["passage one about rain", "ọ̀rọ̀ kejì", "a third, somewhat longer passage about the sea, rivers and the rain"]


@needs_onednn_bf16
@pytest.mark.parametrize("shape", [(5, 24), (2, 7, 24), (1, 24)])
def test_a_prepacked_layer_computes_the_plain_layers_product(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40).to(torch.bfloat16)
    x = torch.randn(*shape).to(torch.bfloat16)
    packed = prepack.PrepackedLinear(linear)
    with torch.inference_mode():
        got, expected = packed(x), linear(x)
    assert got.shape == (*shape[:-1], 40) and got.dtype == torch.bfloat16
    exact = x.double() @ linear.weight.double().T + linear.bias.double()
    # both round a float32 accumulation to bf16 once: at most one bf16 step (2^-8 relative) from the exact product
    torch.testing.assert_close(got.double(), exact, rtol=2 ** -8, atol=1e-3)
    torch.testing.assert_close(got, expected, rtol=2 ** -8, atol=1e-3)


@needs_onednn_bf16
def test_bf16_on_cpu_prepacks_every_linear_layer_and_embeds_as_without(tiny_xlmr_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("bf16")
    kinds = {type(m) for m in encoder.model.modules()}
    assert prepack.PrepackedLinear in kinds and torch.nn.Linear not in kinds
    monkeypatch.setattr(prepack, "can_prepack", lambda: False)
    plain = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("bf16")
    assert prepack.PrepackedLinear not in {type(m) for m in plain.model.modules()}
    ours, theirs = encoder.encode(TEXTS), plain.encode(TEXTS)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)
    assert encoder.recipe == plain.recipe


def test_nothing_is_prepacked_where_onednn_cannot_run_bf16_or_the_layer_is_not_bf16(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4).to(torch.bfloat16))
    assert prepack.prepack_linear_layers(model) == (1 if prepack.can_prepack() else 0)
    assert type(model[0]) is torch.nn.Linear  # the float32 layer stays as it is
    monkeypatch.setattr(prepack, "can_prepack", lambda: False)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4).to(torch.bfloat16))
    assert prepack.prepack_linear_layers(model) == 0 and type(model[0]) is torch.nn.Linear
