"""The command line: help on every command, clear errors on stderr, real output."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from clir_ot.cli import app

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
    first = run("data", "sample", "--n", "6", "--seed", "5")
    second = run("data", "sample", "--n", "6", "--seed", "5")
    other = run("data", "sample", "--n", "6", "--seed", "6")
    assert first.exit_code == 0, first.output
    assert first.clean_stdout == second.clean_stdout != other.clean_stdout
    assert "codeswitch" in first.clean_stdout and "bitext" in first.clean_stdout
