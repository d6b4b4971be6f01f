"""Distillation trainer: a frozen teacher on the English side, a student on both sides.

    clir-ot distill --lang sw --method ot --seed 0 --out runs/distill/sw-ot-s0

Methods (``--method``), shorthands for weighted sums of objective terms (:mod:`.objective`):

- ``kd``:    kd_weight · (‖S(en) − T(en)‖² + ‖S(x) − T(en)‖²)            (Reimers & Gurevych 2020)
- ``ot``:    ot_weight · ⟨P*, C⟩_F + retention_weight · ‖S(en) − T(en)‖²   (OPTICAL + retention)
- ``ot+kd``: ot_weight · ⟨P*, C⟩_F + kd_weight · (‖S(en) − T(en)‖² + ‖S(x) − T(en)‖²)
- ``noise``: retention_weight · ‖S(en) − T(en)‖²  (control: any update, no cross-lingual signal)

``objective: {ot: 1, kd_x: 0.5, ...}`` replaces the method's mix.

x is the translation or the code-switched English of each pair (both are drawn). The teacher is
frozen: the student's own initial copy (``teacher: self``, self-distillation: the student keeps its
retrieval space while training languages are pulled toward English) or another encoder
(``teacher: minilm``, a space unrelated to mE5's; ``teacher_map: true`` then learns a linear map from
the student's space to the teacher's, fitted before the first step and trained with the student, used by
the loss only: :mod:`.teacher_map`). Training uses the prefixes used at retrieval time:
``prefix_mode: both`` alternates "query: " and "passage: " per batch, the same for both models.

Output directory: ``student/`` (Hugging Face model + tokenizer + encoder spec), ``train_log.jsonl``,
``probe.json`` (UDHR probe and retrieval check before/after; the "before" half is cached under
``$CLIR_OT_CACHE/probes`` per initial student, teacher and probe settings, so repeated runs do not
recompute it), ``config.yaml`` and ``manifest.json``
(exclusion audit, data sha256, versions, wall time, seed). ``checkpoint/`` exists while training:
``--resume`` continues from it and ends with the same weights as an uninterrupted run.

Under ``torchrun`` the ranks share each batch and rank 0 alone writes (:mod:`.distributed`).
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..artifacts import prepare_output_dir, require_folder, write_json_atomic, write_manifest
from ..config import keyed_fields, result_key
from ..data.training import TrainingData, TrainingExample
from ..errors import ClirOtError
from ..inputs import read_json_or_none
from ..models import resolve_device
from ..models.vocabulary import kept_token_ids
from . import distributed, objective
from .card import model_card
from .checkpoint import (
    discard_unresumable,
    has_checkpoint,
    load_checkpoint,
    recover_checkpoint,
    save_checkpoint,
    save_student,
    truncate_log,
)
from .components import Models, batches, build_models, idf_weights, make_optimizer, set_seed, training_data
from .config import DistillConfig, prefix_kind
from .methods import objective_label
from .teacher_map import fit as fit_teacher_map


class NonFiniteLossError(ClirOtError):
    """The loss became NaN or infinite."""


def compute_losses(models: Models, cfg: DistillConfig, examples: list[TrainingExample], kind: str) -> dict:
    """One forward pass of the objective (:mod:`clir_ot.distill.objective`): the total loss and its parts."""
    x = [ex.en if cfg.x_source == "english" else ex.x for ex in examples]
    return objective.compute(models, cfg, [ex.en for ex in examples], x, kind)


def evaluate_student(models: Models, cfg: DistillConfig) -> dict:
    from .probe import retrieval_check, translation_probe

    was_training = models.student.model.training
    out = {"probe": translation_probe(models.student, models.teacher, cfg.probe_langs,
                                      teacher_cache=models.probe_teacher_cache)}
    if cfg.check_lang:
        out["retrieval_check"] = retrieval_check(models.student, cfg.check_lang, cfg.check_pool, cfg.check_queries)
    models.student.model.train(was_training)
    return out


def evaluate_initial_student(models: Models, cfg: DistillConfig) -> dict:
    """:func:`evaluate_student` before training, read from the cache when the same initial student and teacher
    (weights sha256), probe settings and retrieval-check data (corpus, topics, qrels sha256) were evaluated
    before on this kind of device."""
    from ..artifacts import config_hash
    from ..data import miracl
    from ..models.loading import model_fingerprint
    from ..settings import cache_dir

    check_data = {"corpus": miracl.corpus_identity(cfg.check_lang)["sha256"],
                  "judgements": miracl.judgement_identity(cfg.check_lang)} if cfg.check_lang else None
    key = config_hash({"student": model_fingerprint(cfg.student),
                       "teacher": "self" if cfg.teacher == "self" else model_fingerprint(cfg.teacher),
                       "device": models.student.device.type, "probe_langs": cfg.probe_langs,
                       "check": [cfg.check_lang, cfg.check_pool, cfg.check_queries], "check_data": check_data,
                       "version": 4})
    cached = read_json_or_none(cache_dir() / "probes" / f"{key}.json")
    if isinstance(cached, dict):
        return cached
    result = evaluate_student(models, cfg)
    write_json_atomic(cache_dir() / "probes" / f"{key}.json", result)
    return result


StepCallback = Callable[[int, dict], None]


@dataclass
class Run:
    """One distillation run between its setup and its end: what the steps read and advance."""

    cfg: DistillConfig
    out: Path
    world: distributed.World
    device: torch.device
    data: TrainingData
    models: Models
    resume: bool
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    step: int = 0
    consumed: int = 0
    before: dict | None = None

    @property
    def bf16(self) -> bool:
        """bf16 autocast of the training steps: on a CUDA GPU unless ``bf16: false``; on the CPU if ``cpu_bf16``."""
        return (self.cfg.bf16 and self.device.type == "cuda") or (self.cfg.cpu_bf16 and self.device.type == "cpu")


def train(cfg: DistillConfig, out: Path, *, resume: bool = False, overwrite: bool = False,
          on_step: StepCallback | None = None, on_start: Callable[[int, int], None] | None = None,
          evaluate: bool = True) -> dict:
    """Run (or resume) a distillation; return the manifest (on ranks other than 0 under ``torchrun``:
    ``{"rank": r}``). See the module docstring and :mod:`.distributed`."""
    started = time.time()
    run = setup(cfg, Path(out), resume, overwrite, evaluate)
    if on_start:
        on_start(run.step, cfg.steps)
    train_started = time.time()
    try:
        tokens_seen = loop(run, on_step)
    except BaseException:
        discard_unresumable(run.out, resume, run.world)
        raise
    train_time = time.time() - train_started
    if not run.world.is_main:
        distributed.barrier(run.world)  # rank 0 probes and saves the student
        distributed.close(run.world)
        return {"rank": run.world.rank, "steps": run.step, "train_time_s": round(train_time, 2)}
    manifest = finish(run, started, train_time, tokens_seen, evaluate)
    distributed.barrier(run.world)
    distributed.close(run.world)
    return manifest


def setup(cfg: DistillConfig, out: Path, resume: bool, overwrite: bool, evaluate: bool) -> Run:
    """Everything before the first step, in this order: the folder and the configuration checked, the
    training data read and audited, the models built, the output folder prepared; then (until the first
    checkpoint, a failure leaves nothing behind) IDF weights, the teacher map's fit, the student probed before
    training, the optimiser, and on ``resume`` the checkpoint's state."""
    require_folder(out)  # before the audit, the models and the data: a file where the run folder belongs
    world = distributed.launched_world()
    if cfg.batch_size % (world.size * cfg.grad_accum):
        raise ClirOtError(f"invalid configuration: batch_size {cfg.batch_size} is not divisible by {world.size} "
                          f"rank(s) × grad_accum {cfg.grad_accum}")
    data = training_data(cfg)  # the audit runs before anything is written, loaded or trained
    device = resolve_device(cfg.device)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    distributed.init(world, device.type)
    _check_folder(cfg, out, resume, overwrite, world)
    distributed.barrier(world)  # every rank has checked the folder before rank 0 writes to it
    set_seed(cfg.seed)
    run = Run(cfg, out, world, device, data, build_models(cfg, device), resume)
    if not resume and world.is_main:
        prepare_output_dir(out, overwrite)
    try:  # until the first checkpoint, a failed start leaves nothing behind: the corrected rerun starts clean
        _prepare(run, evaluate)
    except BaseException:
        discard_unresumable(out, resume, world)
        raise
    run.models.student.model.train()
    return run


