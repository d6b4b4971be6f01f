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

import copy
import json
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import count
from pathlib import Path

import numpy as np
import torch

from ..artifacts import prepare_output_dir, require_folder, write_json_atomic, write_manifest, write_text_atomic
from ..config import setting, validate
from ..data.codeswitch import CODE_SWITCH_MODES
from ..data.training import DEMO_BITEXT, DEMO_LEXICON, TrainingData, TrainingExample, load_training_data
from ..errors import ClirOtError
from ..inputs import read_json_or_none
from ..languages import EVAL_LANGUAGES, check_language, normalize_language
from ..models import Encoder, load_encoder, resolve_device
from . import distributed, objective
from .card import model_card
from .losses import MSEDistillLoss, OTAlignmentLoss
from .methods import METHODS
from .teacher_map import fit as fit_teacher_map

PREFIX_MODES = ("both", "query", "passage", "none")


@dataclass
class DistillConfig:
    """Everything a distillation run depends on (saved as ``config.yaml`` beside the student).

    Every field is converted to its type and checked against its range when the object is made
    (:func:`clir_ot.config.validate`), so a bad value stops a run before anything is loaded or written.
    """

    lang: str = "sw"
    method: str = setting("ot", choices=METHODS)
    #: ``{term: weight}`` replacing the method's mix (terms: :data:`clir_ot.distill.objective.TERMS`)
    objective: dict[str, float] | None = None
    student: str = "me5-small"
    teacher: str = "self"
    bitext: list[str] = field(default_factory=lambda: [DEMO_BITEXT])
    lexicon: str | None = DEMO_LEXICON
    train_langs: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    code_switch_p: float = setting(0.5, ge=0.0, le=1.0)
    code_switch_mode: str = setting("bilingual", choices=CODE_SWITCH_MODES)
    use_bitext: bool = True
    seed: int = setting(0, ge=0)
    steps: int = setting(200, ge=1)
    #: examples per optimiser step, whatever the number of ranks (:mod:`.distributed`)
    batch_size: int = setting(16, ge=1)
    #: micro-batches per rank and step: each rank's slice of the batch is cut into this many forward passes
    grad_accum: int = setting(1, ge=1)
    max_length: int = setting(64, ge=8)
    lr: float = setting(2e-5, gt=0.0)
    warmup_steps: int = setting(20, ge=0)
    weight_decay: float = setting(0.01, ge=0.0)
    grad_clip: float = setting(1.0, gt=0.0)
    freeze_embeddings: bool = True
    prefix_mode: str = setting("both", choices=PREFIX_MODES)
    ot_reg: float = setting(0.05, gt=0.0)
    ot_iters: int = setting(50, ge=1)
    ot_stop_thr: float = setting(1e-4, ge=0.0)
    ot_grad: str = setting("envelope", choices=("envelope", "autodiff"))
    ot_reg_m: float | None = setting(None, gt=0.0)
    ot_marginals: str = setting("uniform", choices=("uniform", "idf"))
    ot_special_tokens: bool = False
    teacher_layer: int = -1
    #: learn a linear map from the student's space to the teacher's, jointly, used by the loss only (for a
    #: teacher whose space is unrelated to the student's, e.g. minilm); the saved student is the encoder alone
    teacher_map: bool = False
    student_layer: int = -1
    ot_weight: float = setting(1.0, ge=0.0)
    kd_weight: float = setting(1.0, ge=0.0)
    retention_weight: float = setting(1.0, ge=0.0)
    checkpoint_every: int = setting(50, ge=1)
    #: steps (before the last) at which the student is also saved, under ``snapshots/step-<k>/``, for curves
    snapshot_steps: list[int] = setting(default_factory=list, ge=1)
    probe_langs: list[str] = field(default_factory=lambda: list(EVAL_LANGUAGES))
    check_lang: str | None = "yo"
    check_pool: int | None = setting(0, ge=0)
    check_queries: int | None = setting(30, ge=1)
    device: str = "auto"
    #: bf16 autocast of the training steps on a CUDA GPU
    bf16: bool = True
    #: bf16 autocast of the training steps on the CPU: opt-in, worth it where ``--precision auto`` picks bf16
    #: (:mod:`clir_ot.models.precision`); off by default so that a profile trains the same way on every CPU
    cpu_bf16: bool = False
    max_malformed: float = setting(0.01, ge=0.0, le=1.0)
    max_content_fraction: float = setting(0.005, ge=0.0, le=1.0)

    def __post_init__(self) -> None:
        validate(self)
        self.lang = check_language(self.lang)
        if self.lang == "en":
            raise ClirOtError("invalid configuration: lang en is the teacher's side of every pair; give the "
                              "evaluation language to exclude (sw, yo, te, bn, hi or th)")
        beyond = [s for s in self.snapshot_steps if s >= self.steps]
        if beyond:
            raise ClirOtError(f"invalid configuration: snapshot_steps {beyond} must lie below the {self.steps} "
                              "training steps (the last step is the student itself)")
        if self.check_lang is not None:
            self.check_lang = check_language(self.check_lang)
        self.probe_langs = check_probe_languages(self.probe_langs)
        check_device(self.device)
        if self.objective is not None:
            unknown = sorted(set(self.objective) - set(objective.TERMS))
            if unknown:
                raise ClirOtError(f"invalid configuration: unknown objective term(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(objective.TERMS)}")
            for term, weight in self.objective.items():
                if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < math.inf:
                    raise ClirOtError(f"invalid configuration: objective weight of {term} must be a finite number "
                                      f"≥ 0, got {weight!r}")
            self.objective = {term: float(w) for term, w in self.objective.items()}
        if not objective.resolve(self):
            raise ClirOtError("invalid configuration: the objective has no term with a weight above 0")


