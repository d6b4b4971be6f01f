"""Experiments as named conditions: grids, comparisons, extends, refusals — and a condition added in YAML
alone, run end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clir_ot.errors import ClirOtError
from clir_ot.experiment import expand_conditions, load_experiment

pytestmark = pytest.mark.integration


def test_a_sweep_expands_into_named_conditions() -> None:
    specs = expand_conditions({"kd": {"method": "kd"},
                               "ot": {"method": "ot", "sweep": {"ot_reg": [0.05, 0.2], "student_layer": [-1, 6]}}})
    assert list(specs) == ["kd", "ot-ot_reg0.05-student_layer-1", "ot-ot_reg0.05-student_layer6",
                           "ot-ot_reg0.2-student_layer-1", "ot-ot_reg0.2-student_layer6"]
    assert specs["ot-ot_reg0.2-student_layer6"] == {"method": "ot", "ot_reg": 0.2, "student_layer": 6}


def test_a_paired_layer_sweep_sets_both_layer_fields_from_one_value() -> None:
    specs = expand_conditions({"kd-L": {"method": "kd-layer", "sweep": {"layer": [2, 4, 6, 8, 10, 12]}},
                               "ot-mid": {"method": "ot", "layer": 6},
                               "kd-en": {"method": "kd-layer", "sweep": {"layer": [6], "x_source": ["english"]}}})
    assert list(specs) == [f"kd-L-layer{n}" for n in (2, 4, 6, 8, 10, 12)] + ["ot-mid", "kd-en-layer6-x_sourceenglish"]
    assert specs["kd-L-layer8"] == {"method": "kd-layer", "teacher_layer": 8, "student_layer": 8}
    assert specs["ot-mid"] == {"method": "ot", "teacher_layer": 6, "student_layer": 6}
    assert specs["kd-en-layer6-x_sourceenglish"] == {"method": "kd-layer", "x_source": "english",
                                                      "teacher_layer": 6, "student_layer": 6}


@pytest.mark.parametrize(("conditions", "message"), [
    ({"kd": {"method": "kd-layer", "layer": 6, "student_layer": 4}}, "sets layer and student_layer"),
    ({"kd": {"method": "kd-layer", "teacher_layer": 6, "sweep": {"layer": [2, 4]}}}, "sets layer and teacher_layer"),
    ({"kd": {"method": "kd", "seeds": [0, 0]}}, "seeds of 'kd' lists 0 twice"),
    ({"kd": {"method": "kd", "learning_rate": 1}}, "unknown key"),
    ({"kd": {"method": "kd", "seeds": [-1]}}, "seeds of .kd. must be"),
    ({"kd": {"lr": 1e-5}}, "needs a method"),
    ({"before": {"method": "kd"}}, "must be letters"),
    ({"../x": {"method": "kd"}}, "must be letters"),
    ({"ot": {"method": "ot", "sweep": {"ot_reg": []}}}, "needs a list of distinct values"),
    ({"ot": {"method": "ot", "sweep": {"ot_reg": [0.1, 0.1]}}}, "needs a list of distinct values"),
    ({"ot": {"method": "ot", "sweep": {"regularisation": [0.1]}}}, "over unknown field"),
    ({"ot": {"method": "ot", "sweep": {"seed": [0, 1]}}}, "over unknown field"),
    ({"ot-ot_reg0.1": {"method": "kd"}, "ot": {"method": "ot", "sweep": {"ot_reg": [0.1]}}}, "collides"),
    ({}, "non-empty mapping"),
])
def test_bad_conditions_are_refused(conditions: dict, message: str) -> None:
    with pytest.raises(ClirOtError, match=message):
        expand_conditions(conditions)


def _write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def test_comparisons_curve_steps_and_extends(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.yaml", {
        "conditions": {"kd": {"method": "kd"}, "ot": {"method": "ot"}, "noise": {"method": "noise"}},
        "compare": [["ot", "kd"], ["ot", "noise"], ["kd", "before"]],
        "distill": {"lr": 1e-5, "steps": 10}, "profiles": {"p": {"seeds": [0], "distill": {"batch_size": 4}}}})
    exp = load_experiment(base, "p")
    assert exp.comparisons() == [("ot", "kd"), ("ot", "noise"), ("kd", "before")]
    assert exp.distill_config("noise", 0).method == "noise" and exp.distill_config("ot", 0).batch_size == 4
    variant = _write(tmp_path / "variant.yaml", {"extends": "base.yaml", "teacher": "minilm",
                                                 "distill": {"lr": 2e-5}, "profiles": {"p": {"seeds": [0, 1]}}})
    v = load_experiment(variant, "p")
    assert (v.name, v.teacher, v.seeds, v.distill_config("kd", 1).lr) == ("variant", "minilm", [0, 1], 2e-5)
    assert v.distill_config("kd", 1).steps == 10 and v.distill_config("kd", 1).batch_size == 4
    for bad, message in ((["ot", "ot+kd"], "unknown condition"), (["ot", "ot"], "two different"),
                         (["ot"], "two different")):
        with pytest.raises(ClirOtError, match=message):
            load_experiment(_write(tmp_path / "bad.yaml", {"extends": "base.yaml", "compare": [bad],
                                                           "profiles": {"p": {}}}), "p")
    with pytest.raises(ClirOtError, match="must lie below the 10 training steps"):
        load_experiment(_write(tmp_path / "bad.yaml", {"extends": "base.yaml", "curve_steps": [10],
                                                       "profiles": {"p": {}}}), "p")
    with pytest.raises(ClirOtError, match="curve_pool is set but there are no curve_steps"):
        load_experiment(_write(tmp_path / "bad.yaml", {"extends": "base.yaml", "curve_pool": 100,
                                                       "profiles": {"p": {}}}), "p")
    with pytest.raises(ClirOtError, match="curve_pool"):
        load_experiment(_write(tmp_path / "bad.yaml", {"extends": "base.yaml", "curve_steps": [2], "curve_pool": -1,
                                                       "profiles": {"p": {}}}), "p")
    with pytest.raises(ClirOtError, match="makes a cycle"):
        load_experiment(_write(tmp_path / "loop.yaml", {"extends": "loop.yaml", "profiles": {"p": {}}}), "p")


@pytest.mark.e2e
def test_a_condition_added_in_yaml_alone_runs_end_to_end(tmp_path: Path, tiny_xlmr_dir: Path) -> None:
    """A grid and the noise control, declared in the experiment file only: distilled, evaluated, curved,
    compared and reported."""
    from clir_ot.data.bitext import read_bitext, write_bitext
    from clir_ot.data.training import DEMO_BITEXT, resolve_data_path
    from clir_ot.reproduce import reproduce

    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).pairs
    bitext = tmp_path / "bitext.tsv"
    write_bitext(bitext, [p for p in pairs if p.lang == "de"][:24])
    spec = _write(tmp_path / "yaml_only.yaml", {
        "student": str(tiny_xlmr_dir), "baselines": ["bm25", str(tiny_xlmr_dir)], "eval_langs": ["yo"],
        "diagnostic_langs": ["sw"], "diagnostic_max_passages": 20, "diagnostic_seeds": [],
        "conditions": {"kd": {"method": "kd"}, "noise": {"method": "noise"},
                       "ot": {"method": "ot", "seeds": [0], "sweep": {"ot_reg": [0.05, 0.5]}}},
        "compare": [["ot-ot_reg0.05", "kd"], ["ot-ot_reg0.5", "noise"], ["noise", "before"]],
        "curve_steps": [2],
        "distill": {"bitext": [str(bitext)], "lexicon": None, "max_length": 24, "lr": 1e-3, "steps": 4,
                    "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2, "probe_langs": ["yo"],
                    "check_lang": None},
        "profiles": {"tiny": {"seeds": [0, 1], "eval_pool": 20, "eval_queries": 10}}})
    report = reproduce(spec, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
    result = json.loads((report / "results.json").read_text())
    yo = result["summary"]["yo"]
    assert {"kd", "noise", "ot-ot_reg0.05", "ot-ot_reg0.5", "before"} <= yo.keys()
    assert {s["comparison"] for s in result["significance"]} == {"ot-ot_reg0.05 vs kd", "ot-ot_reg0.5 vs noise",
                                                                 "noise vs before"}
    curve = result["curves"]["noise"]
    assert [p["step"] for p in curve] == [0, 2, 4] and curve[0]["drift"] == 0.0 and curve[2]["drift"] > 0
    assert all({"R@100", "nDCG@10", "probe", "drift"} <= p.keys() for p in curve)
    root = tmp_path / "runs" / "yaml_only" / "tiny"
    assert not list(root.glob("distill/*/snapshots/step-2"))  # measured, then deleted
    assert {e["comparison"] for e in result["equal_drift"]} >= {"ot-ot_reg0.05 vs kd"}
    md = (report / "results.md").read_text()
    for needle in ("## Trade-off curves", "At equal drift", "trade_off.png", "Which differences hold",
                   "two-level bootstrap", "| noise | 2 |"):
        assert needle in md, needle
    assert (report / "trade_off.png").stat().st_size > 1000
    probe = result["probe_after"]["noise"]["yo"]
    assert probe["ci_low"] <= probe["mean"] <= probe["ci_high"] and probe["paragraphs"] == 48

    # expected scores in the file are checked: equal ones pass, a moved one stops the run with exit 1
    kd = round(yo["kd"]["nDCG@10"]["mean"], 6)
    for value, fails in ((kd, False), (kd + 0.001, True)):
        spec_dict = yaml.safe_load(spec.read_text())
        spec_dict["profiles"]["tiny"]["expected"] = {"yo": {"kd": {"nDCG@10": value}}}
        spec.write_text(yaml.safe_dump(spec_dict))
        if fails:
            with pytest.raises(ClirOtError, match=r"differ from those expected .*yo kd nDCG@10: expected"):
                reproduce(spec, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
        else:
            reproduce(spec, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)


def test_the_cpu_profile_keeps_the_positive_control_on_unseen_and_seen_languages() -> None:
    """What the CLIR issue asks of the cpu profile: bible-clir on sw, hi, bn and ≥ 4 training languages, both
    query encoders, the token probe, and the UDHR probe on the excluded and the seen languages."""
    exp = load_experiment(Path("experiments/zero_shot_miracl.yaml"), "cpu")
    seen = {"de", "fr", "es", "ru"}  # the demo bitext's languages
    assert {"sw", "hi", "bn"} <= set(exp.clir_langs) and len(seen & set(exp.clir_langs)) >= 4
    assert exp.clir_query_encoders == ["student", "teacher"] and exp.token_probe_pairs > 0
    assert exp.seeds == [0, 1, 2] and {"kd", "ot", "noise"} <= set(exp.condition_names())
    probe_langs = set(exp.distill_config("kd", 0).probe_langs)
    assert {"sw", "yo", "te", "bn", "hi", "th"} | seen <= probe_langs


@pytest.mark.e2e
def test_curves_on_their_own_pool_evaluate_both_ends_there(tmp_path: Path, tiny_xlmr_dir: Path) -> None:
    """``curve_pool``: the students are evaluated on one pool, every point of their curves (step 0 and the last
    step included) on another, and drift is measured over the curves' passages."""
    from clir_ot.data.bitext import read_bitext, write_bitext
    from clir_ot.data.training import DEMO_BITEXT, resolve_data_path
    from clir_ot.layout import baseline_dir
    from clir_ot.reproduce import reproduce

    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).pairs
    bitext = tmp_path / "bitext.tsv"
    write_bitext(bitext, [p for p in pairs if p.lang == "de"][:16])
    spec = _write(tmp_path / "curve_pool.yaml", {
        "student": str(tiny_xlmr_dir), "baselines": [str(tiny_xlmr_dir)], "eval_langs": ["yo"],
        "diagnostic_langs": ["sw"], "diagnostic_max_passages": 10, "diagnostic_seeds": [], "explain_pairs": 0,
        "conditions": {"kd": {"method": "kd"}}, "compare": [["kd", "before"]], "curve_steps": [2],
        "distill": {"bitext": [str(bitext)], "lexicon": None, "max_length": 24, "lr": 1e-3, "steps": 4,
                    "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2, "probe_langs": ["yo"],
                    "check_lang": None},
        "profiles": {"tiny": {"seeds": [0], "eval_pool": 40, "curve_pool": 5, "eval_queries": 6}}})
    report = reproduce(spec, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
    root = tmp_path / "runs" / "curve_pool" / "tiny"

    def searched(folder: Path) -> tuple[str, int]:
        info = json.loads((folder / "yo" / "metrics.json").read_text())["result"]["info"]
        entry = Path(info["embeddings"]["entry"]) / "manifest.json"
        return info["corpus"], json.loads(entry.read_text())["documents"]

    student, before = searched(root / "eval" / "kd-s0"), searched(baseline_dir(root, str(tiny_xlmr_dir)))
    ends = [searched(root / "curves" / "before"), searched(root / "curves" / "kd-s0" / "step-2"),
            searched(root / "curves" / "kd-s0" / "step-4")]
    assert "+ 40 random" in student[0] and "+ 40 random" in before[0] and student[1] == before[1]
    assert all("+ 5 random" in label and n == ends[0][1] < student[1] for label, n in ends)
    result = json.loads((report / "results.json").read_text())
    assert "+ 5 random" in result["curve_corpus"] and "+ 40 random" in result["corpus"]
    curve = json.loads((root / "curves" / "kd-s0.json").read_text())["points"]
    assert [p["step"] for p in curve] == [0, 2, 4] and curve[0]["drift"]["drift"] == 0.0
    assert all(p["drift"]["passages"] == ends[0][1] for p in curve[1:])
    end = json.loads((root / "curves" / "kd-s0" / "step-4" / "yo" / "metrics.json").read_text())
    assert curve[2]["metrics"]["yo"] == end["result"]["metrics"]
    assert "the curves' own pool" in (report / "results.md").read_text()


HYPOTHESES_BASE = {"conditions": {"kd": {"method": "kd"}, "ot-mid": {"method": "ot", "student_layer": 6,
                                                                      "teacher_layer": 6}},
                   "eval_langs": ["yo"], "clir_langs": ["sw"], "distill": {"steps": 10},
                   "profiles": {"p": {"seeds": [0]}}}


@pytest.mark.parametrize(("hypotheses", "message"), [
    ([{"a": "ot-mid", "b": "ot", "lang": "yo", "measure": "nDCG@10"}], "unknown: ot"),
    ([{"a": "kd", "b": "kd", "lang": "yo", "measure": "nDCG@10"}], "two different conditions"),
    ([{"a": "ot-mid", "b": "kd", "lang": "sw", "measure": "nDCG@10"}], "language 'sw' is not evaluated on miracl"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "nDCG@100"}], "is not one of miracl's"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "R@1", "benchmark": "bible-clir"}], "language 'yo'"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "R@100", "direction": "up"}], "direction must be"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "R@100", "query_encoder": "teacher"}], "bible-clir only"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo"}], "lacks measure"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "R@100", "alpha": 0.01}], "unknown key"),
    ([{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "R@100"}] * 2, "repeats"),
    ([], "non-empty list"),
    ({"a": "ot-mid"}, "must be a list"),
])
def test_bad_hypotheses_are_refused_when_the_file_is_read(tmp_path: Path, hypotheses, message: str) -> None:
    with pytest.raises(ClirOtError, match=message):
        load_experiment(_write(tmp_path / "h.yaml", HYPOTHESES_BASE | {"hypotheses": hypotheses}), "p")