def _check_folder(cfg: DistillConfig, out: Path, resume: bool, overwrite: bool, world: distributed.World) -> None:
    """``resume``: a checkpoint and the same configuration; otherwise an empty folder unless ``overwrite``."""
    if resume:
        if world.is_main:
            recover_checkpoint(out)
        distributed.barrier(world)
        if not (out / "checkpoint").is_dir():
            raise ClirOtError(f"nothing to resume in {out}: it was stopped before its first checkpoint; start it "
                              "again with --overwrite")
        saved = json.loads((out / "run_config.json").read_text())
        if keyed_fields(type(cfg), saved) != keyed_fields(type(cfg), json.loads(json.dumps(asdict(cfg)))):
            raise ClirOtError(f"--resume with a different configuration than the one that started {out}")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ClirOtError(f"output directory {out} already exists and is not empty; choose another --out, pass "
                          + ("--overwrite, or --resume the interrupted run from its checkpoint" if has_checkpoint(out)
                             else "--overwrite (it holds no checkpoint to resume)"))


def _prepare(run: Run, evaluate: bool) -> None:
    cfg, out, world, models, data = run.cfg, run.out, run.world, run.models, run.data
    if not run.resume and world.is_main:
        write_json_atomic(out / "run_config.json", asdict(cfg))
    if cfg.ot_marginals == "idf":
        sample = data.pairs[:5000]
        models.idf_teacher = idf_weights(models.teacher, [p.en for p in sample]).to(run.device)
        models.idf_student = idf_weights(models.student, [p.x for p in sample]).to(run.device)
    if models.teacher_map is not None and not run.resume:
        kinds = list(dict.fromkeys(prefix_kind(cfg, step) for step in range(2)))
        fitted = fit_teacher_map(models.teacher_map, models.student, models.teacher,
                                 [p.en for p in data.pairs], kinds, cfg.max_length)
        if world.is_main:
            write_json_atomic(out / "teacher_map_fit.json", fitted)
    run.before = evaluate_initial_student(models, cfg) if evaluate and not run.resume and world.is_main else None
    if run.before is not None:
        write_json_atomic(out / "probe_before.json", run.before)
    elif run.resume and (out / "probe_before.json").is_file():
        run.before = json.loads((out / "probe_before.json").read_text())
    distributed.barrier(world)  # the others wait while rank 0 probes
    run.optimizer, run.scheduler = make_optimizer(models, cfg)
    if run.resume:
        run.step, run.consumed = load_checkpoint(out, models, run.optimizer, run.scheduler, world)
        if world.is_main:
            truncate_log(out / "train_log.jsonl", run.step)
    else:
        set_seed(cfg.seed + world.rank)  # training randomness (dropout) does not depend on the probe having run


