"""Which tokens carry mass in an OT plan (shared by the objective, the probes and the heatmaps)."""

from __future__ import annotations

import torch

from ..models.encoder import Encoder


def mass_mask(encoder: Encoder, batch: dict[str, torch.Tensor], kind: str, keep_special: bool) -> torch.Tensor:
    """Tokens that carry OT mass: real tokens, minus special tokens and prefix tokens unless kept."""
    mask = batch["attention_mask"].bool()
    if keep_special:
        return mask
    special = torch.tensor(sorted(set(encoder.tokenizer.all_special_ids)), device=mask.device)
    mask = mask & ~torch.isin(batch["input_ids"], special)
    prefix = encoder.spec.prefix(kind)
    if prefix:
        n_prefix = len(encoder.tokenizer(prefix.strip(), add_special_tokens=False)["input_ids"])
        first = int(batch["input_ids"][0, 0].item() in special.tolist())
        mask[:, first:first + n_prefix] = False
    return mask
