"""No silently wrong number: a result is reused only when every input is unchanged, bad caches and bad
inputs are refused with one line, and nothing says "full corpus" that was not."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clir_ot.cli import app

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str):
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}).invoke(app, list(args))
    result.clean_stdout = ANSI.sub("", result.stdout)
    result.clean_stderr = " ".join(ANSI.sub("", result.stderr).split())
    return result


def yo_row(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("| yo |"))


def perturb_weights(model_dir: Path, seed: int) -> None:
    """Retrain 'in place': new weights written over the model folder, as a rerun of distill would."""
    from clir_ot.models import load_encoder

    enc = load_encoder(str(model_dir), device="cpu")
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in enc.model.parameters():
            p.add_(torch.randn_like(p))
    enc.save(model_dir)


def test_changed_weights_at_the_same_path_are_evaluated_again(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "student"
    shutil.copytree(tiny_xlmr_dir, model)
    out = str(tmp_path / "eval")
    args = ("eval", "--lang", "yo", "--model", str(model), "--pool", "30", "--out", out)
    first = run(*args)
    assert first.exit_code == 0, first.output
    again = run(*args)
    assert again.exit_code == 0 and yo_row(again.clean_stdout) == yo_row(first.clean_stdout)
    assert "reused yo" in again.clean_stderr
    perturb_weights(model, seed=1)
    changed = run(*args)
    assert changed.exit_code == 0, changed.output
    assert "reused" not in changed.clean_stderr
    assert yo_row(changed.clean_stdout) != yo_row(first.clean_stdout)
    # the saved embeddings were recomputed too: a fresh evaluation in a new folder gives the same row
    fresh = run("eval", "--lang", "yo", "--model", str(model), "--pool", "30", "--out", str(tmp_path / "fresh"))
    assert yo_row(fresh.clean_stdout) == yo_row(changed.clean_stdout)


def test_a_changed_run_file_is_scored_again(tmp_path: Path) -> None:
    bm25 = run("eval", "--lang", "yo", "--model", "bm25", "--out", str(tmp_path / "bm25"))
    assert bm25.exit_code == 0, bm25.output
    run_file = tmp_path / "run.trec"
    shutil.copy(tmp_path / "bm25" / "yo" / "run.trec", run_file)
    args = ("eval", "--lang", "yo", "--run", str(run_file), "--out", str(tmp_path / "scored"))
    first = run(*args)
    assert first.exit_code == 0 and "| 0.7325 |" in yo_row(first.clean_stdout)
    lines = run_file.read_text().splitlines()
    flipped = []  # same documents, scores reversed within each query: a different, worse run
    for line in lines:
        qid, q0, doc, rank, score, tag = line.split()
        flipped.append(f"{qid} {q0} {doc} {rank} {-float(score)} {tag}")
    run_file.write_text("\n".join(flipped) + "\n")
    second = run(*args)
    assert second.exit_code == 0 and "reused" not in second.clean_stderr
    assert yo_row(second.clean_stdout) != yo_row(first.clean_stdout)
    assert "full corpus" not in second.clean_stdout and "searched outside clir-ot" in second.clean_stdout


def test_reproduce_evaluates_a_student_retrained_at_the_same_path(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    from clir_ot.reproduce import Experiment, run_eval

    model = tmp_path / "student"
    shutil.copytree(tiny_xlmr_dir, model)
    exp = Experiment(name="t", profile="p", student=str(model), eval_langs=["yo"], eval_pool=20, eval_queries=10,
                     seeds=[0], methods=["kd"])
    logs: list[str] = []
    run_eval(exp, str(model), tmp_path / "eval", exp.eval_pool, logs.append)
    before = json.loads((tmp_path / "eval" / "yo" / "metrics.json").read_text())["result"]["metrics"]
    run_eval(exp, str(model), tmp_path / "eval", exp.eval_pool, logs.append)
    assert "reused" in logs[-1]
    perturb_weights(model, seed=2)
    run_eval(exp, str(model), tmp_path / "eval", exp.eval_pool, logs.append)
    after = json.loads((tmp_path / "eval" / "yo" / "metrics.json").read_text())["result"]["metrics"]
    assert "reused" not in logs[-1] and after != before


def test_eval_with_nothing_evaluable_exits_1(tmp_path: Path) -> None:
    result = run("eval", "--lang", "sw", "--model", "bm25", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "none of the requested languages (sw) could be evaluated" in result.clean_stderr
    assert "sw unavailable" in result.clean_stdout and "Traceback" not in result.output


def test_a_truncated_cached_corpus_is_one_line_exit_1(isolated_env: Path, tmp_path: Path) -> None:
    from clir_ot.data import miracl

    miracl.prepare(["yo"])
    path = isolated_env / "miracl/v1.0/yo/docs/docs-1.jsonl.gz"
    path.write_bytes(path.read_bytes()[:100000])
    result = run("eval", "--lang", "yo", "--model", "bm25", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "Aborted" not in result.output
    assert "truncated or corrupt" in result.clean_stdout and "could be evaluated" in result.clean_stderr


def test_evaluate_refuses_another_systems_results_without_overwrite(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    assert run("eval", "--lang", "yo", "--model", "bm25", "--out", out).exit_code == 0
    other = run("eval", "--lang", "yo", "--model", "bm25", "--fuse", "rrf", "--out", out)
    assert other.exit_code == 1 and "holds the results of another system (bm25)" in other.clean_stderr
    assert json.loads((tmp_path / "o" / "results.json").read_text())["system"] == "bm25"
    replaced = run("eval", "--lang", "yo", "--model", "bm25", "--fuse", "rrf", "--out", out, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((tmp_path / "o" / "results.json").read_text())["system"].startswith("bm25+bm25(rrf")


def test_an_evaluation_killed_between_its_languages_resumes(tmp_path: Path) -> None:
    """A kill after some languages' files and before the folder's summary (what `reproduce` left when it was
    stopped during bible-clir) is the same system's work: the next call resumes it, and another system is still
    refused."""
    out = tmp_path / "o"
    first = run("eval", "--benchmark", "bible-clir", "--lang", "sw,de", "--model", "bm25", "--out", str(out))
    assert first.exit_code == 0, first.output
    (out / "results.json").unlink()  # the state after the kill: languages written, no summary yet
    (out / "manifest.json").unlink()
    shutil.rmtree(out / "de")
    again = run("eval", "--benchmark", "bible-clir", "--lang", "sw,de", "--model", "bm25", "--out", str(out), "--json")
    assert again.exit_code == 0, again.output
    rows = {r["lang"]: r for r in json.loads(again.stdout)["results"]}
    assert rows["sw"]["reused"] and not rows["de"]["reused"]
    (out / "results.json").write_text("{")  # a damaged summary: the languages' records still name the system
    damaged = run("eval", "--benchmark", "bible-clir", "--lang", "sw,de", "--model", "bm25", "--out", str(out))
    assert damaged.exit_code == 0 and "reused sw" in damaged.clean_stderr
    (out / "results.json").unlink()
    other = run("eval", "--benchmark", "bible-clir", "--lang", "sw", "--model", "bm25-strong", "--out", str(out))
    assert other.exit_code == 1 and "holds the results of another system (bm25)" in other.clean_stderr


def test_a_folder_being_written_by_another_process_is_refused(tmp_path: Path) -> None:
    from clir_ot.artifacts import folder_lock

    with folder_lock(tmp_path / "o", "evaluate"):
        result = run("eval", "--lang", "yo", "--model", "bm25", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "another clir-ot process is writing" in result.clean_stderr
    assert run("eval", "--lang", "yo", "--model", "bm25", "--out", str(tmp_path / "o")).exit_code == 0


def test_yaml_values_never_become_paths_outside_the_runs_folder(tmp_path: Path) -> None:
    from clir_ot.errors import ClirOtError
    from clir_ot.layout import baseline_folder
    from clir_ot.reproduce import load_experiment

    assert baseline_folder("bm25") == "bm25" and baseline_folder("me5-small") == "me5-small"
    for system in ("/abs/model", "../../x", "a/b", ".", ".."):
        folder = baseline_folder(system)
        assert "/" not in folder and folder not in (".", "..") and (Path("runs") / folder).parent == Path("runs")
    assert baseline_folder("/abs/model") != baseline_folder("/other/model")
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: ../../x\nprofiles: {p: {}}\n")
    with pytest.raises(ClirOtError, match="experiment name '../../x' must be"):
        load_experiment(spec, "p")
    spec.write_text("baselines: [bm25, bm25]\nprofiles: {p: {}}\n")
    with pytest.raises(ClirOtError, match="map to the same folder"):
        load_experiment(spec, "p")


def test_errors_in_the_distill_block_stop_reproduce_before_any_stage(tmp_path: Path) -> None:
    spec = tmp_path / "exp.yaml"
    spec.write_text("baselines: [bm25]\neval_langs: [yo]\ndistill: {lr: -1}\nprofiles: {p: {seeds: [0]}}\n")
    result = run("reproduce", str(spec), "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 1 and "no profile 'smoke'" in result.clean_stderr
    spec.write_text("baselines: [bm25]\neval_langs: [yo]\ndistill: {lr: -1}\nprofiles: {smoke: {seeds: [0]}}\n")
    result = run("reproduce", str(spec), "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 1 and "lr must be > 0.0, got -1.0" in result.clean_stderr
    assert not (tmp_path / "runs").exists()


def test_set_values_on_the_command_line_are_typed(tmp_path: Path) -> None:
    bad = run("distill", "--set", "batch_size=2.5", "--out", str(tmp_path / "o"))
    assert bad.exit_code == 1 and "batch_size must be an integer, got 2.5" in bad.clean_stderr
    assert "Traceback" not in bad.output and not (tmp_path / "o").exists()


def _bad_text_files(tmp_path: Path, stem: str, suffix: str, good: str) -> dict[str, Path]:
    import gzip
    import os

    files = {}
    binary = tmp_path / f"{stem}-binary{suffix}"
    binary.write_bytes(os.urandom(4000))
    files["binary"] = binary
    utf16 = tmp_path / f"{stem}-utf16{suffix}"
    utf16.write_text(good, encoding="utf-16")
    files["utf-16"] = utf16
    cut = tmp_path / f"{stem}-cut{suffix}.gz"
    whole = gzip.compress(good.encode() * 50)
    cut.write_bytes(whole[: len(whole) // 2])
    files["cut gzip"] = cut
    notgz = tmp_path / f"{stem}-notgz{suffix}.gz"
    notgz.write_text(good, encoding="utf-8")
    files["not gzip"] = notgz
    return files


BITEXT = "lang\tsource\tref\ten\tx\n" + "de\tt\t1\tThe house is red.\tDas Haus ist rot.\n" * 3
RUN = "10020#0 Q0 598#0 1 0.5 x\n10020#0 Q0 598#1 2 0.4 x\n"


@pytest.mark.parametrize("damage", ["binary", "utf-16", "cut gzip", "not gzip"])
def test_damaged_bitext_lexicon_and_run_files_are_one_line(tmp_path: Path, damage: str) -> None:
    bitext = _bad_text_files(tmp_path, "bitext", ".tsv", BITEXT)[damage]
    lexicon = _bad_text_files(tmp_path, "lexicon", ".json", '{"de": {"house": ["Haus"]}}')[damage]
    muse = _bad_text_files(tmp_path, "muse", ".txt", "house Haus\n")[damage]
    runfile = _bad_text_files(tmp_path, "run", ".trec", RUN)[damage]
    for args, path in ((("data", "audit", str(bitext)), bitext), (("data", "audit", str(lexicon)), lexicon),
                       (("data", "audit", f"{muse}:de"), muse),
                       (("eval", "--lang", "yo", "--run", str(runfile), "--out", str(tmp_path / "o")), runfile)):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output and str(path) in result.clean_stderr, (args, result.clean_stderr)
        assert "error:" in result.clean_stderr and result.exception is None or isinstance(result.exception,
                                                                                          SystemExit)


def test_lexicon_values_that_are_not_lists_are_one_line(tmp_path: Path) -> None:
    lex = tmp_path / "lexicon.json"
    lex.write_text('{"de": {"house": 5}}', encoding="utf-8")
    result = run("data", "audit", str(lex))
    assert result.exit_code == 1 and "entry 'house': expected a list of translations, found int" in result.clean_stderr


@pytest.mark.parametrize("damage", ["empty config", "truncated weights", "broken spec"])
def test_a_damaged_model_folder_is_one_line(tiny_xlmr_dir: Path, tmp_path: Path, damage: str) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_xlmr_dir, model)
    if damage == "empty config":
        (model / "config.json").write_text("{}")
    elif damage == "truncated weights":
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (model / "clir_ot_encoder.json").write_text('{"pooling": "max-of-nothing"}')
    result = run("eval", "--lang", "yo", "--model", str(model), "--pool", "5", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "could not load model" in result.clean_stderr or "damaged clir_ot_encoder.json" in result.clean_stderr


def test_damaged_cache_files_are_misses_not_crashes(tmp_path: Path) -> None:
    from clir_ot.data.training import DEMO_BITEXT, load_training_data
    from clir_ot.settings import cache_dir

    load_training_data([DEMO_BITEXT], None, "sw")  # fills the audit cache
    for path in (cache_dir() / "audits").glob("*.json"):
        path.write_text("{not json")
    data = load_training_data([DEMO_BITEXT], None, "sw")
    assert data.audits[0].content_counts() == {"yo": 3}  # the audit ran again: 3 Bible name lists, as before


def test_error_text_that_looks_like_markup_is_printed_literally(tmp_path: Path) -> None:
    result = run("eval", "--lang", "yo", "--model", "[/red]x[/bold]", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "error: could not load model '[/red]x[/bold]'" in result.clean_stderr
    assert "Traceback" not in result.output


def test_offline_mode_never_tries_a_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from clir_ot.data import miracl
    from clir_ot.errors import DataUnavailableError

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted in offline mode")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for lang in ("de", "ar", "sw"):
        with pytest.raises(DataUnavailableError, match="offline mode is on"):
            miracl.load_corpus(lang) if lang == "sw" else miracl.load_queries(lang)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_respect_the_umask(tmp_path: Path, umask: int) -> None:
    import os

    from clir_ot.artifacts import atomic_dir, write_json_atomic

    old = os.umask(umask)
    folder = tmp_path / "d"
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_dir(folder) as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize(("option", "value"), [("--depth", "0"), ("--batch-size", "0"), ("--pool", "-1"),
                                               ("--precision", "fp8"), ("--backend", "annoy"), ("--alpha", "2")])
def test_bad_evaluate_options_are_one_line_exit_1(option: str, value: str, tmp_path: Path) -> None:
    result = run("eval", "--lang", "yo", "--model", "bm25", option, value, "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and f"error: Invalid value for '{option}'" in result.clean_stderr
    assert len(ANSI.sub("", result.stderr).strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [
    ("data", "bitext", "--source", "udhr", "--langs", "de", "--limit", "0"),
    ("data", "bitext", "--source", "udhr", "--langs", "de", "--limit", "-3"),
    ("data", "sample", "--n", "-1"),
    ("data", "sample", "--p", "1.5"),
    ("data", "sample", "--mode", "foo"),
    ("data", "sample", "--seed", "4294967296"),
    ("index", "--embeddings", ".", "--depth", "0"),
    ("index", "--embeddings", ".", "--depth", "-1"),
    ("distill", "--seed", "4294967296"),
    ("distill", "--seed", "-1"),
    ("distill", "--method", "ot-kd"),
])
def test_numbers_and_choices_out_of_range_are_one_line_exit_1_before_any_work(args: tuple, tmp_path: Path) -> None:
    out = tmp_path / "out"
    where = ("--out", str(out)) if args[0] in ("data", "index", "distill") and args[:2] != ("data", "sample") else ()
    result = run(*args, *where)
    assert result.exit_code == 1 and "Invalid value for" in result.clean_stderr, result.output
    assert len(ANSI.sub("", result.stderr).strip().splitlines()) == 1 and not out.exists()


def test_the_commands_offer_the_registries_choices() -> None:
    from clir_ot.cli.choices import (
        Backend,
        BenchmarkChoice,
        BitextSource,
        CodeSwitchMode,
        Fusion,
        Method,
        PrecisionChoice,
    )
    from clir_ot.data.benchmarks import BENCHMARKS
    from clir_ot.data.builders import BUILDERS
    from clir_ot.data.codeswitch import CODE_SWITCH_MODES
    from clir_ot.distill.methods import METHODS
    from clir_ot.models.precision import PRECISIONS
    from clir_ot.retrieval.fusion import FUSIONS

    assert [m.value for m in Method] == list(METHODS) and "kd-layer" in METHODS
    assert [p.value for p in PrecisionChoice] == list(PRECISIONS)
    assert {"exact", "faiss", "hnsw", "ivf", "ivfpq"} == {b.value for b in Backend}
    assert [b.value for b in BenchmarkChoice] == list(BENCHMARKS) and "bible-clir" in BENCHMARKS
    assert [s.value for s in BitextSource] == list(BUILDERS) == ["bible", "libreoffice", "udhr"]
    assert [m.value for m in CodeSwitchMode] == list(CODE_SWITCH_MODES)
    assert [f.value for f in Fusion] == list(FUSIONS) == ["bm25", "rrf"]


def _edit_scores(per_query: Path, count: int, value) -> None:
    scores = json.loads(per_query.read_text())
    for qid in list(scores)[:count]:
        scores[qid]["nDCG@10"] = value
    per_query.write_text(json.dumps(scores))


def test_an_edited_per_query_file_is_never_compared_or_reused(tmp_path: Path) -> None:
    """compare of two identical evaluations after one side's per-query scores were edited gave Δ +0.302 with
    p 0.0004; re-running eval printed the edited numbers as reused. Both now go by the recorded sha256."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run("eval", "--lang", "yo", "--model", "bm25", "--out", str(out)).exit_code == 0
    _edit_scores(a / "yo" / "per_query.json", 60, 1.0)
    result = run("compare", str(a), str(b))
    assert result.exit_code == 1 and "per_query.json" in result.clean_stderr and "sha256" in result.clean_stderr
    again = run("eval", "--lang", "yo", "--model", "bm25", "--out", str(a), "--json")
    assert again.exit_code == 0, again.output
    row = json.loads(again.stdout)["results"][0]
    assert not row["reused"] and "per_query.json" in row["info"]["recomputed"]
    assert row["metrics"] == json.loads((b / "yo" / "metrics.json").read_text())["result"]["metrics"]
    identical = run("compare", str(a), str(b))  # recomputed: the same evaluation as b again, bit for bit
    assert identical.exit_code == 1 and "both sides hold the same evaluation" in identical.clean_stderr
    metrics_file = a / "yo" / "metrics.json"  # the aggregates edited by hand
    saved = json.loads(metrics_file.read_text())
    saved["result"]["metrics"]["nDCG@10"] = 0.9
    metrics_file.write_text(json.dumps(saved))
    again = run("eval", "--lang", "yo", "--model", "bm25", "--out", str(a), "--json")
    row = json.loads(again.stdout)["results"][0]
    assert not row["reused"] and row["metrics"]["nDCG@10"] != 0.9 and "metrics.json" in row["info"]["recomputed"]


