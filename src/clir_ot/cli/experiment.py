"""Experiment commands: ``reproduce`` (an experiment file's profile end to end), ``report`` (from saved
artifacts) and ``findings`` (a FINDINGS file's numbers checked against its reports).

    clir-ot reproduce experiments/zero_shot_miracl.yaml --profile smoke
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import ClirOtError
from .common import console

app = typer.Typer()


@app.command("reproduce")
def reproduce_cmd(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML, e.g. experiments/zero_shot_miracl.yaml.")] =
    Path("experiments/zero_shot_miracl.yaml"),
    profile: Annotated[str, typer.Option(help="A profile of the experiment file: smoke (minutes), cpu (≤ 2 h on 2 "
                                          "cores), gpu, or any other it declares.")] = "cpu",
    runs_dir: Annotated[Path, typer.Option(help="Where stage artifacts go.")] = Path("runs"),
    reports_dir: Annotated[Path, typer.Option(help="Where the report goes.")] = Path("reports"),
) -> None:
    """Run the whole experiment (skipping finished stages, resuming interrupted ones) and write the report."""
    from ..reproduce import reproduce

    def log(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {escape(message)}", highlight=False)

    report = reproduce(experiment, profile, runs_dir, reports_dir, log)
    console.print(f"[green]done[/green]: {escape(str(report / 'results.md'))}")


@app.command("report")
def report_cmd(
    runs: Annotated[Path, typer.Argument(help="A runs folder written by `clir-ot reproduce` (runs/<exp>/<profile>).")],
    out: Annotated[Path | None, typer.Option(help="Report folder (default: reports/<exp>/<profile>).")] = None,
) -> None:
    """Write results.md/.csv/.json and plots from the saved artifacts of an experiment."""
    from ..config import build, read_yaml
    from ..eval.report import write_report
    from ..reproduce import Experiment

    if not (runs / "experiment.yaml").is_file():
        raise ClirOtError(f"{runs} has no experiment.yaml: not a folder written by `clir-ot reproduce`")
    exp = build(Experiment, read_yaml(runs / "experiment.yaml"))
    out = out or Path("reports") / exp.name / exp.profile
    write_report(runs, out, exp)
    console.print(f"report: {out / 'results.md'}", markup=False)


@app.command("findings")
def findings_cmd(
    path: Annotated[Path, typer.Argument(help="A FINDINGS.md (reports/<experiment>/FINDINGS.md).")],
) -> None:
    """Check that every number in a FINDINGS file's tables is in the report each table links."""
    from ..findings import check_findings

    result = check_findings(path)
    if result.problems:
        raise ClirOtError(f"{len(result.problems)} number(s) of {path} not in their reports: "
                          + "; ".join(result.problems))
    console.print(f"{path}: {result.checked} numbers in {result.tables} tables, each found in its report",
                  markup=False, soft_wrap=True)
