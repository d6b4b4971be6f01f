r"""The linear map from the student's space to an unrelated teacher's space (``teacher_map: true``).

With a teacher whose embedding space is unrelated to the student's (``teacher: minilm`` for mE5), the
losses compare the teacher's English with :math:`W s` instead of the student's own states :math:`s`. The
map is used by the loss only; the saved student is the encoder alone.

:math:`W` is first fitted in closed form (ridge least squares) on English training sentences,

.. math::
    W = \arg\min_W \sum_i \lVert W s_i - t_i \rVert^2 + \lambda \lVert W \rVert_F^2
      = T^\top S \, (S^\top S + \lambda I)^{-1},
    \qquad \lambda = \text{RIDGE} \cdot \operatorname{tr}(S^\top S) / d,

where :math:`s_i` and :math:`t_i` are the student's and the teacher's sentence embeddings of the same
English sentence (eval mode, the training's maximum length, every prefix the training uses), then trained
with the student. Without the fit, a map learning at the student's rate barely moves in a few hundred
steps, and the losses pull the student itself into the teacher's space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models import Encoder

#: English sentences the map is fitted on (the first distinct ones of the training data, in its order)
FIT_SENTENCES = 2000
#: the next distinct sentences, not fitted on: the fit's cosine measured out of sample
HELD_OUT = 500
#: ridge strength, relative to the mean eigenvalue of SᵀS
RIDGE = 1e-2


def ridge_map(source: torch.Tensor, target: torch.Tensor, ridge: float = RIDGE) -> torch.Tensor:
    """:math:`W` (``target dim × source dim``) minimising ‖source Wᵀ − target‖² + λ‖W‖² (module docstring)."""
    gram = source.T @ source
    lam = ridge * torch.trace(gram) / gram.shape[0]
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + lam * eye, source.T @ target).T


def fit(teacher_map: torch.nn.Linear, student: Encoder, teacher: Encoder, english: Sequence[str],
        kinds: Sequence[str], max_length: int) -> dict:
    """Set ``teacher_map`` to the ridge fit on ``english`` (its first :data:`FIT_SENTENCES` distinct
    sentences, under each of ``kinds``); return what the fit achieved: the mean cosine between the teacher's
    embeddings and the student's, unmapped (where the dimensions agree) and mapped, on the fitted sentences
    and on the next :data:`HELD_OUT` distinct ones (``None`` when there are none)."""
    distinct = list(dict.fromkeys(english))
    texts, held = distinct[:FIT_SENTENCES], distinct[FIT_SENTENCES:FIT_SENTENCES + HELD_OUT]

    def embed(encoder: Encoder, sentences: list[str]) -> torch.Tensor:  # eval mode, the losses' truncation
        return torch.cat([torch.from_numpy(encoder.encode(sentences, k, max_length=max_length)).double()
                          for k in kinds])

    s, t = embed(student, texts), embed(teacher, texts)
    w = ridge_map(s, t)
    with torch.no_grad():
        teacher_map.weight.copy_(w.to(teacher_map.weight.dtype))
    report = {"sentences": len(texts), "held_out_sentences": len(held), "kinds": list(kinds), "ridge": RIDGE,
              "mean_cosine_mapped": _mean_cosine(s @ w.T, t),
              "mean_cosine_mapped_held_out": _mean_cosine(embed(student, held) @ w.T, embed(teacher, held))
              if held else None}
    if s.shape[1] == t.shape[1]:
        report["mean_cosine_unmapped"] = _mean_cosine(s, t)
    return report


def _mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    unit = torch.nn.functional.normalize
    return round(float((unit(a, dim=-1) * unit(b, dim=-1)).sum(-1).mean()), 6)
