"""The objective as data: registered terms, method shorthands, and what a term's weight does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clir_ot.distill import objective
from clir_ot.distill.components import build_models
from clir_ot.distill.config import DistillConfig
from clir_ot.errors import ClirOtError

pytestmark = pytest.mark.integration

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
    with pytest.raises(ClirOtError, match="must be a finite number ≥ 0"):
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


def test_kd_layer_at_the_last_layer_equals_todays_kd_terms(tiny_xlmr_dir: Path) -> None:
    cfg = dict(probe_langs=["yo"], check_lang=None)
    assert objective.resolve(DistillConfig(method="kd-layer", **cfg)) == {"kd_layer": 1.0, "kd_en": 1.0}
    layer = grads(tiny_xlmr_dir, objective={"kd_layer": 1.0})
    kd = grads(tiny_xlmr_dir, objective={"kd_en": 1.0, "kd_x": 1.0})
    assert layer.keys() == kd.keys()
    assert all(torch.allclose(layer[k], kd[k], rtol=1e-5, atol=1e-8) for k in kd)
    for student_layer in (-1, 2):  # -1 and the explicit index of the last of the tiny model's 2 layers
        values = {}
        for mix in ({"kd_layer": 1.0}, {"kd_en": 1.0, "kd_x": 1.0}):
            dc = DistillConfig(student=str(tiny_xlmr_dir), max_length=32, objective=mix, student_layer=student_layer,
                               teacher_layer=student_layer, **cfg)
            torch.manual_seed(0)
            models = build_models(dc, torch.device("cpu"))
            models.student.model.train()
            torch.manual_seed(1)
            values[tuple(mix)] = objective.compute(models, dc, EN, X, "passage")["loss"].item()
        assert values[("kd_layer",)] == pytest.approx(values[("kd_en", "kd_x")], rel=1e-6)
        assert values[("kd_layer",)] > 0


def test_kd_layer_gives_no_gradient_above_its_layer(tiny_xlmr_dir: Path) -> None:
    at_1 = grads(tiny_xlmr_dir, objective={"kd_layer": 1.0}, student_layer=1, teacher_layer=1)
    lower = [g for name, g in at_1.items() if ".layer.0." in name]
    assert lower and sum(g.abs().sum() for g in lower) > 0
    assert not any(".layer.1." in name and g.abs().sum() > 0 for name, g in at_1.items())
    at_last = grads(tiny_xlmr_dir, objective={"kd_layer": 1.0})  # the control: the top layer does get a gradient
    assert sum(g.abs().sum() for name, g in at_last.items() if ".layer.1." in name) > 0
