"""The second hostile round (issue 39): data files that would run code, bundles that would write outside their
folder, outputs replaced without asking, integrity that could be switched off, experiment files that mis-state
the run. Each test reproduces one class of attack and shows the one-line refusal."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from clir_ot.errors import ClirOtError


class _RunsCode:
    """A pickle that runs a shell command when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def small_bitext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clir_ot.data.bitext import read_bitext, write_bitext
    from clir_ot.data.training import DEMO_BITEXT, resolve_data_path

    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).without_held_out().pairs
    path = tmp_path_factory.mktemp("bitext") / "small.tsv"
    write_bitext(path, [p for p in pairs if p.lang == "de"][:40])
    return path


@pytest.mark.integration
@pytest.mark.parametrize("crafted", ["trainer.pt", "student_trainable.pt"])
def test_a_crafted_pickle_in_a_checkpoint_is_refused_and_never_run(crafted: str, tiny_xlmr_dir: Path,
                                                                  small_bitext: Path, tmp_path: Path) -> None:
    from clir_ot.distill.trainer import DistillConfig, train

    cfg = DistillConfig(lang="sw", student=str(tiny_xlmr_dir), bitext=[str(small_bitext)], lexicon=None, steps=4,
                        batch_size=4, max_length=32, warmup_steps=1, checkpoint_every=2, probe_langs=["yo"],
                        check_lang=None, method="kd")

    def stop(step: int, record: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", evaluate=False, on_step=stop)
    marker = tmp_path / "pwned"
    (tmp_path / "run" / "checkpoint" / crafted).write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ClirOtError, match=f"{crafted} cannot be read as a clir-ot checkpoint"):
        train(cfg, tmp_path / "run", resume=True, evaluate=False)
    assert not marker.exists()


# -- bundles: confined, bounded, never replacing without --overwrite ------------------------------------------


def _bundle(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, dict]:
    from clir_ot.transfer import write_parts

    src = tmp_path / "src"
    paths = {}
    for name, data in files.items():
        path = src / name.replace("/", "_")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    return tmp_path / "bundle", write_parts(paths, tmp_path / "bundle")


def _rewrite(bundle: Path, manifest: dict) -> None:
    import json

    (bundle / "bundle.json").write_text(json.dumps(manifest))


@pytest.mark.unit
@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.pop("files"), "lacks its parts"),
    (lambda m: m["parts"][0].pop("name"), "part name None is not a plain file name"),
    (lambda m: m["parts"][0].pop("sha256"), r"parts\[0\].sha256 must be a sha256"),
    (lambda m: m["parts"][0].update(bytes="10"), r"parts\[0\].bytes must be a whole number"),
    (lambda m: m.update(format=True), "has format True"),
    (lambda m: m["parts"][0].update(name="/etc/hostname"), "'/etc/hostname' is not a plain file name"),
    (lambda m: m["parts"][0].update(name="../bundle/bundle.part-000"), "is not a plain file name"),
    (lambda m: m["files"].update({"a.txt": "x"}), r"files\['a.txt'\] must be a mapping"),
    (lambda m: m["files"].update({"a.txt": {"bytes": -1, "sha256": "0" * 64}}), "must be a whole number"),
    (lambda m: m.update(parts=[]), "lacks its parts"),
])
def test_a_malformed_manifest_is_refused_with_one_line_before_anything_is_written(change, message: str,
                                                                                 tmp_path: Path) -> None:
    from clir_ot.transfer import read_parts

    bundle, manifest = _bundle(tmp_path, {"a.txt": b"hello"})
    change(manifest)
    _rewrite(bundle, manifest)
    with pytest.raises(ClirOtError, match=message):
        read_parts(bundle, tmp_path / "into")
    assert not (tmp_path / "into").exists()


@pytest.mark.unit
def test_a_recomputed_manifest_cannot_plant_a_file_where_unpacking_installs(tmp_path: Path) -> None:
    from clir_ot.transfer import read_parts, write_parts

    planted = tmp_path / "sitecustomize.py"
    planted.write_text("import os; os.system('touch /tmp/pwned')\n")
    with pytest.raises(ClirOtError, match="where unpacking installs"):
        write_parts({"site-packages/sitecustomize.py": planted}, tmp_path / "bundle")
    bundle, manifest = _bundle(tmp_path, {"env.sh.txt": b"x"})
    manifest["files"] = {"env.sh": manifest["files"]["env.sh.txt"]}
    _rewrite(bundle, manifest)
    with pytest.raises(ClirOtError, match="where unpacking installs"):
        read_parts(bundle, tmp_path / "into")


