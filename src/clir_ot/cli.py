"""The ``clir-ot`` command line: wires the core package together, nothing more.

    clir-ot data status              # what MIRACL data is usable here
    clir-ot data prepare --lang yo   # fill the ir_datasets cache from the embedded mirror
    clir-ot model info me5-small     # load (convert once) an encoder and describe it
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .errors import ClirOtError
from .languages import EVAL_LANGUAGES, LANGUAGE_NAMES, MIRACL_LANGUAGES, parse_language_list

console = Console()
err_console = Console(stderr=True)


class _UserErrorsGroup(TyperGroup):
    """Root command group: a :class:`ClirOtError` becomes one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClirOtError as exc:
            err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None


app = typer.Typer(name="clir-ot", help="OT vs standard distillation for zero-shot MIRACL retrieval.",
                  cls=_UserErrorsGroup, pretty_exceptions_show_locals=False, no_args_is_help=True,
                  add_completion=False)
data_app = typer.Typer(help="MIRACL data, bitext and lexicons: prepare, inspect, audit.", no_args_is_help=True)
model_app = typer.Typer(help="Encoders: offline models, local directories, Hugging Face ids.",
                        no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")

LangsOpt = Annotated[str | None, typer.Option("--lang", "--langs", help="Comma-separated language codes.")]


@data_app.command("status")
def data_status(
    langs: Annotated[str | None, typer.Option("--lang", "--langs", help="Languages (default: all 18).")] = None,
    split: Annotated[str, typer.Option(help="MIRACL split.")] = "dev",
    mirror: Annotated[Path | None, typer.Option("--from", help="Also look in this mirror folder.")] = None,
) -> None:
    """Show which MIRACL topics, qrels and corpora are usable here, with counts."""
    from .data import miracl

    table = Table(title=f"MIRACL v1.0 {split} (ir_datasets cache: {miracl.ir_datasets_home()})")
    for col in ("lang", "topics", "qrels", "corpus", "usable"):
        table.add_column(col)
    for st in miracl.status(parse_language_list(langs, MIRACL_LANGUAGES), split, mirror):
        cells = []
        for kind in miracl.KINDS:
            n, src = st.counts[kind], st.sources[kind]
            cells.append(f"[red]{src}[/red]" if n is None else f"{n:,} ({src})")
        usable = all(v is not None for v in st.counts.values())
        name = f"{st.lang} {LANGUAGE_NAMES.get(st.lang, '')}" + (" *" if st.lang in EVAL_LANGUAGES else "")
        table.add_row(name, *cells, "[green]yes[/green]" if usable else "[yellow]no[/yellow]")
    console.print(table)
    console.print("* evaluation language. 'embedded' = shipped with clir-ot, copied into the cache on first "
                  "use or by `clir-ot data prepare`; 'missing' corpora download through ir_datasets where "
                  "the network allows.")


@data_app.command("prepare")
def data_prepare(
    langs: LangsOpt = None,
    split: Annotated[str, typer.Option(help="MIRACL split.")] = "dev",
    mirror: Annotated[Path | None, typer.Option("--from", help="Mirror folder (default: embedded data).")] = None,
) -> None:
    """Fill the ir_datasets cache from a local mirror so `ir_datasets.load("miracl/..")` runs offline."""
    from .data import miracl

    report = miracl.prepare(parse_language_list(langs, EVAL_LANGUAGES), split, mirror)
    for label in report.copied:
        console.print(f"copied   {label}")
    for label in report.present:
        console.print(f"present  {label}")
    for label in report.missing:
        console.print(f"[yellow]missing[/yellow]  {label} (not in the mirror)")
    console.print(f"cache: {miracl.ir_datasets_home()}")


@model_app.command("info")
def model_info(name: Annotated[str, typer.Argument(help="minilm, me5-small, a directory or an HF id.")]) -> None:
    """Load an encoder (converting it once if needed) and describe it."""
    from .models import load_encoder

    enc = load_encoder(name)
    n_params = sum(p.numel() for p in enc.model.parameters())
    console.print(f"{name}: {enc.spec.label or type(enc.model).__name__}, {n_params / 1e6:.1f} M parameters, "
                  f"dim {enc.dim}, pooling {enc.spec.pooling}, prefixes {enc.spec.query_prefix!r} / "
                  f"{enc.spec.passage_prefix!r}, source {enc.model.name_or_path}")


def main() -> None:
    """Console-script entry point."""
    app()
