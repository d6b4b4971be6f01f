"""The objective as data: registered terms, method shorthands, and what a term's weight does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clir_ot.distill import objective
from clir_ot.distill.trainer import DistillConfig, build_models
from clir_ot.errors import ClirOtError

EN = ["The house is red.", "All human beings are born free and equal in dignity and rights."]
X = ["Das Haus ist rot.", "Tous les êtres humains naissent libres et égaux en dignité et en droits."]


def grads(student: Path, **kw) -> dict[str, torch.Tensor]:
    cfg = DistillConfig(student=str(student), max_length=32, probe_langs=["yo"], check_lang=None, **kw)
    torch.manual_seed(0)
    models = build_models(cfg, torch.device("cpu"))
    models.student.model.train()
    torch.manual_seed(1)  # the same dropout draws for every mix
    objective.compute(models, cfg, EN, X, "passage")["loss"].backward()
    return {n: p.grad.clone() for n, p in models.student.model.named_parameters() if p.grad is not None}


def test_method_shorthands_resolve_to_weighted_terms() -> None:
    base = dict(probe_langs=["yo"], check_lang=None)
    assert objective.resolve(DistillConfig(method="kd", kd_weight=2, **base)) == {"kd_en": 2.0, "kd_x": 2.0}
    assert objective.resolve(DistillConfig(method="ot", **base)) == {"ot": 1.0, "kd_en": 1.0}
    assert objective.resolve(DistillConfig(method="ot", retention_weight=0, **base)) == {"ot": 1.0}
    assert objective.resolve(DistillConfig(method="noise", **base)) == {"kd_en": 1.0}
    assert objective.resolve(DistillConfig(objective={"ot": 1, "kd_x": 0.5}, **base)) == {"ot": 1.0, "kd_x": 0.5}
    with pytest.raises(ClirOtError, match="unknown objective term"):
        DistillConfig(objective={"contrastive": 1.0}, **base)
    with pytest.raises(ClirOtError, match="no term with a weight above 0"):
        DistillConfig(method="noise", retention_weight=0, **base)
    with pytest.raises(ClirOtError, match="must be a number ≥ 0"):
        DistillConfig(objective={"ot": -1}, **base)


@pytest.mark.parametrize("term", sorted(objective.TERMS))
def test_a_term_of_weight_zero_gives_no_gradient(term: str, tiny_xlmr_dir: Path) -> None:
    other = "kd_en" if term != "kd_en" else "kd_x"
    with_zero = grads(tiny_xlmr_dir, objective={term: 0.0, other: 1.0})
    without = grads(tiny_xlmr_dir, objective={other: 1.0})
    assert with_zero.keys() == without.keys()
    assert all(torch.equal(with_zero[k], without[k]) for k in without)
    alone = grads(tiny_xlmr_dir, objective={term: 1.0})
    assert sum(g.abs().sum() for g in alone.values()) > 0  # the term does move the student on its own
    doubled = grads(tiny_xlmr_dir, objective={term: 2.0})
    assert all(torch.allclose(doubled[k], 2 * alone[k], rtol=1e-4, atol=1e-7) for k in alone)