@pytest.mark.unit
def test_a_member_larger_than_declared_is_refused_and_nothing_lands(tmp_path: Path) -> None:
    from clir_ot.transfer import read_parts

    bundle, manifest = _bundle(tmp_path, {"big.bin": os.urandom(30_000), "a.txt": b"hello"})
    manifest["files"]["big.bin"]["bytes"] = 10
    _rewrite(bundle, manifest)
    with pytest.raises(ClirOtError, match="big.bin' is 30,000 bytes in the stream, not the 10"):
        read_parts(bundle, tmp_path / "into")
    assert list((tmp_path / "into").rglob("*")) == []  # the staging folder is gone too


@pytest.mark.unit
def test_unpacking_never_replaces_a_file_without_overwrite_nor_from_a_refused_bundle(tmp_path: Path) -> None:
    from clir_ot.transfer import read_parts

    bundle, manifest = _bundle(tmp_path, {"a.txt": b"new", "b.txt": b"other"})
    into = tmp_path / "into"
    into.mkdir()
    (into / "a.txt").write_bytes(b"x" * 5000)
    with pytest.raises(ClirOtError, match="already holds a.txt of this bundle; pass --overwrite"):
        read_parts(bundle, into)
    assert (into / "a.txt").read_bytes() == b"x" * 5000 and not (into / "b.txt").exists()
    manifest["files"]["b.txt"]["sha256"] = "0" * 64  # refused after a.txt was unpacked: nothing is moved
    _rewrite(bundle, manifest)
    with pytest.raises(ClirOtError, match="b.txt unpacked with another sha256"):
        read_parts(bundle, into, overwrite=True)
    assert (into / "a.txt").read_bytes() == b"x" * 5000 and sorted(p.name for p in into.iterdir()) == ["a.txt"]


@pytest.mark.unit
def test_a_symbolic_link_in_into_or_as_a_part_does_not_lead_out(tmp_path: Path) -> None:
    from clir_ot.transfer import read_parts

    bundle, manifest = _bundle(tmp_path, {"models/m.bin": b"weights"})
    outside = tmp_path / "outside"
    outside.mkdir()
    into = tmp_path / "into"
    into.mkdir()
    (into / "models").symlink_to(outside)
    with pytest.raises(ClirOtError, match="leads out of"):
        read_parts(bundle, into)
    assert list(outside.iterdir()) == []
    part = bundle / manifest["parts"][0]["name"]
    moved = tmp_path / "elsewhere.part"
    part.rename(moved)
    part.symlink_to(moved)
    with pytest.raises(ClirOtError, match="is a symbolic link"):
        read_parts(bundle, tmp_path / "fresh")


@pytest.mark.unit
def test_bundling_refuses_an_out_inside_its_source_links_that_leave_it_and_names_it_cannot_restore(
        tmp_path: Path) -> None:
    from clir_ot.transfer import collect_files, write_parts

    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("data")
    with pytest.raises(ClirOtError, match="overlaps"):
        collect_files([src], src / "out")
    with pytest.raises(ClirOtError, match="overlaps"):
        collect_files([src], src)
    assert (src / "keep.txt").read_text() == "data"
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (src / "link.txt").symlink_to(secret)
    with pytest.raises(ClirOtError, match="symbolic link that leads out of"):
        collect_files([src], tmp_path / "out")
    (src / "link.txt").unlink()
    (src / "inner.txt").symlink_to(src / "keep.txt")  # a link inside the source is its target's bytes
    assert set(collect_files([src], tmp_path / "out")) == {"src/keep.txt", "src/inner.txt"}
    with pytest.raises(ClirOtError, match="at most 200 can be restored"):
        write_parts({"x" * 230: src / "keep.txt"}, tmp_path / "b")