def check_probe_languages(langs: list[str]) -> list[str]:
    """``langs`` normalised; each must be a language of the held-out UDHR probe."""
    from .probe import probe_languages

    available = probe_languages()
    out = []
    for label in langs:
        code = normalize_language(label)
        if code not in available:
            raise ClirOtError(f"invalid configuration: probe language {label!r} is not in the UDHR probe; "
                              f"available: {', '.join(available)}")
        out.append(code)
    return out


def check_device(name: str) -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it exists here is checked when a run starts)."""
    try:
        device = torch.device(name) if name != "auto" else None
    except RuntimeError:
        device = None
    if name != "auto" and (device is None or device.type not in ("cpu", "cuda", "mps")):
        raise ClirOtError(f"invalid configuration: unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")


class NonFiniteLossError(ClirOtError):
    """The loss became NaN or infinite."""


@dataclass
class Models:
    student: Encoder
    teacher: Encoder
    ot: OTAlignmentLoss
    kd: MSEDistillLoss
    idf_teacher: torch.Tensor | None = None
    idf_student: torch.Tensor | None = None
    probe_teacher_cache: dict = field(default_factory=dict)  # frozen teacher: its UDHR embeddings never change
    teacher_map: torch.nn.Linear | None = None  # student space → teacher space, trained with the student

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.student.model.parameters() if p.requires_grad]
        return params + (list(self.teacher_map.parameters()) if self.teacher_map is not None else [])


def build_models(cfg: DistillConfig, device: torch.device) -> Models:
    student = load_encoder(cfg.student, device=str(device))
    if cfg.teacher == "self":
        teacher = Encoder(copy.deepcopy(student.model), student.tokenizer, student.spec, source=f"self:{cfg.student}")
    else:
        teacher = load_encoder(cfg.teacher, device=str(device))
    for who, enc, layer in (("teacher", teacher, cfg.teacher_layer), ("student", student, cfg.student_layer)):
        n_layers = int(enc.model.config.num_hidden_layers)
        if not -1 <= layer <= n_layers:
            raise ClirOtError(f"invalid configuration: {who}_layer {layer} is outside -1..{n_layers} "
                              f"(the {who} has {n_layers} layers; 0 = embedding output, -1 = last)")
    teacher_map = None
    if cfg.teacher_map:  # fitted by train() before the first step (or loaded from the checkpoint)
        teacher_map = torch.nn.Linear(student.dim, teacher.dim, bias=False).to(device)
    elif teacher.dim != student.dim:
        raise ClirOtError(f"teacher ({teacher.dim}) and student ({student.dim}) dimensions differ; "
                          "the losses compare their embeddings directly (set teacher_map: true to learn a map)")
    teacher.model.eval()
    for p in teacher.model.parameters():
        p.requires_grad_(False)
    if cfg.freeze_embeddings:
        student.model.get_input_embeddings().weight.requires_grad_(False)
    ot = OTAlignmentLoss(cfg.ot_reg, cfg.ot_iters, cfg.ot_stop_thr, cfg.ot_grad, cfg.ot_reg_m)
    kd = MSEDistillLoss()
    return Models(student, teacher, ot, kd, teacher_map=teacher_map)


def idf_weights(encoder: Encoder, texts: list[str]) -> torch.Tensor:
    """IDF per token id over ``texts``: log((N + 1) / (df + 1)) + 1."""
    df = np.zeros(len(encoder.tokenizer), dtype=np.float64)
    for ids in encoder.tokenizer(texts, add_special_tokens=False)["input_ids"]:
        df[list(set(ids))] += 1
    return torch.tensor(np.log((len(texts) + 1) / (df + 1)) + 1, dtype=torch.float32)


def batches(data: TrainingData, cfg: DistillConfig, start: int = 0) -> Iterator[list[TrainingExample]]:
    """Deterministic batches over epochs, skipping the first ``start`` examples (for resume)."""
    batch: list[TrainingExample] = []
    seen = 0
    for epoch in count():
        n_before = seen
        for ex in data.examples(cfg.seed, epoch):
            seen += 1
            if seen <= start:
                continue
            batch.append(ex)
            if len(batch) == cfg.batch_size:
                yield batch
                batch = []
        if seen == n_before:
            raise ClirOtError("the training data yields no examples")


def prefix_kind(cfg: DistillConfig, step: int) -> str:
    if cfg.prefix_mode == "both":
        return "query" if step % 2 == 0 else "passage"
    return "plain" if cfg.prefix_mode == "none" else cfg.prefix_mode


def compute_losses(models: Models, cfg: DistillConfig, examples: list[TrainingExample], kind: str) -> dict:
    """One forward pass of the objective (:mod:`clir_ot.distill.objective`): the total loss and its parts."""
    return objective.compute(models, cfg, [ex.en for ex in examples], [ex.x for ex in examples], kind)


def make_optimizer(models: Models, cfg: DistillConfig):
    params = models.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def trainable_state(models: Models) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in models.student.model.named_parameters() if v.requires_grad}


def save_checkpoint(out: Path, models: Models, optimizer, scheduler, step: int, consumed: int,
                    world: distributed.World = distributed.World()) -> None:
    """Write ``out/checkpoint`` atomically (temporary folder, then rename); every rank's random state is
    gathered into it, and rank 0 writes it."""
    rng = {"torch_rng": torch.get_rng_state(),
           "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
           "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}
    ranks_rng = distributed.gather(rng, world)
    if not world.is_main:
        distributed.barrier(world)
        return
    tmp = out / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(trainable_state(models), tmp / "student_trainable.pt")
    if models.teacher_map is not None:
        torch.save(models.teacher_map.state_dict(), tmp / "teacher_map.pt")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "consumed": consumed, "world_size": world.size, "ranks_rng": ranks_rng}, tmp / "trainer.pt")
    final = out / "checkpoint"
    old = out / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)  # a previous rotation killed while it deleted the old checkpoint
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    distributed.barrier(world)


def save_student(student: Encoder, target: Path, card: str | None = None) -> None:
    """Save ``student`` as a complete model folder at ``target``, atomically (temporary folder, then rename)."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    was_training = student.model.training
    student.save(tmp)
    student.model.train(was_training)
    if card is not None:
        write_text_atomic(tmp / "README.md", card)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _recover_checkpoint(out: Path) -> None:
    """Bring ``out`` back to one complete ``checkpoint/`` from whatever a kill left during
    :func:`save_checkpoint`'s rotation (a checkpoint is complete once its ``trainer.pt``, written last, is
    there): a complete ``checkpoint/`` wins and the leftovers go; without one, a complete ``checkpoint.old/``
    is restored; a half-written ``checkpoint.tmp/`` never counts."""
    final, old, tmp = out / "checkpoint", out / "checkpoint.old", out / "checkpoint.tmp"
    if not (final / "trainer.pt").is_file() and (old / "trainer.pt").is_file():
        shutil.rmtree(final, ignore_errors=True)
        os.replace(old, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def _discard_unresumable(out: Path, resume: bool, world: distributed.World) -> None:
    """After a failure: a fresh run (not ``resume``) that wrote no checkpoint leaves nothing behind (rank 0
    removes ``out``), so that the corrected command simply runs again; a run with a checkpoint is kept."""
    if not resume and world.is_main and not (out / "checkpoint").is_dir():
        shutil.rmtree(out, ignore_errors=True)


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log records after the checkpoint's ``step``: the resumed run writes them again."""
    if not log_path.is_file():
        return
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["step"] <= step]
    write_text_atomic(log_path, "".join(f"{line}\n" for line in lines))


