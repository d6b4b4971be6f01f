r"""The training objective as data: a weighted sum of named terms.

Each term is a function of one forward pass (:class:`Forward`, which runs only the encodings the
terms ask for):

- ``ot``:    :math:`\langle P^\star, C\rangle_F` between the teacher's English token states and the
  student's token states of x (OPTICAL; :class:`~clir_ot.distill.losses.OTAlignmentLoss`)
- ``kd_x``:  :math:`\lVert S(x) - T(en) \rVert^2` (pooled embeddings, batch mean; Reimers & Gurevych 2020)
- ``kd_en``: :math:`\lVert S(en) - T(en) \rVert^2` — KD's English term, which is also the *retention*
  term that keeps the student's own English where the teacher's is.
- ``kd_layer``: :math:`\lVert S_L(x) - T_{L'}(en) \rVert^2 + \lVert S_L(en) - T_{L'}(en) \rVert^2` — KD at the
  layers OT aligns (``student_layer`` L, ``teacher_layer`` L'): each encoder's own pooling (mean over the
  attention mask, then normalised, for E5) of its hidden states at that layer. Its gradient reaches only the
  student's layers ≤ L; at the last layer it equals ``kd_en + kd_x``.

Methods are shorthands for the common mixes (weights from the config's ``*_weight`` fields):

=========  ===============================================================
``kd``     kd_weight · (kd_en + kd_x)
``ot``     ot_weight · ot + retention_weight · kd_en
``ot+kd``  ot_weight · ot + kd_weight · (kd_en + kd_x)
``kd-layer`` kd_weight · kd_layer + retention_weight · kd_en — KD at OT's layer with OT's retention term:
           with ``student_layer``/``teacher_layer`` set, the same as ``ot`` but for the alignment term
``noise``  retention_weight · kd_en — the control: same data, optimiser, prefixes and budget, no
           cross-lingual signal. With the self-teacher, S = T at step 0, so its updates come from
           dropout alone: it measures what *any* update costs.
=========  ===============================================================

An explicit ``objective: {term: weight}`` replaces the method's mix. A new loss is one function added
to :data:`TERMS` (plus YAML naming it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from .losses import token_masses
from .masks import mass_mask
from .methods import resolve_mix

if TYPE_CHECKING:
    from .components import Models
    from .config import DistillConfig

class Forward:
    """The encodings of one batch that the objective's terms share, each computed once and only when asked
    for (teacher English under ``no_grad``; student x; student English, in that order)."""

    def __init__(self, models: Models, cfg: DistillConfig, en: list[str], x: list[str], kind: str) -> None:
        self.models, self.cfg, self.en, self.x, self.kind = models, cfg, en, x, kind

    #: each encoding: ``(batch, token states at the configured layer, sentence embedding from the last layer)``

    def _encode(self, encoder, texts: list[str], layer: int, mapped: bool = False):
        batch = encoder.tokenize(texts, self.kind, self.cfg.max_length)
        out = encoder.model(**batch, output_hidden_states=layer != -1)
        tokens = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        sentence = encoder.sentence_embeddings(out.last_hidden_state, batch["attention_mask"])
        teacher_map = self.models.teacher_map
        if mapped and teacher_map is not None:  # the student's states in the teacher's space (loss only)
            tokens = teacher_map(tokens)
            sentence = torch.nn.functional.normalize(teacher_map(sentence), dim=-1)
        return batch, tokens, sentence

    @cached_property
    def teacher_en(self):
        with torch.no_grad():
            return self._encode(self.models.teacher, self.en, self.cfg.teacher_layer)

    @cached_property
    def student_x(self):
        return self._encode(self.models.student, self.x, self.cfg.student_layer, mapped=True)

    @cached_property
    def student_en(self):
        return self._encode(self.models.student, self.en, self.cfg.student_layer, mapped=True)


Term = Callable[[Forward], tuple[torch.Tensor, dict]]


def ot_term(fw: Forward) -> tuple[torch.Tensor, dict]:
    models, cfg = fw.models, fw.cfg
    t_batch, t_tok, _ = fw.teacher_en
    s_batch, s_tok, _ = fw.student_x
    t_mask = mass_mask(models.teacher, t_batch, fw.kind, cfg.ot_special_tokens)
    s_mask = mass_mask(models.student, s_batch, fw.kind, cfg.ot_special_tokens)
    t_w = models.idf_teacher[t_batch["input_ids"]] if models.idf_teacher is not None else None
    s_w = models.idf_student[s_batch["input_ids"]] if models.idf_student is not None else None
    ot = models.ot.compute_loss_from_embeddings(t_tok, token_masses(t_mask, t_w), s_tok, token_masses(s_mask, s_w))
    return ot.loss, {"ot_cost": ot.loss.item(), "plan_entropy": ot.entropy.mean().item(),
                     "sinkhorn_iters": ot.n_iter, "sinkhorn_err": ot.err}


def kd_x_term(fw: Forward) -> tuple[torch.Tensor, dict]:
    loss = fw.models.kd.compute_loss_from_embeddings(fw.teacher_en[2], None, fw.student_x[2])
    return loss, {"kd_x": loss.item()}


def kd_en_term(fw: Forward) -> tuple[torch.Tensor, dict]:
    loss = fw.models.kd.compute_loss_from_embeddings(fw.teacher_en[2], fw.student_en[2], None)
    return loss, {"kd_en": loss.item()}


def kd_layer_term(fw: Forward) -> tuple[torch.Tensor, dict]:
    models = fw.models
    (t_batch, t_tok, _), (x_batch, x_tok, _), (e_batch, e_tok, _) = fw.teacher_en, fw.student_x, fw.student_en
    pooled = [encoder.sentence_embeddings(tokens, batch["attention_mask"]) for encoder, batch, tokens in (
        (models.teacher, t_batch, t_tok), (models.student, x_batch, x_tok), (models.student, e_batch, e_tok))]
    if models.teacher_map is not None:  # the mapped student states are pooled in the teacher's space
        pooled[1:] = [torch.nn.functional.normalize(p, dim=-1) for p in pooled[1:]]
    loss = models.kd.compute_loss_from_embeddings(pooled[0], pooled[2], pooled[1])
    return loss, {"kd_layer": loss.item()}


#: The registered terms: name → function of a :class:`Forward` returning (loss, values to log).
TERMS: dict[str, Term] = {"ot": ot_term, "kd_x": kd_x_term, "kd_en": kd_en_term, "kd_layer": kd_layer_term}
#: What each term encodes, so the forward passes run in one fixed order whatever the mix.
_NEEDS = {"ot": ("student_x",), "kd_x": ("student_x",), "kd_en": ("student_en",),
          "kd_layer": ("student_x", "student_en")}


def resolve(cfg: DistillConfig) -> dict[str, float]:
    """``{term: weight}`` of ``cfg``: its explicit ``objective``, else its method's mix with the weight fields
    (terms of weight 0 are dropped)."""
    return resolve_mix(cfg.method, cfg.objective, cfg)


def uses_ot(cfg: DistillConfig) -> bool:
    """Whether ``cfg`` trains with the OT term: asked of the resolved objective, never of ``method`` alone."""
    return "ot" in resolve(cfg)


def compute(models: Models, cfg: DistillConfig, en: list[str], x: list[str], kind: str) -> dict:
    """One forward pass: ``{"loss": total, <term values and OT diagnostics>, "tokens": n}``."""
    weights = resolve(cfg)
    fw = Forward(models, cfg, en, x, kind)
    _ = fw.teacher_en
    for part in ("student_x", "student_en"):  # fixed order: dropout draws do not depend on the mix's order
        if any(part in _NEEDS[t] for t in weights):
            getattr(fw, part)
    total = fw.teacher_en[2].new_zeros((), dtype=torch.float32)
    logged: dict = {}
    for term, weight in weights.items():
        loss, values = TERMS[term](fw)
        total = total + weight * loss
        logged.update(values)
    tokens = int(fw.teacher_en[0]["attention_mask"].sum())
    if "student_x" in fw.__dict__:
        tokens += int(fw.student_x[0]["attention_mask"].sum())
    return {"loss": total, **logged, "tokens": tokens}