def test_hypotheses_are_registered_once_and_a_changed_family_is_refused_before_any_work(tmp_path: Path) -> None:
    from clir_ot.reproduce import register_hypotheses, reproduce

    family = [{"a": "ot-mid", "b": "kd", "lang": "yo", "measure": "nDCG@10", "direction": "greater"},
              {"a": "ot-mid", "b": "kd", "lang": "sw", "measure": "R@1", "benchmark": "bible-clir"}]
    path = _write(tmp_path / "h.yaml", HYPOTHESES_BASE | {"hypotheses": family})
    exp = load_experiment(path, "p")
    assert exp.hypotheses[1] == {"a": "ot-mid", "b": "kd", "benchmark": "bible-clir", "lang": "sw", "measure": "R@1",
                                 "direction": None, "query_encoder": "student"}
    root = tmp_path / "runs" / "h" / "p"
    record = register_hypotheses(exp, root)
    saved = json.loads((root / "manifest.json").read_text())
    assert saved == record and saved["hypotheses"] == exp.hypotheses and len(saved["hypotheses_sha256"]) == 64
    assert len(saved["commit"] or "x" * 40) == 40 and saved["registered"]
    assert register_hypotheses(load_experiment(path, "p"), root) == saved  # the same family again: accepted
    # the family changes (one direction), then reproduce is refused before any stage writes anything
    family[1]["direction"] = "greater"
    _write(path, HYPOTHESES_BASE | {"hypotheses": family})
    listing = lambda: sorted(p.name for p in root.iterdir() if not p.name.startswith(".lock"))  # noqa: E731
    before = listing()
    with pytest.raises(ClirOtError, match=r"registered other hypotheses .* does not change once registered"):
        reproduce(path, "p", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
    assert listing() == before == ["manifest.json"] and not (tmp_path / "reports").exists()
    # dropping the family is a change too
    with pytest.raises(ClirOtError, match="registered other hypotheses"):
        register_hypotheses(load_experiment(_write(path, HYPOTHESES_BASE), "p"), root)
    # a family declared after distillations started without one is refused
    late = tmp_path / "late"
    (late / "distill" / "kd-s0").mkdir(parents=True)
    with pytest.raises(ClirOtError, match="fixed before the first distillation"):
        register_hypotheses(exp, late)
    assert not (late / "manifest.json").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"profiles": ["p"]}, "profiles must be a mapping"),
    ({"profiles": {"p": "smoke"}}, "profile 'p' must be a mapping"),
    ({"distill": ["lr", 1]}, "distill must be a mapping"),
    ({"extends": ["a.yaml", "b.yaml"]}, "extends must be one path"),
    ({"curve_steps": [2, 2]}, "curve_steps lists 2 twice"),
    ({"seeds": [0, 0]}, "seeds lists 0 twice"),
    ({"conditions": {"ot": {"method": "ot", "sweep": {"ot_reg": [1, 1.0]}}}}, "the same value twice"),
    ({"conditions": {"kd": "kd"}}, "condition 'kd' must be a mapping"),
    ({"conditions": {"ot": {"method": "ot", "ot_weight": ".inf"}}}, "ot_weight must be a finite number"),
    ({"conditions": {"ot": {"objective": {"ot": float("inf")}}}}, "objective weight of ot"),
    ({"expected": {"yo": {"kd": {"nDCG@10": "high"}}}}, "expected yo kd nDCG@10 must be a number"),
    ({"expected": {"yo": {"kd": 0.85}}}, "expected yo kd must map measures to numbers"),
    ({"expected": {"xx": {"kd": {"nDCG@10": 0.8}}}}, "expected names language 'xx'"),
    ({"expected": {"yo": {"kdd": {"nDCG@10": 0.8}}}}, "expected yo names unknown condition 'kdd'"),
    ({"expected": {"yo": {"kd": {"nDCG@100": 0.8}}}}, "expected yo kd names measure 'nDCG@100'"),
])
def test_the_whole_experiment_file_is_checked_before_any_stage(tmp_path: Path, change: dict, message: str) -> None:
    base = {"conditions": {"kd": {"method": "kd"}, "ot": {"method": "ot"}}, "eval_langs": ["yo"],
            "distill": {"steps": 10}, "profiles": {"p": {"seeds": [0]}}}
    spec = base | {k: v for k, v in change.items() if k not in ("expected", "curve_steps", "seeds")}
    if "expected" in change or "curve_steps" in change or "seeds" in change:
        spec["profiles"] = {"p": {"seeds": [0]} | {k: v for k, v in change.items()}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(base))
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ClirOtError, match=message):
        load_experiment(path, "p")