@pytest.mark.integration
def test_unpack_into_a_read_only_folder_or_a_full_disk_says_so_in_one_line(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot import transfer

    bundle, _ = _bundle(tmp_path, {"a.txt": b"hello", "b.txt": b"world"})

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transfer, "_stream_member", lambda *a, **k: full())
    with pytest.raises(ClirOtError, match="No space left on device"):
        transfer.read_parts(bundle, tmp_path / "into")
    assert list((tmp_path / "into").iterdir()) == []
    monkeypatch.undo()

    def read_only(*args, **kwargs):  # what mkdtemp meets in a read-only folder (root writes anywhere here)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(transfer.tempfile, "mkdtemp", read_only)
    with pytest.raises(ClirOtError, match="cannot unpack into .*: Permission denied"):
        transfer.read_parts(bundle, tmp_path / "ro")


# -- nothing replaced without --overwrite: reports and heatmaps -------------------------------------------------


@pytest.mark.unit
def test_a_report_folder_of_another_run_folder_or_of_no_report_is_refused(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from clir_ot.eval.report import claim_report_folder

    exp = SimpleNamespace(name="zero_shot_miracl", profile="smoke")
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.md").write_text("my notes")
    with pytest.raises(ClirOtError, match="holds a results.md that no clir-ot report wrote"):
        claim_report_folder(out, tmp_path / "runs-a", exp)
    claim_report_folder(out, tmp_path / "runs-a", exp, overwrite=True)
    (out / "results.json").write_text(json.dumps({"experiment": "zero_shot_miracl", "profile": "smoke",
                                                  "runs": str((tmp_path / "runs-a").resolve())}))
    claim_report_folder(out, tmp_path / "runs-a", exp)  # its own report: rewritten
    with pytest.raises(ClirOtError, match="holds the report of the run folder .*runs-a, not of .*runs-b"):
        claim_report_folder(out, tmp_path / "runs-b", exp)
    (out / "results.json").write_text(json.dumps({"experiment": "zero_shot_miracl", "profile": "cpu"}))
    with pytest.raises(ClirOtError, match="another experiment or profile"):
        claim_report_folder(out, tmp_path / "runs-b", exp)
    (out / "results.json").write_text(json.dumps({"experiment": "zero_shot_miracl", "profile": "smoke"}))
    claim_report_folder(out, tmp_path / "runs-b", exp)  # a committed report from before reports named their runs


@pytest.mark.integration
def test_explain_refuses_an_existing_heatmap_empty_text_and_a_regularisation_that_is_no_number(
        tmp_path: Path, tiny_xlmr_dir: Path) -> None:
    from typer.testing import CliRunner

    from clir_ot.cli import app

    png = tmp_path / "plan.png"
    png.write_bytes(b"an earlier heatmap")
    base = ["explain", "--model", str(tiny_xlmr_dir), "--teacher", str(tiny_xlmr_dir)]
    runner = CliRunner()
    for args, message in ((["--en", "a house", "--x", "ein Haus", "--out", str(png)], "already exists; pass "
                                                                                        "--overwrite"),
                          (["--en", " ", "--x", "ein Haus", "--out", str(tmp_path / "b.png")], "must each hold"),
                          (["--en", "a", "--x", "b", "--reg", "nan", "--out", str(tmp_path / "c.png")],
                           "--reg must be a finite number > 0"),
                          (["--en", "a", "--x", "b", "--reg", "0", "--out", str(tmp_path / "d.png")],
                           "--reg must be a finite number > 0")):
        result = runner.invoke(app, base + args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert png.read_bytes() == b"an earlier heatmap"


# -- integrity that cannot be switched off ------------------------------------------------------------------


@pytest.mark.integration
def test_deleting_a_records_hashes_does_not_switch_its_verification_off(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from clir_ot.cli import app
    from clir_ot.eval.evaluate import EvalConfig, evaluate

    a, b = tmp_path / "a", tmp_path / "b"
    evaluate(EvalConfig(langs=["yo"], model="bm25"), a)
    evaluate(EvalConfig(langs=["yo"], model="bm25-strong"), b)
    record = json.loads((b / "yo" / "metrics.json").read_text())
    record.pop("record_sha256"), record.pop("files")
    (b / "yo" / "metrics.json").write_text(json.dumps(record))
    forged = json.loads((b / "yo" / "per_query.json").read_text())
    (b / "yo" / "per_query.json").write_text(json.dumps({q: {m: 1.0 for m in s} for q, s in forged.items()}))
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 1 and "carries no sha256 of itself" in result.output and "1.0000" not in result.output
    (again,) = evaluate(EvalConfig(langs=["yo"], model="bm25-strong"), b)  # evaluate: recomputed, not reused
    assert not again.reused and again.metrics["R@100"] < 1.0
    assert json.loads((b / "yo" / "metrics.json").read_text())["record_sha256"]


# -- experiment files that say what runs ------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(("text", "message"), [
    ("conditions:\n  kd: {method: kd}\n  kd: {method: ot}\nprofiles: {p: {seeds: [0]}}\n", "found the key 'kd' twice"),
    ("conditions:\n  kd: {method: kd, method: ot}\nprofiles: {p: {seeds: [0]}}\n", "found the key 'method' twice"),
    ("conditions: {kd: {method: kd}}\nprofiles: {p: {seeds: [0, 0]}}\n", "seeds lists 0 twice"),
    ("conditions: {kd: {method: kd, seeds: [3, 3]}}\nprofiles: {p: {seeds: [0]}}\n", "seeds of 'kd' lists 3 twice"),
])
def test_an_experiment_file_that_would_mis_state_the_run_is_refused(text: str, message: str, tmp_path: Path) -> None:
    from clir_ot.experiment import load_experiment

    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ClirOtError, match=message):
        load_experiment(path, "p")


