"""A condition is what its objective is: one given by ``objective:`` alone is not called OT (the method field's
default) by the stages, the model card, the logs or the report."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from clir_ot.distill.card import model_card
from clir_ot.distill.methods import objective_label
from clir_ot.distill.objective import uses_ot
from clir_ot.experiment import load_experiment
from clir_ot.reproduce import _ot_condition

pytestmark = pytest.mark.unit

TRAINING_DATA = {"training_languages": ["de"], "excluded_languages": ["yo"], "audit": [], "bitext": [],
                 "lexicon": None, "code_switching": {"p": 0.5, "mode": "bilingual", "languages": []}}


def _experiment(tmp_path: Path, conditions: dict) -> Path:
    path = tmp_path / "objectives.yaml"
    path.write_text(yaml.safe_dump({"student": "me5-small", "conditions": conditions, "compare": [],
                                    "profiles": {"p": {"seeds": [0, 1]}}}, sort_keys=False))
    return path


def test_an_objective_only_condition_is_not_labelled_ot(tmp_path: Path) -> None:
    path = _experiment(tmp_path, {"layer-kd": {"objective": {"kd_layer": 1.0, "kd_en": 0.5},
                                               "teacher_layer": 6, "student_layer": 6}})
    exp = load_experiment(path, "p")
    cfg = exp.distill_config("layer-kd", 0)
    assert cfg.method == "ot"  # the field's default: it says nothing about what trains
    assert not uses_ot(cfg) and _ot_condition(exp) is None
    assert objective_label(cfg.method, cfg.objective) == "1·kd_layer + 0.5·kd_en"
    card = model_card(asdict(cfg), TRAINING_DATA, {}, 10)
    assert "# me5-small + 1·kd_layer + 0.5·kd_en distillation (seed 0)" in card
    assert "distillation-ot" not in card and "+ ot distillation" not in card and "distillation-objective" in card


def test_an_objective_with_the_ot_term_is_ot_whatever_its_method(tmp_path: Path) -> None:
    path = _experiment(tmp_path, {"kd-named": {"method": "kd", "objective": {"ot": 1.0, "kd_en": 1.0}},
                                  "plain-kd": {"method": "kd"}})
    exp = load_experiment(path, "p")
    assert uses_ot(exp.distill_config("kd-named", 0)) and not uses_ot(exp.distill_config("plain-kd", 0))
    assert _ot_condition(exp) == "kd-named"
    assert objective_label("kd", None) == "kd"