def load_checkpoint(out: Path, models: Models, optimizer, scheduler,
                    world: distributed.World = distributed.World()) -> tuple[int, int]:
    ckpt = out / "checkpoint"
    if not (ckpt / "trainer.pt").is_file():
        raise ClirOtError(f"no checkpoint to resume in {out}; start without --resume")
    state = torch.load(ckpt / "student_trainable.pt", map_location=models.student.device)
    missing = models.student.model.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise ClirOtError(f"checkpoint in {ckpt} does not match the student model")
    if models.teacher_map is not None:
        models.teacher_map.load_state_dict(torch.load(ckpt / "teacher_map.pt", map_location=models.student.device))
    trainer = torch.load(ckpt / "trainer.pt", weights_only=False)
    if trainer["world_size"] != world.size:
        raise ClirOtError(f"the checkpoint in {ckpt} was written by {trainer['world_size']} rank(s); resume "
                          f"it with as many (this run has {world.size}): each rank continues its own random state")
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    rng = trainer["ranks_rng"][world.rank]
    torch.set_rng_state(rng["torch_rng"])
    if rng["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda_rng"])
    random.setstate(rng["python_rng"])
    np.random.set_state(rng["numpy_rng"])
    return trainer["step"], trainer["consumed"]


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def training_data(cfg: DistillConfig) -> TrainingData:
    """The configuration's training files, read, filtered (held-out verses) and audited."""
    return load_training_data(cfg.bitext, cfg.lexicon, cfg.lang, cfg.train_langs, cfg.exclude, cfg.code_switch_p,
                              cfg.code_switch_mode, cfg.use_bitext, cfg.max_malformed, cfg.max_content_fraction)


