"""The command line: help on every command, clear errors on stderr, real output."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from clir_ot.artifacts import SPEED_FLAGS
from clir_ot.cli import app

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str):
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    result = runner.invoke(app, list(args))
    result.clean_stdout = ANSI.sub("", result.stdout)
    result.clean_stderr = ANSI.sub("", result.stderr)
    return result


def all_command_paths(group=None, prefix=()):
    import typer.main

    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from all_command_paths(cmd, prefix + (name,))


@pytest.mark.parametrize("path", [()] + sorted(all_command_paths()))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.clean_stdout


def test_data_status_shows_yo_usable_offline() -> None:
    result = run("data", "status")
    assert result.exit_code == 0, result.output
    yo = next(line for line in result.clean_stdout.splitlines() if "yo Yoruba" in line)
    assert "119" in yo and "1,188" in yo and "49,043" in yo and "yes" in yo
    sw = next(line for line in result.clean_stdout.splitlines() if "sw Swahili" in line)
    assert "482" in sw and "missing" in sw and "no" in sw
    assert sum(1 for line in result.clean_stdout.splitlines() if line.startswith("│ ")) >= 18


def test_data_prepare_then_status_reports_cache() -> None:
    result = run("data", "prepare", "--lang", "yo")
    assert result.exit_code == 0, result.output
    assert "copied" in result.clean_stdout and "docs-1.jsonl.gz" in result.clean_stdout
    status = run("data", "status", "--lang", "yo")
    assert "49,043 (cache)" in status.clean_stdout


def test_user_errors_exit_nonzero_without_traceback() -> None:
    result = run("data", "status", "--lang", "klingon")
    assert result.exit_code == 1
    assert "unknown language code 'klingon'" in result.clean_stderr
    assert "Traceback" not in result.output
    result = run("model", "info", "not-a-model")
    assert result.exit_code == 1 and "unknown model 'not-a-model'" in result.clean_stderr


def test_data_bitext_udhr_then_audit_refuses_it(tmp_path) -> None:
    out = tmp_path / "udhr_sw.tsv"
    built = run("data", "bitext", "--source", "udhr", "--langs", "sw", "--out", str(out))
    assert built.exit_code == 0, built.output
    assert "wrote 60 pairs" in built.clean_stdout and "held-out probe" in built.clean_stdout
    again = run("data", "bitext", "--source", "udhr", "--langs", "sw", "--out", str(out))
    assert again.exit_code == 1 and "--overwrite" in again.clean_stderr
    audit = run("data", "audit", str(out))
    assert audit.exit_code == 1
    assert f"{out}:2: sw" in audit.clean_stderr.replace("\n", "")


def test_data_sample_is_reproducible() -> None:
    first = run("data", "sample", "--n", "6", "--seed", "5", "--lang", "sw")
    second = run("data", "sample", "--n", "6", "--seed", "5", "--lang", "sw")
    other = run("data", "sample", "--n", "6", "--seed", "6", "--lang", "sw")
    assert first.exit_code == 0, first.output
    assert first.clean_stdout == second.clean_stdout != other.clean_stdout
    assert "codeswitch" in first.clean_stdout and "bitext" in first.clean_stdout


def test_eval_alias_bm25_prints_real_yo_scores(tmp_path) -> None:
    result = run("eval", "--benchmark", "miracl", "--lang", "yo,sw", "--model", "bm25", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "| yo | bm25 | 119 | 0.7325 | 0.3660 | 0.4066 | 0.3856 |" in result.clean_stdout
    assert "sw unavailable" in result.clean_stdout


def test_eval_without_a_system_evaluates_the_student_before_distillation_on_all_six(tmp_path, monkeypatch) -> None:
    import clir_ot.eval.evaluate as evaluate_module

    seen = []
    ok = [evaluate_module.LanguageResult("yo", "ok", metrics={m: 0.5 for m in ("R@100", "AP", "nDCG@10", "RR@10")})]
    monkeypatch.setattr(evaluate_module, "evaluate", lambda cfg, out, *hooks, **kw: seen.append(cfg) or ok)
    result = run("eval", "--benchmark", "miracl", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert seen[0].model == "me5-small" and seen[0].langs == ["sw", "yo", "te", "bn", "hi", "th"]
    assert "evaluating me5-small" in result.clean_stderr


def test_evaluate_a_mangled_run_file_names_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.trec"
    bad.write_text("10020#0 Q0 598#0 1 0.5 x\n10020#0 Q0 598#1 2 0.4\n")
    result = run("evaluate", "--lang", "yo", "--run", str(bad), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and f"{bad}:2: expected 6 fields" in result.clean_stderr.replace("\n", "")


def test_encode_then_index_writes_a_run(tiny_bert_dir, tmp_path) -> None:
    emb = tmp_path / "emb"
    result = run("encode", "--model", str(tiny_bert_dir), "--lang", "yo", "--out", str(emb), "--pool", "100")
    assert result.exit_code == 0, result.output
    assert "encoded 1,042 of 1,042 passages and 119 queries" in result.clean_stdout  # 942 judged + 100
    again = run("encode", "--model", str(tiny_bert_dir), "--lang", "yo", "--out", str(emb), "--pool", "100")
    assert again.exit_code == 0 and "already complete" in again.clean_stdout  # finished: nothing re-encoded
    assert "nothing encoded" in again.clean_stdout and "passages/s" not in again.clean_stdout
    other = run("encode", "--model", str(tiny_bert_dir), "--lang", "yo", "--out", str(emb), "--pool", "50")
    assert other.exit_code == 1 and "another configuration" in other.clean_stderr
    out = tmp_path / "run.trec"
    indexed = run("index", "--embeddings", str(emb), "--out", str(out), "--depth", "10")
    assert indexed.exit_code == 0, indexed.output
    assert len(out.read_text().splitlines()) == 1190
    scored = run("evaluate", "--lang", "yo", "--run", str(out), "--out", str(tmp_path / "ev"))
    assert scored.exit_code == 0 and "| yo | run.trec | 119 |" in scored.clean_stdout
    record = json.loads((tmp_path / "run.trec.json").read_text())  # the run file's record: sha256, what it searched
    assert record["searched"]["depth"] == 10 and len(record["sha256"]) == 64
    edited = tmp_path / "edited.trec"
    text = out.read_text()
    edited.write_text(text.replace(text.split()[4], "0.999999", 1))  # one score changed by hand
    (tmp_path / "edited.trec.json").write_text(json.dumps(record))
    changed = run("evaluate", "--lang", "yo", "--run", str(edited), "--out", str(tmp_path / "ev2"))
    assert changed.exit_code == 1 and "does not match the sha256 recorded when clir-ot index wrote it" in (
        changed.clean_stderr)
    # every stage's manifest names the machine: CPU model, its speed-deciding flags as /proc/cpuinfo has them
    flags = next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags"))
    for folder in (emb, tmp_path / "ev"):
        machine = json.loads((folder / "manifest.json").read_text())["hardware"]
        assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["gpu"] is None
        assert machine["cpu_flags"] == sorted(set(flags) & SPEED_FLAGS)
    # a cut shard: index refuses it with one line (it searched misaligned ids before)
    shard = emb / "corpus" / "shard-00000.npy"
    shard.write_bytes(shard.read_bytes()[:5000])
    cut = run("index", "--embeddings", str(emb), "--out", str(tmp_path / "cut.trec"), "--overwrite")
    assert cut.exit_code == 1 and "shard-00000.npy" in cut.clean_stderr and "Traceback" not in cut.output
    assert not (tmp_path / "cut.trec").exists()


def test_distill_refuses_training_file_in_an_evaluation_language(tmp_path, tiny_xlmr_dir) -> None:
    bad = tmp_path / "train.tsv"
    bad.write_text("lang\tsource\tref\ten\tx\nde\tt\t1\tThe house is red.\tDas Haus ist rot.\n"
                   "te\tt\t2\tThe house is red.\tఇల్లు ఎరుపు రంగులో ఉంది.\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("distill", "--lang", "sw", "--student", str(tiny_xlmr_dir), "--bitext", str(bad), "--out", str(out))
    assert result.exit_code == 1
    assert f"{bad}:3: te" in result.clean_stderr.replace("\n", "")
    assert not out.exists()


def test_distill_unknown_override_is_a_clear_error(tmp_path) -> None:
    result = run("distill", "--set", "learning_rate=1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "unknown configuration field 'learning_rate'" in result.clean_stderr


def test_eval_writes_long_per_query_scores_and_json(tmp_path) -> None:
    import json

    import ir_measures

    result = run("eval", "--lang", "yo", "--model", "bm25", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    [yo] = payload["results"]
    assert payload["system"] == "bm25" and yo["status"] == "ok"
    assert yo["metrics"]["R@100"] == pytest.approx(0.7325, abs=5e-5)
    rows = [line.split("\t") for line in (tmp_path / "yo" / "per_query.tsv").read_text().splitlines()]
    assert len(rows) == 119 * 4 + 4 and ["all", "R@100", f"{yo['metrics']['R@100']:.6f}"] in rows
    ours = {(q, m): float(v) for q, m, v in rows if q != "all"}
    from clir_ot.data import miracl

    qrels = [ir_measures.Qrel(q.query_id, q.doc_id, q.relevance) for q in miracl.load_qrels("yo")]
    run_rows = list(ir_measures.read_trec_run(str(tmp_path / "yo" / "run.trec")))
    for m in ir_measures.iter_calc([ir_measures.R @ 100, ir_measures.nDCG @ 10, ir_measures.AP], qrels, run_rows):
        assert ours[(m.query_id, str(m.measure))] == pytest.approx(m.value, abs=1e-6)


def test_version() -> None:
    from importlib import metadata

    result = run("--version")
    assert result.exit_code == 0 and result.clean_stdout.strip() == f"clir-ot {metadata.version('clir-ot')}"


def test_reproduce_takes_any_profile_the_file_declares_and_names_them_for_an_unknown_one(tmp_path) -> None:
    spec = tmp_path / "exp.yaml"
    spec.write_text("student: me5-small\nprofiles:\n  quick: {seeds: [0]}\n  cpu-ot: {seeds: [0, 1]}\n")
    result = run("reproduce", str(spec), "--profile", "nope", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{spec} has no profile 'nope'; profiles: quick, cpu-ot" in result.clean_stderr.replace("\n", "")
    assert not (tmp_path / "runs").exists()
    from clir_ot.experiment import load_experiment

    assert load_experiment(spec, "cpu-ot").seeds == [0, 1]  # a declared profile beyond smoke/cpu/gpu loads


def test_docs_cli_is_generated_from_the_current_help(tmp_path) -> None:
    """docs/cli.md is Typer's rendering of every command's --help (`make docs`); a changed option or
    docstring without regenerating it fails here."""
    import subprocess
    import sys
    from pathlib import Path

    typer_bin = Path(sys.executable).with_name("typer")
    subprocess.run([str(typer_bin), "clir_ot.cli", "utils", "docs", "--name", "clir-ot", "--output",
                    str(tmp_path / "cli.md")], check=True, capture_output=True)
    current = (tmp_path / "cli.md").read_text(encoding="utf-8")
    assert "## `clir-ot reproduce`" in current and "## `clir-ot findings`" in current
    assert Path("docs/cli.md").read_text(encoding="utf-8") == current, "docs/cli.md is stale: run `make docs`"


def test_every_registry_describes_itself_and_docs_registries_is_current() -> None:
    """Methods, objective terms, benchmarks, precisions, transforms and variants each carry a one-line description
    for every entry; docs/registries.md is generated from them (`make docs`)."""
    from pathlib import Path

    from clir_ot.cli.choices import registry_tables
    from clir_ot.distill.methods import METHOD_DESCRIPTIONS, METHODS, TERM_DESCRIPTIONS
    from clir_ot.distill.objective import TERMS
    from clir_ot.models.precision import PRECISION_DESCRIPTIONS, PRECISIONS

    assert set(METHOD_DESCRIPTIONS) == set(METHODS) and set(TERM_DESCRIPTIONS) == set(TERMS)
    assert tuple(PRECISION_DESCRIPTIONS) == PRECISIONS
    tables = registry_tables()
    for name in (*METHODS, *TERMS, "miracl", "bible-clir", "centre-corpus", "passages"):
        assert f"| `{name}` |" in tables, name
    assert Path("docs/registries.md").read_text(encoding="utf-8") == tables, "docs/registries.md is stale: make docs"
