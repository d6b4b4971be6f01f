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
from ..distill.methods import METHODS
from ..models.precision import PRECISIONS
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

Precision = Annotated[PrecisionChoice, typer.Option(help="Inference precision: auto (bf16 where bf16 matrix products "
                                                    "run ≥ 1.5× fp32 ones: measured once on a CPU with amx_bf16 or "
                                                    "avx512_bf16; a GPU with bf16; else fp32), fp32, bf16 "
                                                    "(weights cast once) or int8 (dynamic quantisation; only after "
                                                    "`clir-ot gate` passed for the model).")]
