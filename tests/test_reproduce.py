"""The whole experiment on a tiny random student: every stage, the report, skipping and resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clir_ot.data.bitext import read_bitext, write_bitext
from clir_ot.data.training import DEMO_BITEXT, resolve_data_path
from clir_ot.distill import trainer
from clir_ot.errors import ClirOtError
from clir_ot.experiment import read_experiment_file
from clir_ot.reproduce import load_experiment, reproduce

pytestmark = pytest.mark.e2e


@pytest.fixture
def experiment(tmp_path: Path, tiny_xlmr_dir: Path) -> Path:
    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).pairs
    bitext = tmp_path / "bitext.tsv"
    write_bitext(bitext, [p for p in pairs if p.lang == "de"][:30] + [p for p in pairs if p.lang == "ru"][:30])
    spec = {
        "student": str(tiny_xlmr_dir), "teacher": "self",
        "conditions": {"kd": {"method": "kd"}, "ot": {"method": "ot"},
                       "kd-mid": {"method": "kd-layer", "teacher_layer": 1, "student_layer": 1, "seeds": [0]}},
        "compare": [["ot", "kd"], ["kd", "before"], ["ot", "before"]],
        "hypotheses": [{"a": "ot", "b": "kd", "lang": "yo", "measure": "nDCG@10", "direction": "greater"},
                       {"a": "kd-mid", "b": "before", "benchmark": "bible-clir", "lang": "de", "measure": "R@1",
                        "query_encoder": "teacher"}],
        "drift": True,
        "baselines": ["bm25", "bm25-strong", str(tiny_xlmr_dir)],
        "eval_langs": ["yo", "sw"], "diagnostic_langs": ["sw"],
        "clir_langs": ["sw", "de"], "clir_queries": 8, "clir_pool": 10, "token_probe_pairs": 3,
        "distill": {"bitext": [str(bitext)], "lexicon": None, "max_length": 32, "lr": 1e-3},
        "profiles": {"tiny": {"seeds": [0, 1], "eval_pool": 30, "diagnostic_max_passages": 60,
                              "diagnostic_seeds": [0],
                              "distill": {"steps": 4, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2,
                                          "probe_langs": ["yo"], "check_lang": None}}},
    }
    path = tmp_path / "tiny_experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.integration
def test_profiles_are_applied(experiment: Path) -> None:
    exp = load_experiment(experiment, "tiny")
    assert exp.name == "tiny_experiment" and exp.seeds == [0, 1] and exp.eval_pool == 30
    cfg = exp.distill_config("ot", 1)
    assert (cfg.steps, cfg.lr, cfg.seed, cfg.method, cfg.max_length) == (4, 1e-3, 1, "ot", 32)
    with pytest.raises(Exception, match="no profile 'gpu'"):
        load_experiment(experiment, "gpu")
    for path in sorted(Path("experiments").glob("*.yaml")):
        profiles = read_experiment_file(path)["profiles"]
        assert {"smoke", "cpu", "gpu"} <= profiles.keys(), path
        for profile in profiles:
            exp = load_experiment(path, profile)
            assert len(exp.seeds) >= 2 and {"kd"} <= set(exp.condition_names())
            for condition in exp.condition_names():  # every condition yields a valid distillation config
                exp.distill_config(condition, exp.seeds_of(condition)[0])
    cpu = load_experiment(Path("experiments/zero_shot_miracl.yaml"), "cpu")
    assert cpu.condition_names() == ["kd", "ot", "noise"] and cpu.seeds == [0, 1, 2] and cpu.curve_steps == [50]


def test_reproduce_end_to_end_then_resume(experiment: Path, tmp_path: Path, monkeypatch) -> None:
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    report = reproduce(experiment, "tiny", runs, reports, log=lambda m: None)
    root = runs / "tiny_experiment" / "tiny"
    result = json.loads((report / "results.json").read_text())
    yo = result["summary"]["yo"]
    assert {"bm25", "before", "kd", "ot", "bm25 (full corpus)"} <= yo.keys()
    assert yo["ot"]["R@100"]["n"] == 2 and yo["bm25"]["R@100"]["n"] == 1
    assert "sw" in result["unavailable"]
    comparisons = {(s["comparison"], s["metric"]) for s in result["significance"]}
    assert ("ot vs kd", "R@100") in comparisons and ("kd vs before", "nDCG@10") in comparisons
    assert all(0 <= s["p_holm"] <= 1 and s["ci_low"] <= s["mean_diff"] <= s["ci_high"] for s in result["significance"])
    assert {s["seed"] for s in result["significance_per_seed"]} == {0, 1}
    md = (report / "results.md").read_text()
    assert "incomplete" not in md
    for needle in ("Contamination", "Which exploratory differences hold", "partial-pool diagnostic", "exclusion audit",
                   "reduced pool: judged + 30", "bars_R_at_100.png", "recall_at_k.png", "training_curves.png"):
        assert needle in md, needle
    for png in ("bars_R_at_100.png", "recall_at_k.png", "training_curves.png", "explain/before/yo-0.png",
                "explain/after-ot/yo-0.png"):
        assert (report / png).stat().st_size > 1000, png
    assert "yo,ot,R@100" in (report / "results.csv").read_text()
    # the positive control: bible-clir per query encoder, gains over before, seen (de) vs unseen (sw)
    clir = result["clir"]
    assert clir["seen"] == ["de"] and clir["unseen"] == ["sw"]
    assert clir["summary"]["teacher"]["sw"]["kd"]["R@1"]["n"] == 2 and "bm25-strong" in clir["summary"]["student"]["de"]
    assert "bm25" not in clir["summary"]["teacher"]["sw"]  # BM25 has no query encoder to swap
    assert {(g["condition"], g["lang"], g["query_encoder"]) for g in clir["gains"]} == {
        (c, lang, enc) for c in ("kd", "ot", "kd-mid") for lang in ("sw", "de") for enc in ("student", "teacher")}
    assert {t["condition"] for t in clir["transfer"]} == {"kd", "ot", "kd-mid"}
    assert {(g["comparison"], g["lang"]) for g in clir["between"]} == {("ot vs kd", "sw"), ("ot vs kd", "de")}
    for needle in ("Positive control: bible-clir", "Seen vs unseen languages", "Strong lexical baseline",
                   "8 sampled queries", "sw (excluded)"):
        assert needle in md, needle
    assert (root / "clir" / "ot-s1" / "teacher" / "sw" / "metrics.json").is_file()
    # the documents are encoded once per model; both query encoders search the same cached embeddings
    info = {enc: json.loads((root / "clir" / "ot-s1" / enc / "sw" / "metrics.json").read_text())["result"]["info"]
            for enc in ("student", "teacher")}
    assert info["student"]["embeddings"]["entry"] == info["teacher"]["embeddings"]["entry"]
    assert not info["student"]["embeddings"]["hit"] and info["teacher"]["embeddings"]["hit"]
    # the token-alignment probe: before and every student, per language with a lexicon, hits per word
    tokens = result["token_alignment"]
    assert set(tokens["summary"]) == {"ot", "nearest"} and set(tokens["summary"]["ot"]) == {"sw", "de"}
    assert tokens["summary"]["ot"]["de"]["ot"]["n_seeds"] == 2 and tokens["summary"]["ot"]["de"]["before"]["words"] > 3
    assert {(d["condition"], d["lang"]) for d in tokens["diffs"] if d["kind"] == "ot"} == {
        (c, lang) for c in ("kd", "ot", "kd-mid") for lang in ("sw", "de")}
    assert "Token alignment (held-out verses" in md
    # the pre-registered family: registered before the first stage, tested first, both statistics, Holm over it
    registration = json.loads((root / "manifest.json").read_text())
    assert len(registration["hypotheses_sha256"]) == 64 and registration["hypotheses"][1]["query_encoder"] == "teacher"
    assert md.split("\n## ")[1].startswith("Pre-registered hypotheses (confirmatory)")
    first, second = result["confirmatory"]
    assert first["hypothesis"] == "ot > kd: miracl yo nDCG@10" and first["alternative"] == "greater"
    assert first["seed_test"] == "Welch t over seeds" and len(first["seed_means_a"]) == 2
    assert 0 <= first["p_seed_holm"] <= 1 and 0 < first["p_boot_holm"] <= 1
    assert {"p_boot_holm", "p_seed_holm", "verdict"} <= first.keys()
    assert second["seed_test"] == "one-sample t against the single run" and len(second["seed_means_a"]) == 1
    assert second["p_seed_holm"] == 1.0 and second["verdict"] == "not shown"  # one seed cannot confirm anything
    assert "## Significance (exploratory comparisons: not pre-registered)" in md
    assert all(len(s["seed_means_a"]) == 2 for s in result["significance"] if s["comparison"] == "ot vs kd")
    # the mechanism: OT's plan entropy and Sinkhorn error from the training logs; drift on passages and English
    mech = result["mechanism"]["conditions"]
    assert mech["ot"]["sinkhorn_err_max"] >= mech["ot"]["sinkhorn_err_last"] >= 0 and mech["ot"]["seeds"] == 2
    assert "sinkhorn_err_max" not in mech["kd"] and mech["kd-mid"]["layers"] == [1, 1]
    assert all(0 <= mech[c]["drift_english"] <= 2 and 0 <= mech[c]["drift_passages"] <= 2 for c in mech)
    assert "## Mechanism (exploratory)" in md and "held-out English verses (en, 500)" in md
    # the token probe reads kd-mid at layer 1, against the student before read at layer 1
    assert json.loads((root / "probe/token/before-layer1.json").read_text())["layers"] == [1, 1]
    assert json.loads((root / "probe/token/kd-mid-s0.json").read_text())["layers"] == [1, 1]
    assert {d["before"] for d in tokens["diffs"] if d["condition"] == "kd-mid"} == {"before-layer1"}
    assert {d["before"] for d in tokens["diffs"] if d["condition"] == "ot"} == {"before"}
    # the machine is recorded by the run (not by whoever writes the report later)
    env = json.loads((root / "environment.json").read_text())
    assert env["hardware"]["cpu_count"] >= 1 and env["hardware"]["gpu"] is None and "torch" in env["versions"]
    assert "- hardware: CPU only:" in md and f"; flags {' '.join(env['hardware']['cpu_flags'])})" in md
    # partial-pool diagnostic: pool sizes and both measures per cell
    assert "*passages / queries*" in md and result["diagnostic_sizes"]["sw"]["documents"] > 0
    # evaluation cost = time spent computing the languages, kept when a later call skips them
    first_costs = result["costs"]
    assert first_costs["evaluate bm25"]["wall_time_s"] > 0

    # a second run recomputes nothing
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("metrics.json")}
    stamps[root / "distill/ot-s1/manifest.json"] = (root / "distill/ot-s1/manifest.json").stat().st_mtime_ns
    reproduce(experiment, "tiny", runs, reports, log=lambda m: None)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    skipped = json.loads((report / "results.json").read_text())
    assert skipped["costs"]["evaluate bm25"] == first_costs["evaluate bm25"]

    # killed halfway through a distillation, started again: resumes and ends with the same numbers
    import shutil

    shutil.rmtree(root / "distill" / "ot-s1")
    shutil.rmtree(root / "eval" / "ot-s1")
    # a report of what is there says which seeds are missing
    from clir_ot.eval.report import write_report

    write_report(root, tmp_path / "partial", load_experiment(experiment, "tiny"))
    assert "**incomplete**: evaluated ot 1 of 2" in (tmp_path / "partial" / "results.md").read_text()
    spec = yaml.safe_load(experiment.read_text())  # a declared comparison with nothing to test is said, not dropped
    spec["conditions"]["noise"], spec["compare"] = {"method": "noise"}, [*spec["compare"], ["noise", "kd"]]
    variant = tmp_path / "variant.yaml"
    variant.write_text(yaml.safe_dump(spec))
    untested = write_report(root, tmp_path / "untested", load_experiment(variant, "tiny"))
    assert untested["untested_comparisons"] == ["noise vs kd"]
    assert "**Not tested** (no language has results of both conditions): noise vs kd." in (
        tmp_path / "untested" / "results.md").read_text()
    real_train = trainer.train

    def interrupted(*args, **kwargs):
        def stop(step, record):
            if step == 3:
                raise KeyboardInterrupt
        return real_train(*args, **kwargs, on_step=stop)

    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reproduce(experiment, "tiny", runs, reports, log=lambda m: None)
    assert (root / "distill/ot-s1/checkpoint/trainer.pt").is_file()
    monkeypatch.setattr(trainer, "train", real_train)
    logs: list[str] = []
    report = reproduce(experiment, "tiny", runs, reports, log=logs.append)
    assert any("resume distill ot seed 1" in m for m in logs)
    again = json.loads((report / "results.json").read_text())
    assert again["summary"]["yo"]["ot"] == result["summary"]["yo"]["ot"]

    # the training file changes under the same configuration: the finished distillations are not reused
    bitext = tmp_path / "bitext.tsv"
    rows = read_bitext(bitext).pairs
    write_bitext(bitext, rows[:-1])
    with pytest.raises(ClirOtError, match="trained on other training data"):
        reproduce(experiment, "tiny", runs, reports, log=lambda m: None)


def test_a_bf16_cpu_profile_is_refused_before_any_stage_where_bf16_does_not_pay(tmp_path: Path, monkeypatch) -> None:
    from clir_ot.models import precision

    full = load_experiment(Path("experiments/zero_shot_miracl.yaml"), "cpu-full")
    assert (full.eval_pool, full.curve_pool, full.eval_precision) == (None, 1000, "bf16")
    assert full.distill_config("kd", 0).cpu_bf16 and full.seeds == [0, 1, 2] and full.curve_steps == [50]
    monkeypatch.setattr(precision, "precision_choice", lambda requested, device_type="cpu": {
        "requested": "auto", "precision": "fp32", "reason": "no CPU flag amx_bf16 or avx512_bf16"})
    with pytest.raises(ClirOtError, match=r"profile cpu-full evaluates in bf16 and trains under bf16 autocast on the "
                                          r"CPU, and bf16 does not pay on this one \(no CPU flag"):
        reproduce(Path("experiments/zero_shot_miracl.yaml"), "cpu-full", tmp_path / "runs", tmp_path / "reports",
                  log=lambda m: None)
    assert not (tmp_path / "runs").exists()


def test_without_matplotlib_the_run_and_report_go_on_and_a_later_report_draws_the_plots(
        experiment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU node's bundle may leave matplotlib out: the explain stage keeps each plan in alignments.json, the
    report says its plots were not drawn, and `clir-ot report` where matplotlib is draws every figure."""
    import sys

    from clir_ot.distill import explain
    from clir_ot.eval.report import write_report

    spec = yaml.safe_load(experiment.read_text())
    spec["conditions"] = {"ot": {"method": "ot"}}
    spec["compare"], spec["clir_langs"], spec["diagnostic_langs"] = [["ot", "before"]], [], []
    del spec["hypotheses"]
    spec["baselines"], spec["drift"] = ["bm25"], False
    spec["profiles"]["tiny"]["seeds"] = [0]
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(spec))
    real = sys.modules.get("matplotlib")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails, as on the node
    assert not explain.can_draw()
    report = reproduce(small, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
    root = tmp_path / "runs" / "small" / "tiny"
    assert not list(root.rglob("*.png")) and not list(report.rglob("*.png"))
    saved = json.loads((root / "explain" / "before" / "alignments.json").read_text())
    assert all({"plan", "en_tokens", "x_tokens", "title"} <= r.keys() for r in saved.values())
    assert "Not drawn: matplotlib is not installed where this report was written" in (report / "results.md").read_text()
    if real is not None:  # matplotlib back as it was (imported already by an earlier test, or not)
        monkeypatch.setitem(sys.modules, "matplotlib", real)
    else:
        monkeypatch.delitem(sys.modules, "matplotlib")
    again = tmp_path / "again"
    write_report(root, again, load_experiment(small, "tiny"))
    heatmaps = sorted(p.relative_to(again).as_posix() for p in again.glob("explain/*/*.png"))
    assert heatmaps == sorted(f"explain/{folder}/{key}.png" for folder in ("before", "after-ot")
                              for key in json.loads((root / "explain" / folder / "alignments.json").read_text()))
    assert (again / "bars_R_at_100.png").stat().st_size > 1000
    assert "![bars_R_at_100]" in (again / "results.md").read_text()


def test_the_cost_table_sums_the_stages_it_lists() -> None:
    from clir_ot.eval.report import _costs_md

    costs = {"distill kd s0": {"wall_time_s": 150.25, "train_time_s": 140.0, "tokens_seen": 9000},
             "evaluate kd s0": {"wall_time_s": 600.0}, "distill ot s0": {"wall_time_s": None}}
    lines = _costs_md({"costs": costs})
    assert lines[-1] == "| **sum of the stages above** | 750.2 | | |"
    assert len(lines) == 4 + 3 + 1
