"""A text encoder: a Hugging Face model + tokenizer + pooling, prefixes and normalisation.

``Encoder.encode(texts, kind="query"|"passage")`` gives L2-normalised sentence embeddings the way
each model expects (E5: "query: " / "passage: " prefixes, mean pooling). ``Encoder.token_embeddings``
gives the per-token states that OT distillation aligns. ``Encoder.save`` writes a
``save_pretrained`` directory with the tokenizer and ``clir_ot_encoder.json`` (the spec), which
:func:`clir_ot.models.load_encoder` reads back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .heap import keep_freed_memory
from .pooling import POOLINGS, pool
from .precision import PRECISIONS, precision_choice
from .recipes import RECIPES, recipe_for
from .vocabulary import save_kept_tokens

SPEC_FILE = "clir_ot_encoder.json"
#: padded tokens per encoding batch: 2,048 (32 × 64) encoded me5-small 1.5× faster than 32 texts a batch on
#: yo passages (2-core Intel Xeon; see the README's benchmarks)
BATCH_TOKENS = 2048
Kind = Literal["query", "passage", "plain"]


@dataclass
class EncoderSpec:
    """How to turn text into an embedding with a given model."""

    pooling: str = "mean"
    query_prefix: str = ""
    passage_prefix: str = ""
    normalize: bool = True
    max_length: int = 512
    label: str = ""

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; expected one of {POOLINGS}")

    def prefix(self, kind: Kind) -> str:
        return {"query": self.query_prefix, "passage": self.passage_prefix, "plain": ""}[kind]

    @classmethod
    def read(cls, directory: Path) -> EncoderSpec | None:
        path = Path(directory) / SPEC_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def write(self, directory: Path) -> None:
        (Path(directory) / SPEC_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


class Encoder(torch.nn.Module):
    """Model + tokenizer + :class:`EncoderSpec`."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, spec: EncoderSpec,
                 source: str = "") -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.source = source
        self.precision = "fp32"
        #: the key of the recipe that ran (:data:`~clir_ot.models.recipes.RECIPES`): saved results and cache
        #: entries are filed under it
        self.recipe = RECIPES["fp32"].key

    def set_precision(self, precision: str) -> Encoder:
        """Run at ``precision``: ``fp32``, ``bf16`` or ``int8``, each a recipe of :mod:`~clir_ot.models.recipes`
        (its docstring says what it does and its fidelity bound), or ``auto``
        (:func:`~clir_ot.models.precision.precision_choice` for this encoder's device). :attr:`recipe` keeps the
        key of the recipe that ran (:func:`~clir_ot.models.recipes.recipe_for`: on a CPU, bf16 for a model whose
        code does not dispatch through transformers' attention registry keeps its own attention). Returns
        ``self``."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
        precision = precision_choice(precision, self.device.type)["precision"]
        recipe = recipe_for(precision, self.device.type, self.model)
        self.model = recipe.apply(self.model, self.device)
        self.precision, self.recipe = precision, recipe.key
        return self

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters(), torch.empty(0)).device

    def tokenize(self, texts: Sequence[str], kind: Kind, max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Tokenise with the kind's prefix, padding to the longest text of the batch."""
        prefix = self.spec.prefix(kind)
        batch = self.tokenizer([prefix + t for t in texts], padding=True, truncation=True,
                               max_length=max_length or self.spec.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def token_embeddings(self, batch: dict[str, torch.Tensor], layer: int = -1) -> torch.Tensor:
        """Hidden states ``(B, L, H)`` of ``layer`` (-1 = last; 0 = embedding output)."""
        out = self.model(**batch, output_hidden_states=layer != -1)
        return out.last_hidden_state if layer == -1 else out.hidden_states[layer]

    def sentence_embeddings(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emb = pool(tokens, mask, self.spec.pooling)
        return torch.nn.functional.normalize(emb, dim=-1) if self.spec.normalize else emb

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled (and, per the spec, normalised) float32 embeddings; bf16 token states are pooled in float32."""
        return self.sentence_embeddings(self.token_embeddings(batch).float(), batch["attention_mask"])

    def token_ids(self, texts: Sequence[str], kind: Kind, max_length: int | None = None) -> list[list[int]]:
        """Token ids of ``texts`` with the kind's prefix, truncated to ``max_length`` (default: the spec's
        maximum), tokenised in one call (the fast tokenizers run it in parallel), unpadded."""
        prefix = self.spec.prefix(kind)
        return self.tokenizer([prefix + t for t in texts], truncation=True,
                              max_length=max_length or self.spec.max_length, return_attention_mask=False)["input_ids"]

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], kind: Kind = "passage", batch_size: int = 32,
               sort_by_length: bool = True, on_batch: Callable[[int], None] | None = None,
               batch_tokens: int = BATCH_TOKENS, max_length: int | None = None) -> np.ndarray:
        """Embed ``texts`` (float32 ``(N, H)``), in input order, each truncated to ``max_length`` tokens
        (default: the spec's maximum).

        The texts are tokenised once, in bulk, and (``sort_by_length``) taken longest first by token count, so
        that a batch pads little; a batch holds at most ``batch_size`` texts and at most ``batch_tokens``
        padded tokens (one text at least), which keeps long passages in small batches whose activations stay
        in the CPU's caches. On a CPU, freed activations stay in the process's heap
        (:func:`~clir_ot.models.heap.keep_freed_memory`). ``on_batch(n)`` reports progress.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.device.type == "cpu":
            keep_freed_memory()
        was_training = self.model.training
        self.model.eval()
        ids = self.token_ids(texts, kind, max_length)
        order = np.argsort([-len(i) for i in ids], kind="stable") if sort_by_length else np.arange(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            longest = max(len(ids[i]) for i in order[start:start + batch_size])
            idx = order[start:start + max(1, min(batch_size, batch_tokens // longest))]
            start += len(idx)
            padded = self.tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            out[idx] = self({k: padded[k].to(self.device) for k in ("input_ids", "attention_mask")}).cpu().numpy()
            if on_batch is not None:
                on_batch(len(idx))
        self.model.train(was_training)
        return out

    def save(self, directory: Path) -> None:
        """A folder that clir-ot, ``transformers`` and sentence-transformers load as it is: the model, the
        tokenizer (its ``model_max_length`` set to the spec's maximum; no truncation or padding of its own, so that
        the files do not depend on what the tokenizer encoded last), the spec, and the sentence-transformers
        modules (Transformer, Pooling, Normalize) with the spec's prefixes as named prompts."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        max_length = min(self.spec.max_length, self._position_limit())
        self.tokenizer.model_max_length = max_length
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # the last call's truncation and padding are not the tokenizer's: saved as none
            backend.no_truncation()
            backend.no_padding()
        self.tokenizer.save_pretrained(directory)
        self.spec.write(directory)
        save_kept_tokens(self.model, directory)
        write_sentence_transformers_config(directory, self.spec, self.dim, max_length)

    def _position_limit(self) -> int:
        """Longest input the position embeddings allow (RoBERTa-style models reserve padding_idx + 1 slots)."""
        config = self.model.config
        positions = int(getattr(config, "max_position_embeddings", self.spec.max_length))
        offset = int(config.pad_token_id) + 1 if getattr(config, "model_type", "") in ("xlm-roberta", "roberta") \
            and config.pad_token_id is not None else 0
        return positions - offset


def write_sentence_transformers_config(directory: Path, spec: EncoderSpec, dim: int, max_length: int) -> None:
    """The sentence-transformers module files (the layout every version since 2 reads): the model folder is
    module 0 (``sentence_bert_config.json``: maximum length), then pooling, then L2 normalisation; the E5
    prefixes are the prompts ``query`` and ``document`` (the names ``encode_query`` / ``encode_document``
    and mteb use)."""
    directory = Path(directory)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if spec.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": dim, "pooling_mode_cls_token": spec.pooling == "cls",
               "pooling_mode_mean_tokens": spec.pooling == "mean", "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
               "pooling_mode_lasttoken": False, "include_prompt": True}
    prompts = {name: prefix for name, prefix in (("query", spec.query_prefix), ("document", spec.passage_prefix))
               if prefix}
    files = {"modules.json": modules, "sentence_bert_config.json": {"max_seq_length": max_length,
                                                                    "do_lower_case": False},
             "1_Pooling/config.json": pooling,
             "config_sentence_transformers.json": {"prompts": prompts, "default_prompt_name": None,
                                                   "similarity_fn_name": "cosine"}}
    (directory / "1_Pooling").mkdir(exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
