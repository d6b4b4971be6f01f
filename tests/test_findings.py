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


def _repository_copy(tmp_path: Path) -> Path:
    """The committed FINDINGS.md and every report it links, copied into a folder that is a repository."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    for source in [Path("reports/zero_shot_miracl/FINDINGS.md"), *Path("reports").rglob("results.md")]:
        target = root / source
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return root / "reports/zero_shot_miracl/FINDINGS.md"


def test_the_committed_findings_match_their_reports(tmp_path: Path) -> None:
    path = Path("reports/zero_shot_miracl/FINDINGS.md")
    result = check_findings(path)
    assert result.problems == [] and result.tables >= 4 and result.checked >= 60
    runner = CliRunner()
    ok = runner.invoke(app, ["findings", str(path)])
    assert ok.exit_code == 0 and "each found in its report" in ok.output
    planted = _repository_copy(tmp_path)
    text = planted.read_text(encoding="utf-8")
    planted.write_text(text.replace("0.4939", "0.4993", 1), encoding="utf-8")
    bad = runner.invoke(app, ["findings", str(planted)])
    assert bad.exit_code == 1 and "0.4993 is not in" in bad.output


PLANTS = [  # (what the first table's row of `before` or the first hypothesis row becomes, what says so)
    ("| before | 0.4974 | 0.7941 |", "| before | 0.7941 | 0.4974 |", "0.7941 is not in row 'before', column 'ndcg@10'"),
    ("| ot-mid > kd-mid, nDCG@10 | -0.1261 |", "| ot-mid > kd-mid, nDCG@10 | 0.1261 |", "0.1261 is not in column"),
    ("| before | 0.4974 | 0.7941 |", "| before | 0.0008 | 0.7941 |", "0.0008 is not in row 'before'"),
    ("| before | 0.4974 | 0.7941 |", "| before | .9999 | 0.7941 |", ".9999 is not in"),
    ("| before | 0.4974 | 0.7941 |", "| before | 0,9999 | 0.7941 |", "0,9999 is not in"),
    ("| before | 0.4974 | 0.7941 |", "| before | Δ0.9999 | 0.7941 |", "0.9999 is not in"),
    ("| before | 0.4974 | 0.7941 |", "before | 0.9999 | 0.7941 |", "0.9999 is not in"),  # no leading pipe
]


@pytest.mark.parametrize(("old", "new", "message"), PLANTS)
def test_a_planted_number_is_caught_in_its_cell(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _repository_copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    problems = check_findings(path).problems
    assert len(problems) >= 1 and any(message in p for p in problems), problems


def test_links_in_comments_count_for_nothing_and_links_must_stay_in_the_repository(tmp_path: Path) -> None:
    path = _repository_copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "results.md").write_text("| a | b |\n|---|---|\n| x | 0.9999 |\n")
    table = "\n| claim | value |\n|---|---|\n| x | 0.9999 |\n"
    outside = text + "\nFrom [there](../../../elsewhere/results.md):\n" + table
    path.write_text(outside, encoding="utf-8")
    assert any("outside the repository" in p for p in check_findings(path).problems)
    hidden = text + "\n<!-- From [there](../../../elsewhere/results.md): -->\n" + table
    path.write_text(hidden, encoding="utf-8")
    assert any("0.9999 is not in" in p and "gpu/results.md" in p for p in check_findings(path).problems)