@pytest.mark.unit
def test_an_alias_bomb_is_refused_quickly_and_a_merge_may_still_override(tmp_path: Path) -> None:
    import time

    from clir_ot.config import read_yaml

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines.append("hypotheses: [*a8]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    started = time.time()
    with pytest.raises(ClirOtError, match="aliases expand to more than 200,000 values"):
        read_yaml(bomb)
    assert time.time() - started < 5
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &base {seeds: [0, 1], steps: 5}\nprofile:\n  <<: *base\n  seeds: [2]\n")
    assert read_yaml(merged)["profile"] == {"seeds": [2], "steps": 5}


# -- the registration is the authority --------------------------------------------------------------------------


@pytest.mark.e2e
def test_an_edited_registration_or_experiment_yaml_is_refused_by_reproduce_and_the_report(
        tmp_path: Path, tiny_experiment, small_bitext: Path) -> None:
    import json

    import yaml

    from clir_ot.config import build, read_yaml
    from clir_ot.eval.report import write_report
    from clir_ot.registration import family_sha256
    from clir_ot.reproduce import Experiment, reproduce

    hypotheses = [{"a": "kd", "b": "before", "lang": "yo", "measure": "nDCG@10", "direction": "greater"}]
    path = tiny_experiment("registered", small_bitext, hypotheses=hypotheses)
    spec = yaml.safe_load(path.read_text())
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    reproduce(path, "tiny", runs, reports, log=lambda m: None)
    root = runs / "registered" / "tiny"
    assert json.loads((root / "distill" / "kd-s0" / "registration.json").read_text())["hypotheses_sha256"] == \
        json.loads((root / "manifest.json").read_text())["hypotheses_sha256"]

    # the run folder's experiment.yaml flipped to test kd < before: the report tests the registered family only
    declared = read_yaml(root / "experiment.yaml")
    flipped = json.loads(json.dumps(declared))
    flipped["hypotheses"][0]["direction"] = "less"
    (root / "experiment.yaml").write_text(yaml.safe_dump(flipped))
    with pytest.raises(ClirOtError, match="declares other hypotheses .* than the family registered"):
        write_report(root, tmp_path / "again", build(Experiment, read_yaml(root / "experiment.yaml")))
    (root / "experiment.yaml").write_text(yaml.safe_dump(declared))

    # manifest.json edited to the flipped family with its sha256 recomputed: the stages disagree
    registration = json.loads((root / "manifest.json").read_text())
    original = json.dumps(registration)
    registration["hypotheses"][0]["direction"] = "less"
    (root / "manifest.json").write_text(json.dumps(registration))
    with pytest.raises(ClirOtError, match="does not hash to its recorded sha256"):
        reproduce(path, "tiny", runs, reports, log=lambda m: None)
    registration["hypotheses_sha256"] = family_sha256(registration["hypotheses"])
    (root / "manifest.json").write_text(json.dumps(registration))
    flipped_spec = json.loads(json.dumps(spec))
    flipped_spec["hypotheses"][0]["direction"] = "less"
    path.write_text(yaml.safe_dump(flipped_spec))
    with pytest.raises(ClirOtError, match="distill/kd-s0 ran under .*: the registration was changed after stages"):
        reproduce(path, "tiny", runs, reports, log=lambda m: None)
    with pytest.raises(ClirOtError, match="the registration was changed after stages"):
        write_report(root, tmp_path / "third", build(Experiment, read_yaml(root / "experiment.yaml")))
    (root / "manifest.json").write_text(original)
    path.write_text(yaml.safe_dump(spec))
    reproduce(path, "tiny", runs, reports, log=lambda m: None)  # restored: it runs (every stage skipped)


# -- one line, never a traceback --------------------------------------------------------------------------------


@pytest.mark.integration
def test_bad_environment_and_damaged_records_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from clir_ot.cli import app
    from clir_ot.data import bible

    runner = CliRunner()
    for name, value in (("WORLD_SIZE", "abc"), ("WORLD_SIZE", "0"), ("RANK", "-1")):
        monkeypatch.setenv(name, value)
        result = runner.invoke(app, ["distill", "--set", "steps=1", "--out", str(tmp_path / "d")])
        assert result.exit_code == 1 and f"${name} is '{value}'" in result.output, result.output
        assert "Traceback" not in result.output and not (tmp_path / "d").exists()
        monkeypatch.delenv(name)
    junk = tmp_path / "bible.db"
    junk.write_text("not a database\n")
    monkeypatch.setenv("CLIR_OT_BIBLE_DB", str(junk))
    bible.read_edition.cache_clear()
    result = runner.invoke(app, ["eval", "--benchmark", "bible-clir", "--lang", "sw", "--model", "bm25", "--out",
                                 str(tmp_path / "b")])
    assert result.exit_code == 1 and "is not a readable Bible database" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    monkeypatch.delenv("CLIR_OT_BIBLE_DB")
    bible.read_edition.cache_clear()
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLIR_OT_CACHE", str(cache))
    for i, (config, manifest) in enumerate((("- a list\n", "[1]"), ("\\xff: [", "{"), (b"\\xff\\xfe", "null"))):
        entry = cache / "embeddings" / f"entry{i}"
        entry.mkdir(parents=True)
        (entry / "config.yaml").write_bytes(config if isinstance(config, bytes) else config.encode())
        (entry / "manifest.json").write_text(manifest)
    result = runner.invoke(app, ["cache"])
    assert result.exit_code == 0 and "Traceback" not in result.output and "entry2" in result.output, result.output


# -- the gate's records are its own -----------------------------------------------------------------------------


@pytest.mark.integration
def test_a_hand_written_or_altered_gate_record_unlocks_nothing(tiny_xlmr_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot.artifacts import hardware, seal, write_json_atomic
    from clir_ot.eval import fidelity, gate
    from clir_ot.eval.evaluate import EvalConfig
    from clir_ot.models import precision

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))  # the records stay with this test
    monkeypatch.setattr(precision, "precision_choice", lambda requested, device_type=None: {
        "requested": requested, "precision": "fp32" if requested == "auto" else requested, "reason": "CPU"})
    model = str(tiny_xlmr_dir)
    path = fidelity.record_path(fidelity._weights_sha256(model), "int8")
    passed = {"passed": True, "full_corpus": True, "measured": "2026-12-07 22:00", "machine": hardware(),
              "cosine": {"passages": fidelity.COSINE_PASSAGES, "min": 0.999, "mean": 0.999,
                         "per_second": {"fp32": 10.0, "int8": 30.0}}}
    write_json_atomic(path, passed)  # hand-written: no seal
    assert EvalConfig(langs=["yo"], model=model).precision == "fp32"
    with pytest.raises(ClirOtError, match="is not one the gate wrote"):
        fidelity.require_fidelity(model, "int8")
    write_json_atomic(path, seal(passed | {"full_corpus": "false"}))  # sealed, but a string where a boolean belongs
    assert EvalConfig(langs=["yo"], model=model).precision == "fp32"
    sealed = seal(passed)
    write_json_atomic(path, sealed | {"passed": True, "cosine": passed["cosine"] | {"min": 0.5}})  # altered
    assert EvalConfig(langs=["yo"], model=model).precision == "fp32"
    write_json_atomic(path, sealed)
    assert EvalConfig(langs=["yo"], model=model).precision == "int8"  # the gate's own record
    with pytest.raises(ClirOtError, match="a smaller gate .* would replace that record: refused"):
        gate.run_gate(model, "int8", pool_distractors=10)
    with pytest.raises(ClirOtError, match="a smaller gate"):
        gate.run_gate(model, "int8", passages=10)
    assert fidelity.read_record(path) == sealed


