"""Distillation losses in the style of sentence-transformers' loss modules.

Each loss is its math on plain tensors (``compute_loss_from_embeddings``), testable without models; the
encodings it is given come from :mod:`clir_ot.distill.objective`, which runs the forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .sinkhorn import GradMode, plan_entropy, sinkhorn


def token_masses(mask: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Marginal of each sequence: ``mask`` (1 = real token that carries mass) times optional
    ``weights`` (e.g. IDF), normalised to sum to 1 per row; all-zero rows stay zero."""
    w = mask.float() if weights is None else mask.float() * weights.float()
    return w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)


def cosine_cost(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r""":math:`C_{ij} = 1 - \cos(t_i, s_j)` for ``t: (B, n, d)`` and ``s: (B, m, d)`` → ``(B, n, m)``."""
    t = nn.functional.normalize(t.float(), dim=-1)
    s = nn.functional.normalize(s.float(), dim=-1)
    return 1.0 - t @ s.transpose(1, 2)


@dataclass
class OTOutput:
    loss: torch.Tensor  # scalar, mean over the batch of <P*, C>
    plan: torch.Tensor  # (B, n, m)
    cost: torch.Tensor  # (B, n, m)
    entropy: torch.Tensor  # (B,) entropy of each normalised plan
    n_iter: int
    err: float


class OTAlignmentLoss(nn.Module):
    r"""Optimal-transport token alignment loss (OPTICAL).

    The teacher's token embeddings of the English side :math:`t_1..t_n` and the student's token
    embeddings of the translated or code-switched side :math:`s_1..s_m` are compared with
    :math:`C_{ij} = 1 - \cos(t_i, s_j)`; the entropic OT plan :math:`P^\star` between the token
    masses :math:`a` and :math:`b` (uniform over real tokens or IDF-weighted; padding and, by default,
    special tokens carry zero mass) is a soft token alignment, and

    .. math:: \mathcal{L}_{OT} = \frac{1}{B} \sum_{\text{pairs}} \langle P^\star, C \rangle_F .

    Args:
        reg: entropic regularisation ε of Sinkhorn (> 0).
        num_iter: Sinkhorn iteration limit; ``stop_thr``: marginal-error threshold.
        grad_mode: ``"envelope"`` (plan constant: exact gradient of the regularised OT value) or
            ``"autodiff"`` (through the iterations).
        reg_m: τ of the unbalanced (KL-relaxed) variant; ``None`` = balanced.

    References:
        Z. Huang, P. Yu, J. Allan. "Improving Cross-lingual Information Retrieval on Low-Resource
        Languages via Optimal Transport Distillation". WSDM 2023. arXiv:2301.12566.

    Requirements:
        Teacher and student token embeddings of the same dimension.

    Inputs:
        +------------------------------------+--------------------------------------------+
        | Texts                              | Teacher side                               |
        +====================================+============================================+
        | (English, translation/code-switch) | teacher tokens of English (frozen)         |
        +------------------------------------+--------------------------------------------+

    Relations:
        :class:`MSEDistillLoss` matches pooled sentence embeddings instead of token sets; with
        ``reg → 0`` this loss approaches the exact OT (earth mover's) distance between token sets.

    Example:
        >>> loss = OTAlignmentLoss(reg=0.1)
        >>> t = torch.randn(2, 5, 8); s = torch.randn(2, 7, 8)
        >>> mt = torch.ones(2, 5); ms = torch.ones(2, 7)
        >>> out = loss.compute_loss_from_embeddings(t, token_masses(mt), s, token_masses(ms))
        >>> bool(0.0 <= out.loss <= 2.0)
        True
    """

    def __init__(self, reg: float = 0.05, num_iter: int = 100, stop_thr: float = 1e-4,
                 grad_mode: GradMode = "envelope", reg_m: float | None = None) -> None:
        super().__init__()
        if reg <= 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        self.reg, self.num_iter, self.stop_thr, self.grad_mode, self.reg_m = reg, num_iter, stop_thr, grad_mode, reg_m

    def compute_loss_from_embeddings(self, teacher_tokens: torch.Tensor, teacher_mass: torch.Tensor,
                                     student_tokens: torch.Tensor, student_mass: torch.Tensor) -> OTOutput:
        cost = cosine_cost(teacher_tokens.detach(), student_tokens)
        plan, info = sinkhorn(teacher_mass, student_mass, cost, self.reg, num_iter=self.num_iter,
                              stop_thr=self.stop_thr, grad_mode=self.grad_mode, reg_m=self.reg_m, log=True,
                              warn=False)
        per_pair = (plan * cost).sum(dim=(1, 2))
        return OTOutput(per_pair.mean(), plan, cost, plan_entropy(plan.detach()), info["n_iter"], info["err"])

    @property
    def citation(self) -> str:
        return """@inproceedings{huang2023optical,
  title = {Improving Cross-lingual Information Retrieval on Low-Resource Languages via Optimal Transport Distillation},
  author = {Huang, Zhiqi and Yu, Puxuan and Allan, James},
  booktitle = {WSDM}, year = {2023}, note = {arXiv:2301.12566}
}"""


class MSEDistillLoss(nn.Module):
    r"""Multilingual knowledge distillation (Reimers & Gurevych 2020).

    With the teacher's sentence embedding :math:`T(en)` of the English side and the student's
    embeddings of both sides,

    .. math:: \mathcal{L}_{KD} = \lVert S(en) - T(en) \rVert^2 + \lVert S(x) - T(en) \rVert^2

    averaged over the batch (squared Euclidean distances, i.e. ``nn.MSELoss`` × dimension). The English
    term matters: it keeps the student's English where the teacher's is (the official script once left it
    out).

    References:
        N. Reimers, I. Gurevych. "Making Monolingual Sentence Embeddings Multilingual using Knowledge
        Distillation". EMNLP 2020. arXiv:2004.09813.

    Inputs:
        +--------------------------+-----------------------------------+
        | Texts                    | Teacher side                      |
        +==========================+===================================+
        | (English, translation)   | teacher sentence embedding of en  |
        +--------------------------+-----------------------------------+

    Relations:
        :class:`OTAlignmentLoss` aligns token sets instead of pooled embeddings.

    Example:
        >>> t = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
        >>> MSEDistillLoss().compute_loss_from_embeddings(t, t, t).item()
        0.0
    """

    def compute_loss_from_embeddings(self, teacher_en: torch.Tensor, student_en: torch.Tensor | None,
                                     student_x: torch.Tensor | None) -> torch.Tensor:
        target = teacher_en.detach().float()
        loss = target.new_zeros(())
        if student_en is not None:
            loss = loss + ((student_en.float() - target) ** 2).sum(-1).mean()
        if student_x is not None:
            loss = loss + ((student_x.float() - target) ** 2).sum(-1).mean()
        return loss

    @property
    def citation(self) -> str:
        return """@inproceedings{reimers2020multilingual,
  title = {Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation},
  author = {Reimers, Nils and Gurevych, Iryna},
  booktitle = {EMNLP}, year = {2020}, note = {arXiv:2004.09813}
}"""
