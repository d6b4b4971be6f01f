"""One result key (:func:`clir_ot.config.result_key`): a setting added later keeps every saved result's key
while it holds its default, so a finished run stays finished; the embedding cache is keyed by what was
encoded, never by a label."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from clir_ot import experiment as experiment_module
from clir_ot.artifacts import config_hash
from clir_ot.config import build, keyed_fields, read_yaml, result_key, setting
from clir_ot.distill.config import DistillConfig
from clir_ot.eval.evaluate import EvalConfig
from clir_ot.experiment import load_experiment

EVALUATIONS = Path("reports/zero_shot_miracl/cpu-ot/full-corpus/evaluations")


@dataclass
class EvalConfigWithNewField(EvalConfig):
    """EvalConfig as it would be after a field is added by the rule of :mod:`clir_ot.config`."""

    query_centring: str = setting("none", choices=("none", "corpus"), added="2026-12-07")


@dataclass
class DistillConfigWithNewField(DistillConfig):
    freeze_above: int | None = setting(None, ge=0, added="2026-12-07")


@pytest.mark.unit
@pytest.mark.parametrize("stage", ["before", "kd-s0", "ot-mid-s0"])
def test_a_field_added_with_its_default_keeps_every_committed_evaluation_manifest_hash(stage: str) -> None:
    folder = EVALUATIONS / stage
    recorded = json.loads((folder / "manifest.json").read_text())["config_hash"]
    saved = read_yaml(folder / "config.yaml")
    assert result_key(build(EvalConfig, saved)) == recorded
    extended = build(EvalConfigWithNewField, saved)
    assert result_key(extended) == recorded
    assert result_key(build(EvalConfigWithNewField, saved, {"query_centring": "corpus"})) != recorded
    # a language's saved record: its key and configuration hash, recomputed with the field there
    record = json.loads((folder / "yo" / "metrics.json").read_text())
    lang_cfg = extended.lang_config("yo")
    assert "query_centring" in lang_cfg and result_key(keyed_fields(type(extended), lang_cfg)) == record["config_hash"]
    assert result_key(keyed_fields(type(extended), lang_cfg), inputs=record["inputs"]) == record["key"]


@pytest.mark.unit
@pytest.mark.parametrize(("condition", "recorded"), [("kd", "97dc4202e5b4f69d"), ("kd-mid", "e9aa6f4b9d126fb7")])
def test_a_field_added_to_distill_config_keeps_the_confirm_students_keys(
        condition: str, recorded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiment_module, "DistillConfig", DistillConfigWithNewField)
    exp = load_experiment(Path("experiments/zero_shot_miracl.yaml"), "confirm")
    cfg = exp.distill_config(condition, 10)
    assert isinstance(cfg, DistillConfigWithNewField) and "freeze_above" in asdict(cfg)
    assert result_key(cfg) == recorded
    cfg.freeze_above = 6
    assert result_key(cfg) != recorded


@pytest.mark.unit
def test_the_key_of_a_configuration_is_the_hash_every_manifest_recorded() -> None:
    cfg = EvalConfig(langs=["yo"], model="bm25", pool_distractors=30)
    before_the_field = {k: v for k, v in asdict(cfg).items() if k != "transform"}  # added 2026-12-07
    assert result_key(cfg) == config_hash(before_the_field)
    assert result_key(keyed_fields(EvalConfig, asdict(cfg))) == config_hash(before_the_field)
    inputs = {"corpus": "abc"}
    assert result_key(cfg, inputs=inputs) == config_hash({"config": before_the_field, "inputs": inputs})
    assert result_key(build(EvalConfig, {"langs": ["yo"], "model": "me5-small", "transform": "whiten"})) != \
        result_key(build(EvalConfig, {"langs": ["yo"], "model": "me5-small"}))


@pytest.mark.unit
def test_a_saved_configuration_without_the_new_field_and_one_with_its_default_have_one_key() -> None:
    now = asdict(EvalConfigWithNewField(langs=["yo"], model="bm25"))
    before = {k: v for k, v in now.items() if k != "query_centring"}
    keyed = keyed_fields(EvalConfigWithNewField, now)
    assert keyed == keyed_fields(EvalConfigWithNewField, before) and "query_centring" not in keyed
    assert keyed_fields(EvalConfigWithNewField, now | {"query_centring": "corpus"})["query_centring"] == "corpus"


@pytest.mark.integration
def test_the_cache_key_does_not_change_when_a_labels_wording_does(tiny_xlmr_dir: Path) -> None:
    from clir_ot.data.benchmarks import get_benchmark
    from clir_ot.eval.evaluate import embeddings_config
    from clir_ot.models import load_encoder
    from clir_ot.retrieval.embedding_cache import cache_key

    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu")
    bench = get_benchmark("miracl")

    def config(label: str, ids: list[str], name: str = str(tiny_xlmr_dir)) -> dict:
        return embeddings_config(encoder, name, bench, "yo", "dev", "fp32", False, label, [], ids)

    ids = ["1#0", "2#0", "3#1"]
    worded = cache_key(config("reduced pool: judged + 30", ids))
    assert worded == cache_key(config("30 distractors and the judged", ids))
    assert cache_key(config("full corpus", ids)) != cache_key(config("full corpus", ids[:2]))  # what was encoded


@pytest.mark.e2e
def test_a_finished_run_with_curve_points_stays_finished_after_fields_are_added(
        tmp_path: Path, tiny_experiment, monkeypatch: pytest.MonkeyPatch) -> None:
    """Curve points delete their snapshots once measured: a key that moved would find them missing. Here the
    second reproduce, with a field added to EvalConfig and to DistillConfig, runs no stage."""
    from clir_ot.data.bitext import read_bitext, write_bitext
    from clir_ot.data.training import DEMO_BITEXT, resolve_data_path
    from clir_ot.reproduce import reproduce

    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).pairs
    bitext = tmp_path / "bitext.tsv"
    write_bitext(bitext, [p for p in pairs if p.lang == "de"][:24])
    path = tiny_experiment("curved", bitext, steps=4, compare=[["kd", "before"]], drift=True, curve_steps=[2])
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    reproduce(path, "tiny", runs, reports, log=lambda m: None)
    root = runs / "curved" / "tiny"
    assert not (root / "distill" / "kd-s0" / "snapshots" / "step-2").exists()  # measured, then deleted
    kept = ("metrics.json", "point.json", "run.trec")
    stages = [p for p in root.rglob("*") if p.is_file() and (
        p.name in kept or p.relative_to(root).parts[0] in ("distill", "curves", "probe"))]
    assert any(p.name == "point.json" for p in stages) and any(p.parts[-2] == "curves" for p in stages)
    stamps = {p: p.stat().st_mtime_ns for p in stages}

    monkeypatch.setattr(experiment_module, "EvalConfig", EvalConfigWithNewField)
    monkeypatch.setattr(experiment_module, "DistillConfig", DistillConfigWithNewField)
    logs: list[str] = []
    reproduce(path, "tiny", runs, reports, log=logs.append)
    changed = sorted(str(p.relative_to(root)) for p, t in stamps.items() if p.stat().st_mtime_ns != t)
    assert changed == []
    assert any("skip distill kd seed 0" in m for m in logs)
    evaluations = [m for m in logs if m.startswith("  yo:")]
    assert evaluations and all("(reused" in m for m in evaluations)
    assert not any(m.startswith(("curve ", "drift ", "run distill", "resume distill")) for m in logs)