@pytest.mark.unit
def test_a_hand_written_bf16_speed_record_is_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from clir_ot.artifacts import config_hash, hardware, write_json_atomic
    from clir_ot.models import precision
    from clir_ot.settings import cache_dir

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))  # the fake rates stay with this test
    here = hardware()
    key = config_hash([here["cpu"], here["cpu_flags"], torch.__version__, here["torch_threads"],
                       precision.PROBE_SHAPE])
    path = cache_dir() / "hardware" / f"bf16-speedup-{key}.json"
    write_json_atomic(path, {"fp32_gflops": 1.0, "bf16_gflops": 100.0, "speedup": 100.0})
    precision.bf16_matmul_speedup.cache_clear()
    monkeypatch.setattr(precision, "matmul_gflops", lambda dtype, *a, **k: 50.0)
    measured = precision.bf16_matmul_speedup()
    precision.bf16_matmul_speedup.cache_clear()
    assert measured["speedup"] == 1.0 and measured["record_sha256"]


@pytest.mark.unit
@pytest.mark.parametrize("trainer_state", ["tensor", {"step": "3"}, {"optimizer": {}, "scheduler": {}, "step": 1,
                                                                     "consumed": 4, "world_size": 1,
                                                                     "ranks_rng": []}])
def test_a_checkpoint_of_tensors_in_another_shape_is_one_line(trainer_state, tmp_path: Path) -> None:
    from types import SimpleNamespace

    import torch

    from clir_ot.distill import checkpoint

    folder = tmp_path / "run" / "checkpoint"
    folder.mkdir(parents=True)
    torch.save(torch.zeros(1) if trainer_state == "tensor" else trainer_state, folder / "trainer.pt")
    torch.save({"w": torch.zeros(1)}, folder / "student_trainable.pt")
    models = SimpleNamespace(student=SimpleNamespace(device="cpu", model=None), teacher_map=None)
    with pytest.raises(ClirOtError, match="does not hold the states clir-ot writes"):
        checkpoint.load_checkpoint(tmp_path / "run", models, None, None)