def loop(run: Run, on_step: StepCallback | None = None) -> int:
    """Train from ``run.step`` to ``cfg.steps``: each step logged (rank 0), snapshots and checkpoints where the
    configuration asks for them; return the number of tokens seen."""
    cfg = run.cfg
    data_iter: Iterator[list[TrainingExample]] = batches(run.data, cfg, start=run.consumed)
    tokens_seen = 0
    while run.step < cfg.steps:
        record = step(run, next(data_iter))
        tokens_seen += record["tokens"]
        if run.world.is_main:
            with open(run.out / "train_log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            if run.step in cfg.snapshot_steps and run.step < cfg.steps:
                save_student(run.models.student, run.out / "snapshots" / f"step-{run.step}")
        if run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps:
            save_checkpoint(run.out, run.models, run.optimizer, run.scheduler, run.step, run.consumed, run.world)
        if on_step:
            on_step(run.step, record)
    return tokens_seen


def step(run: Run, examples: list[TrainingExample]) -> dict:
    """One optimiser step over ``examples`` (this rank's micro-batches, gradients averaged over ranks); advance
    ``run.step`` and ``run.consumed`` and return the step's log record. A loss that is not finite stops the
    run with :class:`NonFiniteLossError`."""
    cfg, world, optimizer, scheduler = run.cfg, run.world, run.optimizer, run.scheduler
    t0 = time.time()
    optimizer.zero_grad(set_to_none=True)
    losses, parts = [], []
    for micro in distributed.micro_batches(examples, world, cfg.grad_accum):
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.bf16):
            result = compute_losses(run.models, cfg, micro, prefix_kind(cfg, run.step))
        loss = result.pop("loss")
        losses.append(loss.item())
        parts.append(result)
        if torch.isfinite(loss):
            (loss / cfg.grad_accum).backward()
    # logged: means over micro-batches and ranks (token counts: sums); statistics.mean keeps one value
    # as it is and whole-number means (Sinkhorn iterations) as integers
    logged = {"loss": statistics.mean(losses), "tokens": sum(r["tokens"] for r in parts)} | {
        k: statistics.mean(r[k] for r in parts) for k in parts[0] if k != "tokens"}
    logged = distributed.mean_over_ranks(logged, world)
    if not math.isfinite(logged["loss"]):
        last = (run.out / "checkpoint").is_dir()
        raise NonFiniteLossError(
            f"loss is {logged['loss']} at step {run.step + 1}; stopped. "
            + (f"The last good checkpoint is in {run.out / 'checkpoint'} (resume with --resume after changing "
               "the learning rate or reg)." if last else "No checkpoint was written yet."))
    distributed.average_gradients(run.models.trainable_parameters(), world)
    grad_norm = torch.nn.utils.clip_grad_norm_(run.models.trainable_parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    run.step += 1
    run.consumed += len(examples)
    tokens = int(round(logged.pop("tokens") * world.size))
    elapsed = time.time() - t0
    return {"step": run.step, "loss": logged.pop("loss"), **logged, "tokens": tokens,
            "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0], "step_time_s": round(elapsed, 4),
            "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None}


def finish(run: Run, started: float, train_time: float, tokens_seen: int, evaluate: bool) -> dict:
    """Rank 0 after the last step: the student probed after training, saved with its model card, the
    manifest written and the checkpoint removed; return the manifest."""
    cfg, out, models = run.cfg, run.out, run.models
    models.student.model.eval()
    after = evaluate_student(models, cfg) if evaluate else None
    probe = {"before": run.before, "after": after}
    write_json_atomic(out / "probe.json", probe)
    models.student.spec.label = (f"{models.student.spec.label or cfg.student} + "
                                 f"{objective_label(cfg.method, cfg.objective)} distilled (seed {cfg.seed})")
    kept = kept_token_ids(models.student.model)
    save_student(models.student, out / "student", card=model_card(asdict(cfg), run.data.manifest(), probe, run.step,
                                                                  None if kept is None else len(kept)))
    if models.teacher_map is not None:  # kept for inspection; the student never uses it
        torch.save(models.teacher_map.state_dict(), out / "teacher_map.pt")
    world = run.world
    manifest = write_manifest(out, "distill", asdict(cfg), key=result_key(cfg), started=started, extra={
        "training_data": run.data.manifest(), "seed": cfg.seed, "device": str(run.device),
        "world_size": world.size, "grad_accum": cfg.grad_accum, "autocast": "bf16" if run.bf16 else None,
        "micro_batch": cfg.batch_size // (world.size * cfg.grad_accum),
        "teacher_map_fit": read_json_or_none(out / "teacher_map_fit.json"),
        "train_time_s": round(train_time, 2), "steps": run.step, "examples_seen": run.consumed,
        "tokens_seen_this_run": tokens_seen, "probe": probe,
        "student_parameters_trained": sum(p.numel() for p in models.student.model.parameters() if p.requires_grad)})
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    return manifest


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """The trained student's weights (for comparisons), read from ``out/student``."""
    from safetensors.torch import load_file

    return load_file(str(Path(out) / "student" / "model.safetensors"))

