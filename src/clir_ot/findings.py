"""Check a FINDINGS file against the reports it cites: every number in its tables must be in the report.

A FINDINGS file (``reports/<experiment>/FINDINGS.md``) states each claim with a short table and a link to
the report it comes from. A table's source is the last Markdown link before it whose target is a
``results.md`` (resolved relative to the FINDINGS file). Every decimal number in the table (``0.4939``,
``+0.0336``, ``−0.1246``) must occur in that report's text as a whole number: not followed by another
digit, and, where it carries a sign, with that sign (``−`` and ``-`` are the same sign). Integers (seed
counts, layer indices) are not checked.

    clir-ot findings reports/zero_shot_miracl/FINDINGS.md      # exit 1 with one line per number not found
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClirOtError

_LINK = re.compile(r"\]\(([^)\s]*results\.md)\)")
_NUMBER = re.compile(r"(?<![\w.])[+\-−]?\d+\.\d+(?![\d])")


@dataclass
class FindingsCheck:
    """What a check found: numbers checked, tables read, and one line per number missing from its report."""

    checked: int = 0
    tables: int = 0
    problems: list[str] = field(default_factory=list)


def _occurs(number: str, text: str) -> bool:
    signed = number[0] in "+-−"
    digits = number.lstrip("+-−")
    sign = {"+": r"\+", "-": "[-−]", "−": "[-−]"}[number[0]] if signed else r"(?<![\d.])"
    return re.search(sign + re.escape(digits) + r"(?!\d)", text) is not None


def check_findings(path: Path) -> FindingsCheck:
    """Check every table of the FINDINGS file ``path`` against the report linked before it."""
    path = Path(path)
    if not path.is_file():
        raise ClirOtError(f"no FINDINGS file at {path}")
    result = FindingsCheck()
    source: Path | None = None
    reports: dict[Path, str] = {}
    in_table = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.lstrip().startswith("|"):
            in_table = False
            for target in _LINK.findall(line):
                source = (path.parent / target).resolve()
            continue
        if not in_table:
            in_table = True
            result.tables += 1
        if re.fullmatch(r"\s*\|[\s|:-]*\|\s*", line):  # the separator row
            continue
        values = _NUMBER.findall(line)
        if values and source is None:
            result.problems.append(f"{path.name}:{number}: a table with numbers but no linked results.md before it")
            continue
        if source is not None and source not in reports:
            if not source.is_file():
                result.problems.append(f"{path.name}:{number}: linked report {source} does not exist")
                reports[source] = ""
            else:
                reports[source] = source.read_text(encoding="utf-8")
        for value in values:
            result.checked += 1
            if not _occurs(value, reports[source]):
                result.problems.append(f"{path.name}:{number}: {value} is not in {source}")
    return result