@pytest.mark.e2e
def test_reproduce_discards_a_checkpoint_it_cannot_read_and_trains_the_student_again(
        tmp_path: Path, tiny_experiment, small_bitext: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot.distill import trainer
    from clir_ot.reproduce import reproduce

    path = tiny_experiment("resume", small_bitext, steps=4)
    real = trainer.train

    def stopped(*args, **kwargs):
        def stop(step, record):
            if step == 3:
                raise KeyboardInterrupt
        return real(*args, **kwargs, on_step=stop)

    monkeypatch.setattr(trainer, "train", stopped)
    with pytest.raises(KeyboardInterrupt):
        reproduce(path, "tiny", tmp_path / "runs", tmp_path / "reports", log=lambda m: None)
    monkeypatch.setattr(trainer, "train", real)
    checkpoint = tmp_path / "runs" / "resume" / "tiny" / "distill" / "kd-s0" / "checkpoint"
    marker = tmp_path / "pwned"
    (checkpoint / "trainer.pt").write_bytes(pickle.dumps(_RunsCode(marker)))
    logs: list[str] = []
    reproduce(path, "tiny", tmp_path / "runs", tmp_path / "reports", log=logs.append)
    assert any("restart distill kd seed 0: its checkpoint is not one this clir-ot reads" in m for m in logs)
    assert not marker.exists() and (checkpoint.parent / "student").is_dir()


@pytest.mark.integration
@pytest.mark.parametrize("out", ["/proc/clir-ot-out", "/sys/kernel/clir-ot-out"])
def test_an_output_folder_the_file_system_refuses_is_one_line(out: str) -> None:
    """A read-only or impossible place (root may write anywhere else here: /proc and /sys refuse it too)."""
    from typer.testing import CliRunner

    from clir_ot.cli import app

    result = CliRunner().invoke(app, ["eval", "--model", "bm25", "--lang", "yo", "--out", out])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {out}" in result.output and "choose a writable place" in result.output, result.output
