"""The choices of the commands' options, each derived from the registry it offers, never copied: a new
method, precision, search backend, fusion, benchmark, bitext source or code-switching mode appears here by
itself."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ..data.benchmarks import BENCHMARKS
from ..data.builders import BUILDERS
from ..data.codeswitch import CODE_SWITCH_MODES
from ..distill.methods import METHOD_DESCRIPTIONS, METHODS
from ..models.precision import PRECISION_DESCRIPTIONS, PRECISIONS
from ..retrieval import BACKENDS
from ..retrieval.fusion import FUSIONS
from ..retrieval.transforms import TRANSFORMS


def _choices(name: str, names) -> type[Enum]:
    """A ``str`` Enum (what Typer shows as a choice) whose members are ``names``, in their order."""
    return Enum(name, {n: n for n in names}, type=str)


BenchmarkChoice = _choices("BenchmarkChoice", BENCHMARKS)
BitextSource = _choices("BitextSource", BUILDERS)
CodeSwitchMode = _choices("CodeSwitchMode", CODE_SWITCH_MODES)
Method = _choices("Method", METHODS)
PrecisionChoice = _choices("PrecisionChoice", PRECISIONS)
Backend = _choices("Backend", BACKENDS)
Fusion = _choices("Fusion", FUSIONS)
Transform = _choices("Transform", TRANSFORMS)

def described(registry: dict[str, str]) -> str:
    """A registry's entries and their one-line descriptions, as a help text says them."""
    return "; ".join(f"{name}: {text}" for name, text in registry.items()) + "."


Precision = Annotated[PrecisionChoice, typer.Option(help="Inference precision: " + described(PRECISION_DESCRIPTIONS))]


def registry_tables() -> str:
    """docs/registries.md: every registry's entries with their descriptions (``make docs`` writes it; a test
    fails when it is stale)."""
    from ..distill.methods import TERM_DESCRIPTIONS
    from ..eval.variants import VARIANTS

    tables = [("Distillation methods (`--method`, `method:`)", METHOD_DESCRIPTIONS),
              ("Objective terms (`objective: {term: weight}`)", TERM_DESCRIPTIONS),
              ("Benchmarks (`--benchmark`)", {n: b.title for n, b in BENCHMARKS.items()}),
              ("Precisions (`--precision`, `eval_precision:`)", PRECISION_DESCRIPTIONS),
              ("Training-free transforms (`--transform`)", TRANSFORMS),
              ("Evaluation variants (`eval_variants:`)", {n: v.description for n, v in VARIANTS.items()})]
    lines = ["# Registries", "", "Generated from the registries themselves by `make docs` (a test fails when this "
             "file is stale): a new entry, with its one-line description, appears here, in `--help` and in "
             "[cli.md](cli.md) by itself.", ""]
    for title, registry in tables:
        lines += [f"## {title}", "", "| name | what it is |", "|---|---|"]
        lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in registry.items()] + [""]
    return "\n".join(lines)


if __name__ == "__main__":  # `make docs`
    import sys

    sys.stdout.write(registry_tables())
