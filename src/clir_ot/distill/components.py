"""The parts a distillation run is built from: the frozen teacher and the student (:class:`Models`), the
optimiser and its schedule, the deterministic batches, IDF weights and seeding."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count

import numpy as np
import torch

from ..data.training import TrainingData, TrainingExample, load_training_data
from ..errors import ClirOtError
from ..models import Encoder, load_encoder
from .config import DistillConfig
from .losses import MSEDistillLoss, OTAlignmentLoss


@dataclass
class Models:
    """The student being trained, the frozen teacher, the two losses, and what some objective terms need
    besides: IDF token weights, the teacher map, the probe's cached teacher embeddings."""

    student: Encoder
    teacher: Encoder
    ot: OTAlignmentLoss
    kd: MSEDistillLoss
    idf_teacher: torch.Tensor | None = None
    idf_student: torch.Tensor | None = None
    probe_teacher_cache: dict = field(default_factory=dict)  # frozen teacher: its UDHR embeddings never change
    teacher_map: torch.nn.Linear | None = None  # student space → teacher space, trained with the student

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The student's parameters that train (not the frozen embeddings) and the teacher map's."""
        params = [p for p in self.student.model.parameters() if p.requires_grad]
        return params + (list(self.teacher_map.parameters()) if self.teacher_map is not None else [])


def build_models(cfg: DistillConfig, device: torch.device) -> Models:
    """The student and the teacher (the student's frozen copy for ``teacher: self``) on ``device``, the layers
    checked against each model, the teacher frozen and, unless ``freeze_embeddings`` is off, the student's word
    embeddings too."""
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
    if cfg.freeze_above is not None:
        freeze_layers_above(student.model, cfg.freeze_above)
    ot = OTAlignmentLoss(cfg.ot_reg, cfg.ot_iters, cfg.ot_stop_thr, cfg.ot_grad, cfg.ot_reg_m)
    kd = MSEDistillLoss()
    return Models(student, teacher, ot, kd, teacher_map=teacher_map)


def freeze_layers_above(model: torch.nn.Module, layer: int) -> None:
    """Stop the gradient of every transformer layer above ``layer`` (1-based, as ``student_layer`` counts them:
    ``hidden_states[layer]`` is the output of the layer'th block) and of the pooler, so training moves layers
    1 … ``layer`` (and the embeddings, unless frozen) only."""
    blocks = getattr(getattr(model, "encoder", None), "layer", None)
    if blocks is None:
        raise ClirOtError(f"freeze_above needs a BERT-like encoder (model.encoder.layer); {type(model).__name__} "
                          "has none")
    if layer > len(blocks):
        raise ClirOtError(f"invalid configuration: freeze_above {layer} is above the student's {len(blocks)} layers")
    for block in list(blocks)[layer:]:
        block.requires_grad_(False)
    if getattr(model, "pooler", None) is not None:
        model.pooler.requires_grad_(False)


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


def make_optimizer(models: Models, cfg: DistillConfig):
    """AdamW over the trainable parameters, with a linear warm-up over ``warmup_steps`` then a linear decay to 0."""
    params = models.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def set_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_data(cfg: DistillConfig) -> TrainingData:
    """The configuration's training files, read, filtered (held-out verses) and audited."""
    return load_training_data(cfg.bitext, cfg.lexicon, cfg.lang, cfg.train_langs, cfg.exclude, cfg.code_switch_p,
                              cfg.code_switch_mode, cfg.use_bitext, cfg.max_malformed, cfg.max_content_fraction)
