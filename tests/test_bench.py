"""The arithmetic the encoding benchmark rests on."""

import pytest
import torch

from clir_ot.bench import linear_flops_per_token

pytestmark = pytest.mark.integration


def test_linear_flops_count_every_linear_layer_once():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(4, 2)))
    assert linear_flops_per_token(model) == 2 * (3 * 4 + 4 * 2)
    assert linear_flops_per_token(torch.nn.Embedding(10, 4)) == 0
