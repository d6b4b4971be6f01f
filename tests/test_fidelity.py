"""The fidelity gate: int8 is refused until it has measured like fp32 for the model's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clir_ot.cli import app
from clir_ot.errors import ClirOtError
from clir_ot.eval import fidelity, gate
from clir_ot.eval.evaluate import EvalConfig

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def outlier_model(tiny_xlmr_dir: Path, tmp_path: Path) -> Path:
    """The tiny XLM-R with feed-forward outputs that matter (weights × 30) and, in every layer, one feed-forward
    channel that is 1000 in every token and that the output layer ignores (its weight column is zero): fp32
    never sees it, but the per-token int8 scale that this channel sets rounds the token's other channels to
    zero — the outlier case of per-token int8 (:mod:`clir_ot.models.int8`; min cosine about 0.98)."""
    from clir_ot.models import load_encoder

    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu")
    with torch.no_grad():
        for layer in encoder.model.encoder.layer:
            layer.intermediate.dense.weight[0].zero_()
            layer.intermediate.dense.bias[0] = 1000.0
            layer.output.dense.weight.mul_(30)  # so that the feed-forward output matters
            layer.output.dense.weight[:, 0] = 0.0
    encoder.save(tmp_path / "outlier")
    return tmp_path / "outlier"


def test_int8_is_refused_before_any_work_until_the_gate_ran(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ClirOtError, match="has not passed the fidelity gate .* run `clir-ot gate --model"):
        EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), precision="int8")
    for command in (["eval", "--model", str(tiny_xlmr_dir), "--lang", "yo", "--precision", "int8",
                     "--out", str(tmp_path / "e")],
                    ["encode", "--model", str(tiny_xlmr_dir), "--lang", "yo", "--precision", "int8",
                     "--out", str(tmp_path / "c")]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "has not passed the fidelity gate" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists() and not (tmp_path / "c").exists()
    EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), precision="bf16")  # not gated
    EvalConfig(langs=["yo"], model="bm25", precision="int8")  # nothing to quantise


def test_a_failed_gate_refuses_int8_with_the_numbers_it_measured(outlier_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gate", "--model", str(outlier_model), "--precision", "int8",
                                      "--passages", "200", "--json"])
    assert result.exit_code == 1, result.output
    record = json.loads(result.stdout)
    assert record["passed"] is False and record["retrieval"] is None  # the cosine check stopped it
    assert record["cosine"]["passages"] == 200 and record["cosine"]["min"] < fidelity.MIN_COSINE
    assert record["query_cosine"]["queries"] == 119 and 0 < record["query_cosine"]["min"] <= 1.0
    assert f"min cosine {record['cosine']['min']:.4f} < 0.99" in record["verdict"]
    assert record["full_corpus"] and record["machine"]["cpu_count"] >= 1
    with pytest.raises(ClirOtError, match=r"refused for .*: it failed the fidelity gate on .* \(min cosine 0\.\d{4} < "
                                          r"0\.99 on 200 passages; retrieval not run\); use fp32"):
        EvalConfig(langs=["yo"], model=str(outlier_model), precision="int8")


def test_the_gate_compares_retrieval_after_the_cosine_and_only_the_full_corpus_unlocks(
        tiny_xlmr_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fidelity, "COSINE_PASSAGES", 200)  # the gate's own count, made small for the test
    record = gate.run_gate(str(tiny_xlmr_dir), "bf16", passages=200, pool_distractors=50)
    retrieval = record["retrieval"]
    assert record["cosine"]["min"] >= fidelity.MIN_COSINE and retrieval is not None
    assert set(retrieval["difference"]) == set(fidelity.MEASURES)
    for m in fidelity.MEASURES:
        assert retrieval["difference"][m] == pytest.approx(retrieval["bf16"][m] - retrieval["fp32"][m])
    assert record["passed"] == all(abs(d) <= fidelity.TOLERANCE for d in retrieval["difference"].values())
    assert record["corpus"].startswith("reduced pool") and not record["full_corpus"]
    int8 = gate.run_gate(str(tiny_xlmr_dir), "int8", passages=200, pool_distractors=50)
    assert int8["retrieval"] is not None
    with pytest.raises(ClirOtError, match="ran on a reduced pool only"):
        EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), precision="int8")
    full = gate.run_gate(str(tiny_xlmr_dir), "int8", passages=200)  # 49,043 yo passages, twice (~1 min)
    assert full["full_corpus"] and full["corpus"] == "full corpus"
    assert full["passed"], full["verdict"]  # this model has no outliers: int8 ranks as fp32 does
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), precision="int8").precision == "int8"


def test_experiments_cannot_evaluate_in_int8(tmp_path: Path) -> None:
    import yaml

    from clir_ot.experiment import load_experiment

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"conditions": {"kd": {"method": "kd"}}, "eval_precision": "int8",
                                    "profiles": {"p": {}}}))
    with pytest.raises(ClirOtError, match="eval_precision"):
        load_experiment(path, "p")


def test_a_damaged_fidelity_record_is_one_line(tiny_xlmr_dir: Path) -> None:
    from clir_ot.artifacts import hardware, seal, write_json_atomic
    from clir_ot.errors import ClirOtError

    path = fidelity.record_path(fidelity._weights_sha256(str(tiny_xlmr_dir)), "int8")
    write_json_atomic(path, seal({"full_corpus": True, "verdict": "?"}))  # no "passed"
    with pytest.raises(ClirOtError, match="is not one the gate wrote"):
        fidelity.require_fidelity(str(tiny_xlmr_dir), "int8")
    write_json_atomic(path, seal({"full_corpus": True, "passed": True, "machine": hardware(),
                                  "cosine": {"passages": 1}}))  # gate --passages 1
    with pytest.raises(ClirOtError, match="checked the cosine on 1 passages, fewer than the 1,000"):
        fidelity.require_fidelity(str(tiny_xlmr_dir), "int8")
    path.unlink()


def _passed_record(model: Path, rates: dict, machine: dict | None = None) -> None:
    from clir_ot.artifacts import hardware, seal, write_json_atomic

    write_json_atomic(fidelity.record_path(fidelity._weights_sha256(str(model)), "int8"), seal({
        "passed": True, "full_corpus": True, "measured": "2026-12-06 22:00", "machine": machine or hardware(),
        "cosine": {"passages": fidelity.COSINE_PASSAGES, "min": 0.998, "mean": 0.999, "per_second": rates}}))


def test_auto_takes_int8_only_where_it_passed_the_gate_on_this_machine_and_encoded_faster(
        tiny_xlmr_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot.artifacts import hardware
    from clir_ot.models import precision

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))  # a passed record would outlive the test
    hardware_choice = {"requested": "auto", "precision": "fp32", "reason": "CPU without avx512_bf16"}
    monkeypatch.setattr(precision, "precision_choice", lambda requested, device_type=None: hardware_choice
                        if requested == "auto" else {"requested": requested, "precision": requested, "reason": ""})
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir)).precision == "fp32"  # no gate ran
    _passed_record(tiny_xlmr_dir, {"fp32": 17.0, "int8": 31.5})
    config = EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir))
    assert config.precision == "int8"
    assert config.precision_reason == ("CPU without avx512_bf16; int8 passed the fidelity gate for "
                                       f"{tiny_xlmr_dir} on this machine, 31.5 passages/s against fp32's 17.0 "
                                       "(2026-12-06 22:00)")
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), precision="fp32").precision == "fp32"  # asked for
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), query_model="me5-small").precision == "fp32"
    _passed_record(tiny_xlmr_dir, {"fp32": 17.0, "int8": 16.0})  # passed, but slower here
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir)).precision == "fp32"
    _passed_record(tiny_xlmr_dir, {"fp32": 17.0, "int8": 31.5}, hardware() | {"cpu": "another CPU"})
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir)).precision == "fp32"
    hardware_choice = {"requested": "auto", "precision": "bf16", "reason": "bf16 pays"}  # read by the lambda
    _passed_record(tiny_xlmr_dir, {"fp32": 17.0, "int8": 31.5})
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir)).precision == "bf16"  # the hardware's choice stands
