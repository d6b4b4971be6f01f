"""What every command group shares: the consoles, the one-line error, the root group that turns a
:class:`~clir_ot.errors.ClirOtError` into exit 1, the ``--overwrite`` refusal, ``--langs`` parsing and the
progress bar."""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from ..errors import ClirOtError

console = Console()
err_console = Console(stderr=True)


#: Errors of reading a malformed input (binary or UTF-16 text, a cut gzip, broken JSON) that a reader did not
#: turn into a :class:`ClirOtError` itself: still one line and exit 1, never a traceback.
_INPUT_ERRORS = (UnicodeError, EOFError, zlib.error, json.JSONDecodeError, gzip.BadGzipFile)


#: The usage-error classes of whichever click Typer uses (its own copy in recent versions, click before).
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_NO_ARGS_IS_HELP = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())


def print_error(message: str) -> None:
    """``error: message`` on stderr, the message printed literally (text such as ``[/x]`` is not markup)."""
    err_console.print(Text("error: ", style="bold red") + Text(message), highlight=False, soft_wrap=True)


class UserErrorsGroup(TyperGroup):
    """Root command group: a :class:`ClirOtError`, a bad option value, an unreadable input or a file-system refusal
    (a read-only folder, a full disk) becomes one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClirOtError as exc:
            print_error(str(exc))
            raise typer.Exit(code=1) from None
        except _NO_ARGS_IS_HELP:
            raise
        except _USAGE_ERROR as exc:  # a bad option value (--depth 0, --precision fp8): one line too
            where = exc.ctx.command_path if exc.ctx is not None else "clir-ot"
            print_error(f"{exc.format_message()} (see '{where} --help')")
            raise typer.Exit(code=1) from None
        except _INPUT_ERRORS as exc:
            print_error(f"could not read an input file: {type(exc).__name__}: {exc}")
            raise typer.Exit(code=1) from None
        except OSError as exc:  # the file system said no (read-only folder, full disk, no such place): one line
            if exc.filename is None:
                raise
            print_error(f"{exc.filename}: {exc.strerror or exc}; choose a writable place with free space")
            raise typer.Exit(code=1) from None


LangsOpt = Annotated[str | None, typer.Option("--lang", "--langs", help="Comma-separated language codes.")]


def refuse_existing(out: Path, overwrite: bool) -> None:
    """One line, before any work, when the output file ``out`` exists and ``--overwrite`` was not given."""
    if out.exists() and not overwrite:
        raise ClirOtError(f"{out} already exists; pass --overwrite to replace it")


def language_codes(langs: str, example: str) -> list[str]:
    """The comma-separated codes of ``--langs``; one line when it names none."""
    codes = [c.strip() for c in langs.split(",") if c.strip()]
    if not codes:
        raise ClirOtError(f"--langs names no language; give one or more, e.g. --langs {example}")
    return codes


def progress_bar():
    """A rich progress bar with items/s and the estimated time left (on stderr)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.1f}/s" if task.speed else "", style="cyan")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err_console)
