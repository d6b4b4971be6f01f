"""Training commands: ``distill`` (a student, OT and/or KD; the evaluation languages never enter training)
and ``explain`` (the OT plan between an English sentence and its translation).

    clir-ot distill --method ot --lang yo --steps 100    # one student
    clir-ot explain --model runs/distill/yo-ot-s0/student --en "..." --x "..."
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..distill.methods import METHOD_DESCRIPTIONS
from ..errors import ClirOtError
from ..languages import EVAL_LANGUAGES
from .choices import Method, described
from .common import console, progress_bar, refuse_existing

app = typer.Typer()


@app.command("distill")
def distill_cmd(
    lang: Annotated[str, typer.Option(help="Target evaluation language (excluded from training, with all six).")]
    = "sw",
    method: Annotated[Method | None, typer.Option(help=described(METHOD_DESCRIPTIONS))] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with DistillConfig fields.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=2**32 - 1, help="Random seed (numpy's range).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: runs/distill/<lang>-<method>-s<seed>).")]
    = None,
    student: Annotated[str | None, typer.Option(help="Student: me5-small, a directory or an HF id.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher: self (frozen initial student), minilm, ...")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.")] = None,
    bitext: Annotated[list[str] | None, typer.Option(help="Bitext files ('path', 'path:lang', 'embedded:...').")]
    = None,
    lexicon: Annotated[str | None, typer.Option(help="Lexicon for code-switching.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any config field: --set lr=3e-5.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out from its checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
) -> None:
    """Distil a multilingual student with OT and/or MSE; the evaluation languages never enter training."""
    from ..config import build, parse_overrides, read_yaml
    from ..distill.distributed import launched_world
    from ..distill.methods import objective_label
    from ..distill.trainer import DistillConfig, train

    cli = {k: v for k, v in {"lang": lang, "method": method.value if method else None, "seed": seed,
                             "student": student, "teacher": teacher, "steps": steps, "bitext": bitext,
                             "lexicon": lexicon}.items() if v is not None}
    cfg = build(DistillConfig, read_yaml(config) if config else {}, cli, parse_overrides(set_))
    trains = objective_label(cfg.method, cfg.objective)
    named = cfg.method if cfg.objective is None else "objective"
    out = out or Path("runs") / "distill" / f"{cfg.lang}-{named}-s{cfg.seed}"
    if launched_world().rank != 0:  # under torchrun: rank 0 reports, the others only train
        train(cfg, out, resume=resume, overwrite=overwrite)
        return
    console.print(f"distill {trains} → {out} (student {cfg.student}, teacher {cfg.teacher}, {cfg.steps} steps, "
                  f"excluded: {', '.join(sorted(set(EVAL_LANGUAGES) | {cfg.lang}))})", markup=False)
    with progress_bar() as progress:
        task = progress.add_task("distill", total=cfg.steps)

        def on_start(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total)

        def on_step(step: int, record: dict) -> None:
            parts = [f"loss {record['loss']:.4f}"]
            if "ot_cost" in record:
                parts.append(f"ot {record['ot_cost']:.4f} H {record['plan_entropy']:.2f}")
            parts.append(f"{record['tokens_per_s'] or 0:,.0f} tok/s")
            progress.update(task, completed=step, description="distill " + " ".join(parts))

        manifest = train(cfg, out, resume=resume, overwrite=overwrite, on_step=on_step, on_start=on_start)
    _print_probe(manifest["probe"])
    console.print(f"student: {out / 'student'}  ({manifest['train_time_s']:.0f} s training, "
                  f"{manifest['wall_time_s']:.0f} s total)", markup=False)


def _print_probe(probe: dict) -> None:
    before, after = probe.get("before") or {}, probe.get("after") or {}
    if not after:
        return
    table = Table(title="held-out UDHR probe (student x vs teacher en): accuracy / MSE×100")
    for col in ("lang", "before", "after"):
        table.add_column(col)
    for lang, res in after["probe"].items():
        b = (before.get("probe") or {}).get(lang)
        table.add_row(lang, f"{b['accuracy']:.3f} / {b['mse_x100']:.3f}" if b else "–",
                      f"{res['accuracy']:.3f} / {res['mse_x100']:.3f}")
    console.print(table)
    if "retrieval_check" in after:
        a, b = after["retrieval_check"], before.get("retrieval_check")
        console.print(f"retrieval check {a['lang']} ({a['corpus']}): R@100 "
                      f"{b['R@100']:.4f} → {a['R@100']:.4f}, nDCG@10 {b['nDCG@10']:.4f} → {a['nDCG@10']:.4f}"
                      if b else f"retrieval check {a['lang']}: R@100 {a['R@100']:.4f}, nDCG@10 {a['nDCG@10']:.4f}",
                      markup=False)


@app.command("explain")
def explain_cmd(
    model: Annotated[str, typer.Option(help="Student: a distilled directory, me5-small, ...")],
    en: Annotated[str | None, typer.Option(help="English sentence (teacher side).")] = None,
    x: Annotated[str | None, typer.Option(help="Its translation (student side).")] = None,
    pair_file: Annotated[Path | None, typer.Option(help="Bitext TSV: explain its first pair per language.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model (default: me5-small, the frozen "
                                                "initial student of self-distillation).")] = "me5-small",
    reg: Annotated[float, typer.Option(help="Sinkhorn regularisation.")] = 0.05,
    out: Annotated[Path, typer.Option(help="Heatmap PNG (or folder with --pair-file).")] = Path("ot_plan.png"),
    top: Annotated[int, typer.Option(min=1, help="Alignments to print.")] = 15,
    overwrite: Annotated[bool, typer.Option(help="Replace existing heatmaps.")] = False,
) -> None:
    """Show the OT plan between teacher (English) and student (x) tokens: heatmap PNG + top alignments."""
    import math

    from ..data.bitext import read_bitext
    from ..distill.explain import explain_pair, heatmap, load_pair_models

    if pair_file is None and (en is None or x is None):
        raise ClirOtError("give --en and --x, or --pair-file")
    if pair_file is None and not (en.strip() and x.strip()):
        raise ClirOtError("--en and --x must each hold some text")
    if not (math.isfinite(reg) and reg > 0):
        raise ClirOtError(f"--reg must be a finite number > 0 (the entropic regularisation), got {reg}")
    pairs = [("pair", en, x)] if pair_file is None else []
    if pair_file is not None:
        seen: set[str] = set()
        for p in read_bitext(pair_file).pairs:
            if p.lang not in seen:
                seen.add(p.lang)
                pairs.append((p.lang, p.en, p.x))
    paths = {name: out if pair_file is None else out / f"{name}.png" for name, _, _ in pairs}
    for path in paths.values():  # every heatmap checked before any work
        refuse_existing(path, overwrite)
    student, teacher_enc = load_pair_models(model, teacher)
    for name, e, t in pairs:
        alignment = explain_pair(student, teacher_enc, e, t, reg)
        path = paths[name]
        heatmap(alignment, path, f"{name}: {model}")
        table = Table(title=f"{name}: strongest alignment per English token (⟨P*, C⟩ = {alignment.cost:.3f})")
        for col in ("English token", "student token", "share of mass"):
            table.add_column(col)
        for a, b, share in sorted(alignment.top, key=lambda r: -r[2])[:top]:
            table.add_row(a, b, f"{share:.2f}")
        console.print(table)
        console.print(f"heatmap: {path}", markup=False)