def _reseal(lang_dir: Path) -> None:
    """Recompute a language folder's recorded hashes after its files were edited, as a forger would."""
    from clir_ot.eval.saved import record_files, record_sha256

    saved = json.loads((lang_dir / "metrics.json").read_text())
    saved.pop("record_sha256")
    saved["files"] = saved["files"] | record_files(lang_dir)
    (lang_dir / "metrics.json").write_text(json.dumps(saved | {"record_sha256": record_sha256(saved)}))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_per_query_score_is_refused_with_its_file(tmp_path: Path, value: float) -> None:
    from clir_ot.errors import ClirOtError
    from clir_ot.eval.saved import read_evaluation

    out = tmp_path / "a"
    assert run("eval", "--lang", "yo", "--model", "bm25", "--out", str(out)).exit_code == 0
    per_query = out / "yo" / "per_query.json"
    _edit_scores(per_query, 1, value)
    _reseal(out / "yo")  # even where the hashes were forged to match
    with pytest.raises(ClirOtError, match=r"per_query.json.*not a finite number"):
        read_evaluation(out)


def test_a_file_where_a_folder_belongs_and_a_special_file_are_one_line_and_left_alone(tmp_path: Path) -> None:
    import os
    import stat

    regular = tmp_path / "a-file"
    regular.write_text("keep me\n")
    for args in (("eval", "--lang", "yo", "--model", "bm25", "--out", str(regular)),
                 ("eval", "--lang", "yo", "--model", "bm25", "--out", str(regular / "below")),
                 ("distill", "--out", str(regular), "--set", "steps=1")):
        result = run(*args)
        assert result.exit_code == 1 and "is a file where a folder is needed" in result.clean_stderr, result.output
        assert "Traceback" not in result.output and regular.read_text() == "keep me\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run("data", "bitext", "--source", "udhr", "--langs", "de", "--limit", "2", "--out", str(fifo),
                 "--overwrite")
    assert result.exit_code == 1 and "is not a regular file" in result.clean_stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_another_configuration_of_the_same_system_is_never_replaced_silently(tmp_path: Path) -> None:
    """eval --pool 100 (or another backend, depth, precision) into a folder holding the full-corpus result of
    the same system replaced it without --overwrite: "another system" was decided by the name alone."""
    out = tmp_path / "o"
    assert run("eval", "--lang", "yo", "--model", "bm25", "--out", str(out)).exit_code == 0
    before = (out / "yo" / "metrics.json").read_text()
    for option, value, field in (("--pool", "100", "pool_distractors"), ("--depth", "100", "depth")):
        result = run("eval", "--lang", "yo", "--model", "bm25", option, value, "--out", str(out))
        assert result.exit_code == 1 and "another configuration" in result.clean_stderr, result.output
        assert field in result.clean_stderr and (out / "yo" / "metrics.json").read_text() == before
    replaced = run("eval", "--lang", "yo", "--model", "bm25", "--pool", "100", "--out", str(out), "--overwrite")
    assert replaced.exit_code == 0
    assert json.loads((out / "yo" / "metrics.json").read_text())["config"]["pool_distractors"] == 100
    pooled = json.loads((out / "yo" / "metrics.json").read_text())["result"]["metrics"]
    same = run("eval", "--lang", "yo", "--model", "bm25", "--pool", "100", "--out", str(out), "--batch-size", "7")
    assert same.exit_code == 0  # batching is not another configuration of the result
    assert json.loads((out / "yo" / "metrics.json").read_text())["result"]["metrics"] == pooled