def train(cfg: DistillConfig, out: Path, *, resume: bool = False, overwrite: bool = False,
          on_step: StepCallback | None = None, on_start: Callable[[int, int], None] | None = None,
          evaluate: bool = True) -> dict:
    """Run (or resume) a distillation; return the manifest (on ranks other than 0 under ``torchrun``:
    ``{"rank": r}``). See the module docstring and :mod:`.distributed`."""
    started = time.time()
    out = Path(out)
    require_folder(out)  # before the audit, the models and the data: a file where the run folder belongs
    world = distributed.launched_world()
    if cfg.batch_size % (world.size * cfg.grad_accum):
        raise ClirOtError(f"invalid configuration: batch_size {cfg.batch_size} is not divisible by {world.size} "
                          f"rank(s) × grad_accum {cfg.grad_accum}")
    # the audit runs before anything is written, loaded or trained
    data = training_data(cfg)
    device = resolve_device(cfg.device)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    distributed.init(world, device.type)
    if resume:
        if world.is_main:
            _recover_checkpoint(out)
        distributed.barrier(world)
        if not (out / "checkpoint").is_dir():
            raise ClirOtError(f"nothing to resume in {out}: it was stopped before its first checkpoint; start it "
                              "again with --overwrite")
        saved = json.loads((out / "run_config.json").read_text())
        if saved != json.loads(json.dumps(asdict(cfg))):
            raise ClirOtError(f"--resume with a different configuration than the one that started {out}")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        checkpoint = any((out / name / "trainer.pt").is_file() for name in ("checkpoint", "checkpoint.old"))
        raise ClirOtError(f"output directory {out} already exists and is not empty; choose another --out, pass "
                          + ("--overwrite, or --resume the interrupted run from its checkpoint" if checkpoint else
                             "--overwrite (it holds no checkpoint to resume)"))
    distributed.barrier(world)  # every rank has checked the folder before rank 0 writes to it
    set_seed(cfg.seed)
    models = build_models(cfg, device)
    if not resume and world.is_main:
        prepare_output_dir(out, overwrite)
    try:  # until the first checkpoint, a failed start leaves nothing behind: the corrected rerun starts clean
        if not resume and world.is_main:
            write_json_atomic(out / "run_config.json", asdict(cfg))
        if cfg.ot_marginals == "idf":
            sample = data.pairs[:5000]
            models.idf_teacher = idf_weights(models.teacher, [p.en for p in sample]).to(device)
            models.idf_student = idf_weights(models.student, [p.x for p in sample]).to(device)
        if models.teacher_map is not None and not resume:
            kinds = list(dict.fromkeys(prefix_kind(cfg, step) for step in range(2)))
            fitted = fit_teacher_map(models.teacher_map, models.student, models.teacher,
                                     [p.en for p in data.pairs], kinds, cfg.max_length)
            if world.is_main:
                write_json_atomic(out / "teacher_map_fit.json", fitted)
        before = evaluate_initial_student(models, cfg) if evaluate and not resume and world.is_main else None
        if before is not None:
            write_json_atomic(out / "probe_before.json", before)
        elif resume and (out / "probe_before.json").is_file():
            before = json.loads((out / "probe_before.json").read_text())
        distributed.barrier(world)  # the others wait while rank 0 probes
        optimizer, scheduler = make_optimizer(models, cfg)
        step, consumed = 0, 0
        if resume:
            step, consumed = load_checkpoint(out, models, optimizer, scheduler, world)
            if world.is_main:
                _truncate_log(out / "train_log.jsonl", step)
        else:
            set_seed(cfg.seed + world.rank)  # training randomness (dropout) does not depend on the probe having run
    except BaseException:
        _discard_unresumable(out, resume, world)
        raise
    models.student.model.train()
    bf16 = (cfg.bf16 and device.type == "cuda") or (cfg.cpu_bf16 and device.type == "cpu")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    log_path = out / "train_log.jsonl"
    if on_start:
        on_start(step, cfg.steps)
    data_iter = batches(data, cfg, start=consumed)
    tokens_seen = 0
    train_started = time.time()
    try:
        while step < cfg.steps:
            examples = next(data_iter)
            t0 = time.time()
            optimizer.zero_grad(set_to_none=True)
            losses, parts = [], []
            for micro in distributed.micro_batches(examples, world, cfg.grad_accum):
                with autocast:
                    result = compute_losses(models, cfg, micro, prefix_kind(cfg, step))
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
                last = (out / "checkpoint").is_dir()
                raise NonFiniteLossError(
                    f"loss is {logged['loss']} at step {step + 1}; stopped. "
                    + (f"The last good checkpoint is in {out / 'checkpoint'} (resume with --resume after changing "
                       "the learning rate or reg)." if last else "No checkpoint was written yet."))
            distributed.average_gradients(models.trainable_parameters(), world)
            grad_norm = torch.nn.utils.clip_grad_norm_(models.trainable_parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            consumed += len(examples)
            tokens = int(round(logged.pop("tokens") * world.size))
            tokens_seen += tokens
            elapsed = time.time() - t0
            record = {"step": step, "loss": logged.pop("loss"), **logged, "tokens": tokens,
                      "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0], "step_time_s": round(elapsed, 4),
                      "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None}
            if world.is_main:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                if step in cfg.snapshot_steps and step < cfg.steps:
                    save_student(models.student, out / "snapshots" / f"step-{step}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(out, models, optimizer, scheduler, step, consumed, world)
            if on_step:
                on_step(step, record)
    except BaseException:
        _discard_unresumable(out, resume, world)
        raise
    train_time = time.time() - train_started
    if not world.is_main:
        distributed.barrier(world)  # rank 0 probes and saves the student
        distributed.close(world)
        return {"rank": world.rank, "steps": step, "train_time_s": round(train_time, 2)}
    models.student.model.eval()
    after = evaluate_student(models, cfg) if evaluate else None
    probe = {"before": before, "after": after}
    write_json_atomic(out / "probe.json", probe)
    models.student.spec.label = f"{models.student.spec.label or cfg.student} + {cfg.method} distilled (seed {cfg.seed})"
    save_student(models.student, out / "student",
                 card=model_card(asdict(cfg), data.manifest(), probe, step))
    if models.teacher_map is not None:  # kept for inspection; the student never uses it
        torch.save(models.teacher_map.state_dict(), out / "teacher_map.pt")
    manifest = write_manifest(out, "distill", asdict(cfg), started=started, extra={
        "training_data": data.manifest(), "seed": cfg.seed, "device": str(device),
        "world_size": world.size, "grad_accum": cfg.grad_accum, "autocast": "bf16" if bf16 else None,
        "micro_batch": cfg.batch_size // (world.size * cfg.grad_accum),
        "teacher_map_fit": read_json_or_none(out / "teacher_map_fit.json"),
        "train_time_s": round(train_time, 2), "steps": step, "examples_seen": consumed,
        "tokens_seen_this_run": tokens_seen, "probe": probe,
        "student_parameters_trained": sum(p.numel() for p in models.student.model.parameters() if p.requires_grad)})
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    distributed.barrier(world)
    distributed.close(world)
    return manifest


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """The trained student's weights (for comparisons), read from ``out/student``."""
    from safetensors.torch import load_file

    return load_file(str(Path(out) / "student" / "model.safetensors"))

