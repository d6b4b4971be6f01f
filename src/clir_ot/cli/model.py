"""``clir-ot model info`` and ``clir-ot gate``: encoders (offline models, local directories, Hugging Face
ids) and the fidelity gate of a lower inference precision against fp32.

    clir-ot model info me5-small     # load (convert once) an encoder and describe it
    clir-ot gate --precision bf16    # measure bf16 against fp32 on yo and record the verdict
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import ClirOtError
from .common import console, err_console, progress_bar

app = typer.Typer(help="Encoders: offline models, local directories, Hugging Face ids.", no_args_is_help=True)
gate_app = typer.Typer()


@app.command("info")
def model_info(name: Annotated[str, typer.Argument(help="minilm, me5-small, a directory or an HF id.")]) -> None:
    """Load an encoder (converting it once if needed) and describe it."""
    from ..models import load_encoder

    enc = load_encoder(name)
    n_params = sum(p.numel() for p in enc.model.parameters())
    console.print(f"{name}: {enc.spec.label or type(enc.model).__name__}, {n_params / 1e6:.1f} M parameters, "
                  f"dim {enc.dim}, pooling {enc.spec.pooling}, prefixes {enc.spec.query_prefix!r} / "
                  f"{enc.spec.passage_prefix!r}, source {enc.model.name_or_path}", markup=False)


@gate_app.command("gate")
def gate_cmd(
    model: Annotated[str, typer.Option(help="minilm, me5-small, a model directory or an HF id.")] = "me5-small",
    precision: Annotated[str, typer.Option(help="The precision to check against fp32: int8 or bf16.")] = "int8",
    pool: Annotated[int | None, typer.Option(min=0, help="Check on a reduced pool (judged + N random passages): "
                                             "recorded, but it unlocks nothing.")] = None,
    passages: Annotated[int, typer.Option(min=1, help="Passages for the cosine check.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch when encoding.")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON on stdout.")] = False,
) -> None:
    """Measure a lower precision against fp32 for one model: min cosine on yo passages, then full-corpus yo
    R@100 and nDCG@10; record the verdict ($CLIR_OT_CACHE/fidelity). int8 is refused until it passes.
    Exits 1 when the precision fails."""
    from ..eval.gate import run_gate

    if precision not in ("int8", "bf16"):
        raise ClirOtError(f"--precision {precision!r}: the gate checks int8 or bf16 against fp32")
    with progress_bar() as progress:
        task = progress.add_task("gate", total=None)
        record = run_gate(model, precision, pool_distractors=pool, passages=passages,
                                   batch_size=batch_size,
                                   on_stage=lambda what: progress.update(task, description=escape(what)))
    if as_json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    verdict = "passed" if record["passed"] else "FAILED"
    (err_console if as_json else console).print(f"{precision} for {model} ({record['corpus']}): {verdict} — "
                                                f"{record['verdict']}", markup=False, highlight=False)
    if not record["passed"]:
        raise typer.Exit(1)
