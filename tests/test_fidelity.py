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
    """The tiny XLM-R with attention outputs that matter (weights × 30) and, in each of them, one large weight
    on an input dimension that is always 0 (its value row is zero): nothing changes in fp32, but the per-tensor
    int8 scale that this weight sets rounds the layer's other weights to zero — the outlier failure of int8
    (cosine to fp32 about 0.94 at worst)."""
    from clir_ot.models import load_encoder

    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu")
    with torch.no_grad():
        for layer in encoder.model.encoder.layer:
            value, out = layer.attention.self.value, layer.attention.output.dense
            value.weight[0].zero_()
            value.bias[0] = 0.0
            out.weight.mul_(30)
            out.weight[0, 0] = 1000.0
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
    from clir_ot.artifacts import write_json_atomic
    from clir_ot.errors import ClirOtError

    path = fidelity.record_path(fidelity._weights_sha256(str(tiny_xlmr_dir)), "int8")
    write_json_atomic(path, {"full_corpus": True, "verdict": "?"})  # no "passed"
    with pytest.raises(ClirOtError, match="is damaged"):
        fidelity.require_fidelity(str(tiny_xlmr_dir), "int8")
    write_json_atomic(path, {"full_corpus": True, "passed": True, "cosine": {"passages": 1}})  # gate --passages 1
    with pytest.raises(ClirOtError, match="checked the cosine on 1 passages, fewer than the 1,000"):
        fidelity.require_fidelity(str(tiny_xlmr_dir), "int8")
    path.unlink()
