"""The distillation's configuration: every field a run depends on, converted and checked when it is made
(saved as ``config.yaml`` beside the student)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..config import setting, validate
from ..data.codeswitch import CODE_SWITCH_MODES
from ..data.training import DEMO_BITEXT, DEMO_LEXICON
from ..errors import ClirOtError
from ..languages import EVAL_LANGUAGES, check_language, normalize_language
from . import objective
from .methods import METHODS

PREFIX_MODES = ("both", "query", "passage", "none")
X_SOURCES = ("translation", "english")


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
    #: the student's side of each example: ``translation`` (x: the translation or the code-switched copy) or
    #: ``english`` (x replaced by its English source, the same examples in the same order: a control with no
    #: cross-lingual signal at all)
    x_source: str = setting("translation", choices=X_SOURCES, added="2026-12-07")
    #: freeze the student's transformer layers above this one (layers ``freeze_above + 1`` … last, and any
    #: pooler): ``6`` trains layers 1–6 only; unset: every layer trains
    freeze_above: int | None = setting(None, ge=0, added="2026-12-07")

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


def prefix_kind(cfg: DistillConfig, step: int) -> str:
    """The prefix both models see at ``step``: query and passage in turn for ``prefix_mode: both``."""
    if cfg.prefix_mode == "both":
        return "query" if step % 2 == 0 else "passage"
    return "plain" if cfg.prefix_mode == "none" else cfg.prefix_mode
