"""FINDINGS tables against the reports they link: a planted wrong number fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clir_ot.cli import app
from clir_ot.findings import check_findings

pytestmark = pytest.mark.unit

REPORT = """| comparison | Δ | 95% CI |
|---|---|---|
| ot vs kd | -0.0854 | [-0.1224, -0.0508] |
| kd | 0.4566 ± 0.0033 [0.4484, 0.4648] |
"""


def write(tmp_path: Path, table: str) -> Path:
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "results.md").write_text(REPORT)
    findings = tmp_path / "FINDINGS.md"
    findings.write_text(f"# Findings\n\nFrom [the run](run/results.md):\n\n{table}\nWhat it cannot say: 0.9999.\n")
    return findings


def test_numbers_found_in_the_linked_report_pass_and_a_planted_one_fails(tmp_path: Path) -> None:
    good = "| claim | Δ | CI | kd |\n|---|---|---|---|\n| OT − KD, 3 seeds | −0.0854 | [−0.1224, −0.0508] | 0.4566 |\n"
    result = check_findings(write(tmp_path, good))
    assert (result.checked, result.tables, result.problems) == (4, 1, [])  # prose numbers are not checked
    for planted in ("−0.0855", "+0.0854", "0.456", "0.45661"):  # a wrong digit, sign, rounding or length
        result = check_findings(write(tmp_path, good.replace("−0.0854", planted)))
        assert len(result.problems) == 1 and planted in result.problems[0] and "FINDINGS.md:7" in result.problems[0]
    result = check_findings(write(tmp_path, good.replace("0.4566", "0.45")))
    assert result.problems == [f"FINDINGS.md:7: 0.45 is not in {(tmp_path / 'run' / 'results.md').resolve()}"]
    orphan = tmp_path / "orphan.md"
    orphan.write_text("| a | 0.1234 |\n|---|---|\n")
    assert "no linked results.md" in check_findings(orphan).problems[0]


def test_the_committed_findings_match_their_reports(tmp_path: Path) -> None:
    path = Path("reports/zero_shot_miracl/FINDINGS.md")
    result = check_findings(path)
    assert result.problems == [] and result.tables >= 4 and result.checked >= 60
    runner = CliRunner()
    ok = runner.invoke(app, ["findings", str(path)])
    assert ok.exit_code == 0 and "each found in its report" in ok.output
    planted = tmp_path / "FINDINGS.md"
    text = path.read_text(encoding="utf-8").replace("](", "](" + str(path.parent.resolve()) + "/")
    planted.write_text(text.replace("0.4939", "0.4993", 1), encoding="utf-8")
    bad = runner.invoke(app, ["findings", str(planted)])
    assert bad.exit_code == 1 and "0.4993 is not in" in bad.output
