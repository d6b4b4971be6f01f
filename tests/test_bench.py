"""The arithmetic the encoding benchmark rests on."""

import pytest
import torch

from clir_ot.bench import linear_flops_per_token

pytestmark = pytest.mark.integration


def test_linear_flops_count_every_linear_layer_once():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(4, 2)))
    assert linear_flops_per_token(model) == 2 * (3 * 4 + 4 * 2)
    assert linear_flops_per_token(torch.nn.Embedding(10, 4)) == 0


def test_a_generation_and_a_capped_instruction_set_are_kinds_of_their_own(monkeypatch) -> None:
    from clir_ot.bench import isa_cap, machine_kind

    flags = frozenset({"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert isa_cap() is None and machine_kind(flags, "AMD EPYC", isa_cap()) == "AMD, AVX-512, no AMX"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert machine_kind(flags, "AMD EPYC", isa_cap(), "family 25 model 17") == \
        "AMD, AVX-512, no AMX, family 25 model 17, capped at AVX2 (emulation)"
