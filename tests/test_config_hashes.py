"""Finished runs stay reusable: the configuration hashes that their manifests recorded are what today's code
computes for the same stage (:func:`clir_ot.config.result_key`: fields added since, at their defaults, are not
keyed). A changed field, default or conversion would make every earlier run look like
"another configuration" (rerun or refused), so it must be a deliberate, visible change to this test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clir_ot.config import build, read_yaml, result_key
from clir_ot.eval.evaluate import EvalConfig
from clir_ot.experiment import load_experiment

pytestmark = pytest.mark.unit

EVALUATIONS = Path("reports/zero_shot_miracl/cpu-ot/full-corpus/evaluations")


@pytest.mark.parametrize("stage", ["before", "kd-s0", "ot-mid-s0"])
def test_a_committed_evaluation_manifest_hash_is_recomputed_from_its_config(stage: str) -> None:
    folder = EVALUATIONS / stage
    recorded = json.loads((folder / "manifest.json").read_text())["config_hash"]
    config = build(EvalConfig, read_yaml(folder / "config.yaml"))
    assert result_key(config) == recorded


# recorded by the confirm profile's finished kd and kd-mid students of seed 10 (run folder manifest.json,
# 2026-12-06, commit bd582fb), before the trainer was split into config, components, checkpoint and trainer
@pytest.mark.parametrize(("condition", "recorded"), [("kd", "97dc4202e5b4f69d"), ("kd-mid", "e9aa6f4b9d126fb7")])
def test_the_confirm_profile_builds_the_distillations_it_already_ran(condition: str, recorded: str) -> None:
    exp = load_experiment(Path("experiments/zero_shot_miracl.yaml"), "confirm")
    assert result_key(exp.distill_config(condition, 10)) == recorded
