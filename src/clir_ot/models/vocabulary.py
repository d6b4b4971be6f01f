"""A trimmed vocabulary: a model whose word embedding holds only some tokens' rows refuses every other token.

A vocabulary-trimmed copy of a model (:func:`clir_ot.models.e5s1.write_trimmed_e5s1`) keeps the word-embedding rows of
the tokens a set of texts uses; the others are zero. The word embedding is frozen in distillation, so on texts made
of kept tokens the trimmed and the full model compute the same numbers. A token outside the kept set would silently
read a zero row; instead, :func:`restrict_vocabulary` makes the model's input embedding refuse it (a forward pre-hook
on the embedding, so that every path into the model is checked: encoding, training, probes), with one line.

The kept ids travel with the model: :func:`save_kept_tokens` writes them beside a saved model (``kept_tokens.json``)
and :func:`load_kept_tokens` restores the restriction when the folder is loaded again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

import torch

from ..errors import ClirOtError

KEPT_TOKENS_FILE = "kept_tokens.json"
_BUFFER = "kept_tokens"


class TokenOutsideVocabularyError(ClirOtError):
    """A text holds a token whose embedding row a vocabulary-trimmed model does not have."""


def _refuse_outside(module: torch.nn.Module, args: tuple) -> None:
    ids = args[0]
    kept = getattr(module, _BUFFER)[ids]
    if not bool(kept.all()):
        outside = sorted(set(ids[~kept].tolist()))
        raise TokenOutsideVocabularyError(
            f"token id(s) {', '.join(map(str, outside[:5]))}{' …' if len(outside) > 5 else ''} are outside this "
            f"model's trimmed vocabulary ({int(getattr(module, _BUFFER).sum()):,} tokens kept): the texts differ from "
            "those it was trimmed for; trim it for these texts or use the full model")


def used_token_ids(tokenizer, texts: Iterable[str], prefixes: Sequence[str] = ("",)) -> set[int]:
    """Every token id ``tokenizer`` gives ``texts``, each with each of ``prefixes`` (untruncated: a truncated text's
    ids are a subset), and its special tokens (padding included)."""
    ids = set(tokenizer.all_special_ids)
    texts = iter(texts)
    while chunk := list(islice(texts, 2000)):
        for prefix in prefixes:
            for row in tokenizer([prefix + t for t in chunk], truncation=False)["input_ids"]:
                ids.update(row)
    return ids


def restrict_vocabulary(model: torch.nn.Module, kept_ids: Iterable[int]) -> None:
    """Make ``model``'s input embedding refuse every token id not in ``kept_ids``
    (:class:`TokenOutsideVocabularyError`). The mask is a buffer of the embedding, so it follows the model to a
    device and into a deep copy."""
    embedding = model.get_input_embeddings()
    ids = torch.as_tensor(sorted(set(kept_ids)), dtype=torch.long)
    if ids.numel() == 0 or ids[0] < 0 or ids[-1] >= embedding.num_embeddings:
        raise ClirOtError(f"kept token ids must lie in 0..{embedding.num_embeddings - 1}")
    mask = torch.zeros(embedding.num_embeddings, dtype=torch.bool, device=embedding.weight.device)
    mask[ids.to(mask.device)] = True
    if hasattr(embedding, _BUFFER):
        setattr(embedding, _BUFFER, mask)
        return
    embedding.register_buffer(_BUFFER, mask, persistent=False)
    embedding.register_forward_pre_hook(_refuse_outside)


def kept_token_ids(model: torch.nn.Module) -> list[int] | None:
    """The ids ``model`` is restricted to, or ``None`` for a full vocabulary."""
    mask = getattr(model.get_input_embeddings(), _BUFFER, None)
    return None if mask is None else torch.nonzero(mask).flatten().tolist()


def save_kept_tokens(model: torch.nn.Module, directory: Path) -> None:
    """Write ``kept_tokens.json`` into a saved model's ``directory`` where ``model`` is restricted."""
    ids = kept_token_ids(model)
    if ids is not None:
        (Path(directory) / KEPT_TOKENS_FILE).write_text(json.dumps({"kept": len(ids), "ids": ids}) + "\n",
                                                        encoding="utf-8")


def load_kept_tokens(model: torch.nn.Module, directory: Path) -> None:
    """Restrict ``model`` to the ids of ``directory/kept_tokens.json`` where that file exists."""
    path = Path(directory) / KEPT_TOKENS_FILE
    if not path.is_file():
        return
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))["ids"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClirOtError(f"{path} is damaged ({type(exc).__name__}): the model's trimmed vocabulary is "
                          "unknown") from None
    restrict_vocabulary(model, ids)
