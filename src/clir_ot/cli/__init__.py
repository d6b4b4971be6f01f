"""The ``clir-ot`` command line: one Typer sub-app per command group, joined here; wiring only.

    clir-ot data status              # what MIRACL data is usable here        (cli/data.py)
    clir-ot model info me5-small     # describe an encoder                    (cli/model.py)
    clir-ot evaluate --lang yo       # encode, search and score a benchmark   (cli/retrieval.py)
    clir-ot distill --method ot      # distil a student                       (cli/train.py)
    clir-ot reproduce                # an experiment end to end, and its report (cli/experiment.py)
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import data, experiment, model, retrieval, train
from .common import UserErrorsGroup, console

app = typer.Typer(name="clir-ot", help="OT vs standard distillation for zero-shot MIRACL retrieval.",
                  cls=UserErrorsGroup, pretty_exceptions_show_locals=False, no_args_is_help=True,
                  add_completion=False)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        console.print(f"clir-ot {metadata.version('clir-ot')}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """OT vs standard distillation for zero-shot MIRACL retrieval."""


app.add_typer(data.app, name="data")
app.add_typer(model.app, name="model")
app.add_typer(retrieval.app)     # encode, index, evaluate / eval, compare, benchmarks, cache
app.add_typer(model.gate_app)    # gate
app.add_typer(train.app)         # distill, explain
app.add_typer(experiment.app)    # reproduce, report, findings


def main() -> None:
    """Console-script entry point."""
    app()
