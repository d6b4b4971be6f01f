"""Pooling of token embeddings into sentence embeddings."""

from __future__ import annotations

import torch

POOLINGS = ("mean", "cls")


def mean_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Average of the token embeddings over the attention mask.

    .. math:: e = \frac{\sum_i m_i h_i}{\max(1, \sum_i m_i)}
    """
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)


def cls_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's embedding ([CLS] / <s>)."""
    return tokens[:, 0]


def pool(tokens: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "mean":
        return mean_pool(tokens, mask)
    if mode == "cls":
        return cls_pool(tokens, mask)
    raise ValueError(f"unknown pooling {mode!r}; expected one of {POOLINGS}")