def test_damaged_saved_results_and_misplaced_folders_are_one_line(tmp_path: Path, monkeypatch) -> None:
    """Tracebacks where one line is promised: compare with a missing or truncated per_query.json or a query
    lacking a measure, CLIR_OT_CACHE naming a file, reproduce --runs-dir / --reports-dir naming a file."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("eval", "--lang", "yo", "--model", "bm25", "--out", str(a)).exit_code == 0
    assert run("eval", "--lang", "yo", "--model", "bm25-strong", "--out", str(b)).exit_code == 0
    per_query = b / "yo" / "per_query.json"
    text = per_query.read_text()
    for damage, message in ((lambda: per_query.unlink(), "per_query.json is missing"),
                            (lambda: per_query.write_text(text[: len(text) // 2]), "per_query.json"),
                            (lambda: per_query.write_text(text.replace('"AP": ', '"MAP": ', 1)), "has no AP")):
        damage()
        _reseal(b / "yo")  # hashes forged to match: the damage itself is still one line
        result = run("compare", str(a), str(b))
        assert result.exit_code == 1 and message in result.clean_stderr and "Traceback" not in result.output
        per_query.write_text(text)
    cache_file = tmp_path / "cache-file"
    cache_file.write_text("")
    monkeypatch.setenv("CLIR_OT_CACHE", str(cache_file))
    result = run("cache")
    assert result.exit_code == 1 and "CLIR_OT_CACHE" in result.clean_stderr and "is a file" in result.clean_stderr
    monkeypatch.delenv("CLIR_OT_CACHE")
    for option in ("--runs-dir", "--reports-dir"):
        result = run("reproduce", "experiments/zero_shot_miracl.yaml", "--profile", "smoke", option, str(cache_file))
        assert result.exit_code == 1 and "is a file where a folder is needed" in result.clean_stderr
    assert cache_file.read_text() == ""


def test_settings_that_would_do_nothing_or_the_wrong_thing_are_refused(tmp_path: Path) -> None:
    from clir_ot.distill.trainer import DistillConfig
    from clir_ot.errors import ClirOtError

    with pytest.raises(ClirOtError, match="lang en is the teacher's side"):
        DistillConfig(lang="en", probe_langs=["yo"])
    with pytest.raises(ClirOtError, match=r"snapshot_steps \[10\] must lie below the 10 training steps"):
        DistillConfig(steps=10, snapshot_steps=[5, 10], probe_langs=["yo"])
    for command in ("bitext", "lexicon"):
        extra = ("--source", "udhr") if command == "bitext" else ()
        result = run("data", command, *extra, "--langs", " , ", "--out", str(tmp_path / command))
        assert result.exit_code == 1 and "names no language" in result.clean_stderr
        assert not (tmp_path / command).exists()


@pytest.mark.parametrize("score", ["inf", "-inf", "nan", "Infinity"])
def test_a_run_file_score_that_is_not_finite_is_refused_with_its_line(tmp_path: Path, score: str) -> None:
    """An inf score passed read_run (only NaN was refused) and min-max fusion turned it into NaN."""
    run_file = tmp_path / "run.trec"
    run_file.write_text(f"10020#0 Q0 598#0 1 0.5 x\n10020#0 Q0 598#1 2 {score} x\n")
    result = run("eval", "--lang", "yo", "--run", str(run_file), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and f"{run_file}:2: score {score!r} is not a finite number" in result.clean_stderr


def test_the_summary_says_how_deep_and_with_which_backend_it_searched(tmp_path: Path) -> None:
    """bible-clir's "R@100" equalled R@10 at --depth 10 and the depth was never shown; an approximate search's
    numbers did not say which backend made them."""
    shallow = run("eval", "--benchmark", "bible-clir", "--lang", "de", "--model", "bm25", "--depth", "10",
                  "--out", str(tmp_path / "s"))
    assert shallow.exit_code == 0 and "- search: exact, 10 documents per query" in shallow.clean_stdout
    assert "- search: exact, 10 documents per query" in (tmp_path / "s" / "results.md").read_text()


def test_messages_say_what_to_do(tmp_path: Path, tiny_xlmr_dir: Path, monkeypatch) -> None:
    """A run killed before its first checkpoint was told to --resume (then 'nothing to resume'); a --run
    evaluation was refused by compare as 'not written by this version'; a cache entry without its state advised
    --overwrite; a bad condition setting named no condition."""
    from clir_ot.distill.trainer import DistillConfig, train
    from clir_ot.errors import ClirOtError
    from clir_ot.experiment import load_experiment

    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "run_config.json").write_text("{}")  # what a kill -9 before the first checkpoint leaves
    cfg = DistillConfig(student=str(tiny_xlmr_dir), steps=2, batch_size=2, probe_langs=["yo"], check_lang=None)
    with pytest.raises(ClirOtError, match=r"pass --overwrite \(it holds no checkpoint to resume\)"):
        train(cfg, killed, evaluate=False)
    with pytest.raises(ClirOtError, match="stopped before its first checkpoint; start it again with --overwrite"):
        train(cfg, killed, resume=True, evaluate=False)
    run_file = tmp_path / "run.trec"
    run_file.write_text("10020#0 Q0 598#0 1 0.5 x\n")
    assert run("eval", "--lang", "yo", "--run", str(run_file), "--out", str(tmp_path / "r")).exit_code == 0
    assert run("eval", "--lang", "yo", "--model", "bm25", "--out", str(tmp_path / "b")).exit_code == 0
    result = run("compare", str(tmp_path / "r"), str(tmp_path / "b"))
    assert result.exit_code == 1 and "scored a run file made outside clir-ot" in result.clean_stderr
    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    args = ("eval", "--lang", "yo", "--model", str(tiny_xlmr_dir), "--pool", "20", "--precision", "fp32")
    assert run(*args, "--out", str(tmp_path / "e1")).exit_code == 0
    (state,) = (tmp_path / "cache" / "embeddings").glob("*/state.json")
    state.unlink()  # an entry left without its state: the cache's own folder, encoded again
    again = run(*args, "--out", str(tmp_path / "e2"), "--json")
    assert again.exit_code == 0, again.output
    assert not json.loads(again.stdout)["results"][0]["info"]["embeddings"]["hit"]
    spec = {"conditions": {"kd": {"method": "kd", "lr": "fast"}}, "eval_langs": ["yo"], "profiles": {"p": {}}}
    (tmp_path / "bad.yaml").write_text(json.dumps(spec))
    with pytest.raises(ClirOtError, match=r"condition 'kd' \(seed 0\): invalid configuration: lr must be"):
        load_experiment(tmp_path / "bad.yaml", "p")


def test_a_byte_order_mark_a_folder_and_an_empty_build_are_handled(tmp_path: Path, monkeypatch) -> None:
    from clir_ot.data import builders
    from clir_ot.data.bitext import read_bitext
    from clir_ot.errors import ClirOtError

    bom = tmp_path / "bom.tsv"
    bom.write_bytes("\ufeff".encode() + BITEXT.encode())  # a BOM before a correct header was a wrong header
    assert len(read_bitext(bom).pairs) == 3
    with pytest.raises(ClirOtError, match="is a folder; give a file"):
        read_bitext(tmp_path)
    monkeypatch.setitem(builders.BUILDERS, "udhr", lambda codes, **kwargs: [])  # a source without these languages
    result = run("data", "bitext", "--source", "udhr", "--langs", "de", "--out", str(tmp_path / "none.tsv"))
    assert result.exit_code == 1 and "udhr has no pairs for de" in result.clean_stderr
    assert not (tmp_path / "none.tsv").exists()


def test_a_bitext_line_of_megabytes_is_refused_at_once(tmp_path: Path) -> None:
    """data sample on a file of one 10 MB line took 242 s and printed 22 MB."""
    import time

    huge = tmp_path / "huge.tsv"
    huge.write_text("lang\tsource\tref\ten\tx\n" + "de\tt\t1\t" + "word " * 2_000_000 + "\tWort\n")
    started = time.monotonic()
    result = run("data", "sample", "--bitext", str(huge), "--n", "1")
    assert result.exit_code == 1 and "line 2: a line of 10,000,012 characters (at most 10,000)" in result.clean_stderr
    assert time.monotonic() - started < 30 and len(result.output) < 2000


def test_an_empty_language_list_is_not_all_languages(tmp_path: Path) -> None:
    result = run("eval", "--lang", " ", "--model", "bm25", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "names no language" in result.clean_stderr and not (tmp_path / "o").exists()
