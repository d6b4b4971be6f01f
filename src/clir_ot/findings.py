"""Check a FINDINGS file against the reports it cites: every number in its tables must be the report's number
in the report's cell.

A FINDINGS file (``reports/<experiment>/FINDINGS.md``) states each claim with a short table and a link to
the report it comes from. A table's source is the last Markdown link before it whose target is a
``results.md`` (resolved relative to the FINDINGS file, and refused when it leads out of the repository).
HTML comments are ignored (a link or table inside one counts for nothing). A table starts at a header row
followed by a separator row, with or without leading pipes, and ends at the first line without a pipe.

Every decimal number of a table's cells (``0.4939``, ``+0.0336``, ``−0.1246``, and also what would slip past a
looser reading: ``.9999``, ``0,9999``, ``Δ0.9999``) is looked for in the report, as written there: the same
digits, not followed by another digit, with the same sign (``−`` and ``-`` are the same sign; an unsigned
number never matches a signed one). Where it is looked for is as narrow as the labels allow:

1. the report's cell in the same row and column, where a report table has a row labelled as the FINDINGS row
   (its first cell) and a column labelled as the FINDINGS column;
2. else any report cell of a column with that label (so two swapped cells, or a p-value put where an nDCG@10
   belongs, fail);
3. else anywhere in the report's text, for columns the report does not name.

Integers (seed counts, layer indices) are not checked.

    clir-ot findings reports/zero_shot_miracl/FINDINGS.md      # exit 1 with one line per number not found
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClirOtError

_LINK = re.compile(r"\]\(([^)\s]*results\.md)\)")
#: decimal numbers, in every spelling a reader would take for one: signed or not, with a decimal point or
#: comma, with or without a leading digit, glued to a letter (``Δ0.12``) or not
_NUMBER = re.compile(r"(?<![\d.,])[+\-−]?(?:\d+[.,]\d+|[.,]\d+)(?![\d])")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass
class FindingsCheck:
    """What a check found: numbers checked, tables read, and one line per number missing from its report."""

    checked: int = 0
    tables: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    """A report's text, and its table cells by column label and by (row label, column label)."""

    text: str
    by_column: dict[str, list[str]] = field(default_factory=dict)
    by_cell: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def _label(text: str) -> str:
    return " ".join(text.replace("*", "").replace("`", "").split()).lower()


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [c.strip() for c in inner.split("|")]


def _tables(lines: list[str]) -> list[tuple[int, list[str], list[tuple[int, list[str]]]]]:
    """``(line number of the header, header cells, [(line number, cells), ...])`` of every table in ``lines``."""
    tables, i = [], 0
    while i < len(lines) - 1:
        if "|" in lines[i] and _SEPARATOR.match(lines[i + 1]) and "|" in lines[i + 1] + lines[i]:
            header, rows, j = _cells(lines[i]), [], i + 2
            while j < len(lines) and "|" in lines[j]:
                rows.append((j + 1, _cells(lines[j])))
                j += 1
            tables.append((i + 1, header, rows))
            i = j
        else:
            i += 1
    return tables


def read_report(path: Path) -> Report:
    text = _COMMENT.sub("", path.read_text(encoding="utf-8"))
    report = Report(text)
    for _, header, rows in _tables(text.splitlines()):
        labels = [_label(h) for h in header]
        for _, cells in rows:
            row = _label(cells[0]) if cells else ""
            for column, cell in zip(labels[1:], cells[1:], strict=False):
                report.by_column.setdefault(column, []).append(cell)
                report.by_cell.setdefault((row, column), []).append(cell)
    return report


def _occurs(number: str, text: str) -> bool:
    signed = number[0] in "+-−"
    digits = number.lstrip("+-−")
    sign = {"+": r"(?<![\d.,])\+", "-": r"(?<![\d.,])[-−]", "−": r"(?<![\d.,])[-−]"}[number[0]] if signed \
        else r"(?<![\d.,+\-−])"
    return re.search(sign + re.escape(digits) + r"(?![\d])", text) is not None


def _where(report: Report, row: str, column: str) -> tuple[list[str], str]:
    """The texts a number of the FINDINGS cell (``row``, ``column``) must be in, and how they were chosen."""
    if (row, column) in report.by_cell:
        return report.by_cell[(row, column)], f"row {row!r}, column {column!r} of"
    if column in report.by_column:
        return report.by_column[column], f"column {column!r} of"
    return [report.text], ""


def _repository(path: Path) -> Path:
    """The repository the FINDINGS file belongs to: the nearest folder above it with a ``.git``, else its own."""
    for folder in path.resolve().parents:
        if (folder / ".git").exists():
            return folder
    return path.resolve().parent


def check_findings(path: Path) -> FindingsCheck:
    """Check every table of the FINDINGS file ``path`` against the report linked before it."""
    path = Path(path)
    if not path.is_file():
        raise ClirOtError(f"no FINDINGS file at {path}")
    repository = _repository(path)
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text(encoding="utf-8"))
    lines = text.splitlines()
    result = FindingsCheck()
    reports: dict[Path, Report | None] = {}
    tables = _tables(lines)
    starts = {start: (header, rows) for start, header, rows in tables}
    source: Path | None = None
    for number, line in enumerate(lines, 1):
        if number not in starts:
            if "|" not in line:
                for target in _LINK.findall(line):
                    source = (path.parent / target).resolve()
            continue
        result.tables += 1
        header, rows = starts[number]
        _check_table(path, source, [_label(h) for h in header], [(number, header), *rows], reports, repository,
                     result)
    return result


def _check_table(path: Path, source: Path | None, columns: list[str], rows: list[tuple[int, list[str]]],
                 reports: dict[Path, Report | None], repository: Path, result: FindingsCheck) -> None:
    for number, cells in rows:
        values = [(i, v) for i, cell in enumerate(cells) for v in _NUMBER.findall(cell)]
        if not values:
            continue
        if source is None:
            result.problems.append(f"{path.name}:{number}: a table with numbers but no linked results.md before it")
            continue
        if source not in reports:
            if repository not in source.parents:
                result.problems.append(f"{path.name}:{number}: linked report {source} is outside the repository")
                reports[source] = None
            elif not source.is_file():
                result.problems.append(f"{path.name}:{number}: linked report {source} does not exist")
                reports[source] = None
            else:
                reports[source] = read_report(source)
        report = reports[source]
        if report is None:
            continue
        row = _label(cells[0])
        in_body = number != rows[0][0]  # the header's own numbers are looked for anywhere
        for i, value in values:
            result.checked += 1
            texts, where = _where(report, row, columns[i]) if in_body and 0 < i < len(columns) else ([report.text], "")
            if not any(_occurs(value, t) for t in texts):
                result.problems.append(f"{path.name}:{number}: {value} is not in {where + ' ' if where else ''}"
                                       f"{source}")
