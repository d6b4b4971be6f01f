"""Token-alignment probe: does a student's x token land on the translation of the English word?

On held-out verse pairs (bible-clir's books, never trained on: English KJV ↔ x), for every English word
``w`` that has a lexicon translation present as a word of the x verse (FreeDict: the demo lexicon for
de/fr/es/ru, the probe lexicon for sw/hi), two partners of ``w`` among the x words:

- **OT partner**: the x word that receives most of ``w``'s mass in the entropic OT plan between the
  teacher's English token embeddings and the student's x token embeddings (cost 1 − cos, uniform
  masses over real tokens, the training regularisation) — summed over the words' subword tokens;
- **nearest partner**: the x word whose mean student token embedding is nearest (cosine) to ``w``'s mean
  teacher token embedding.

A partner is a hit when it is one of ``w``'s lexicon translations (case-folded). The probe reports the
share of hits of each kind per language and every word's hit (the report bootstraps over them). This is
OT's own ground: the OT loss optimises exactly the plan whose partners are counted.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import torch

from ..data import bible
from ..data.lexicon import read_lexicon
from ..data.training import DEMO_LEXICON, PROBE_LEXICON, resolve_data_path
from ..models.encoder import Encoder
from .losses import cosine_cost, token_masses
from .masks import mass_mask
from .sinkhorn import sinkhorn

_WORD = re.compile(r"\w+")
#: ``(english verse, x verse, ((english word, its translations), ...))``
ProbePair = tuple[str, str, tuple[tuple[str, frozenset[str]], ...]]
PAIRS_PER_LANGUAGE = 200


@cache
def _lexicon() -> dict[str, dict[str, frozenset[str]]]:
    """Single-word translations, case-folded, of both embedded lexicons: ``{lang: {english: {x, ...}}}``."""
    out: dict[str, dict[str, frozenset[str]]] = {}
    for spec in (DEMO_LEXICON, PROBE_LEXICON):
        for lang, table in read_lexicon(resolve_data_path(spec)[0]).entries.items():
            section = out.setdefault(lang, {})
            for en, xs in table.items():
                words = frozenset(x.casefold() for x in xs if len(x.split()) == 1)
                if words:
                    section[en.casefold()] = section.get(en.casefold(), frozenset()) | words
    return out


def probe_languages() -> list[str]:
    return sorted(_lexicon())


@cache
def probe_pairs(lang: str, limit: int = PAIRS_PER_LANGUAGE) -> tuple[ProbePair, ...]:
    """Up to ``limit`` held-out verse pairs (canonical order) with their candidate words: ``(en, x,
    ((english word, its translations), ...))``, each English word at most once per verse."""
    lexicon = _lexicon().get(lang, {})
    english = bible.read_edition(bible.EDITIONS["en"], bible.HELD_OUT_BOOKS)
    other = bible.read_edition(bible.EDITIONS[lang], bible.HELD_OUT_BOOKS)
    out = []
    for ref, en in english.items():
        x = other.get(ref, "")
        if bible.is_empty(en) or bible.is_empty(x):
            continue
        x_words = {w.casefold() for w in _WORD.findall(x)}
        candidates = {}
        for w in _WORD.findall(en):
            translations = lexicon.get(w.casefold())
            if translations and translations & x_words and w.casefold() not in candidates:
                candidates[w.casefold()] = translations
        if candidates:
            out.append((en, x, tuple(candidates.items())))
            if len(out) >= limit:
                break
    return tuple(out)


def _words(encoder: Encoder, text: str, kind: str, layer: int = -1, max_length: int = 128):
    """Token states of ``text`` (with the kind's prefix) at ``layer`` (-1: the last), the mass mask, and each
    word's token indices."""
    prefix = encoder.spec.prefix(kind)
    enc = encoder.tokenizer(prefix + text, truncation=True, max_length=max_length, return_offsets_mapping=True,
                            return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    batch = {k: v.to(encoder.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    mask = mass_mask(encoder, batch, kind, keep_special=False)[0]
    tokens = encoder.token_embeddings(batch, layer)[0]
    words: list[tuple[str, list[int]]] = []
    for match in _WORD.finditer(text):
        start, end = match.start() + len(prefix), match.end() + len(prefix)
        idx = [i for i, (s, e) in enumerate(offsets) if mask[i] and s < end and e > start]
        if idx:
            words.append((match.group().casefold(), idx))
    return tokens, mask, words


@torch.no_grad()
def token_alignment_probe(student: Encoder, teacher: Encoder, langs: list[str], reg: float = 0.05,
                          kind: str = "passage", limit: int = PAIRS_PER_LANGUAGE, teacher_layer: int = -1,
                          student_layer: int = -1) -> dict[str, dict]:
    """``{lang: {"ot", "nearest": share of hits, "words", "pairs", "ot_hits", "nearest_hits": 1.0 / 0.0 per
    candidate word}}`` for the languages of ``langs`` that have a probe lexicon, with the teacher's and the
    student's token states read at ``teacher_layer`` and ``student_layer`` (the layers a condition aligned)."""
    results = {}
    for lang in [x for x in langs if x in _lexicon()]:
        ot_hits, near_hits = [], []
        pairs = probe_pairs(lang, limit)
        for en, x, candidates in pairs:
            t_tok, t_mask, en_words = _words(teacher, en, kind, teacher_layer)
            s_tok, s_mask, x_words = _words(student, x, kind, student_layer)
            if not en_words or not x_words:
                continue
            C = cosine_cost(t_tok[None], s_tok[None])
            P = sinkhorn(token_masses(t_mask[None]), token_masses(s_mask[None]), C, reg, num_iter=500,
                         stop_thr=1e-6, warn=False)[0]
            s_norm = torch.nn.functional.normalize(torch.stack([s_tok[i].mean(0) for _, i in x_words]).float(), dim=-1)
            by_word = dict(en_words)
            for w, translations in candidates:
                if w not in by_word:
                    continue
                rows = by_word[w]
                mass = torch.stack([P[rows][:, cols].sum() for _, cols in x_words])
                t_mean = torch.nn.functional.normalize(t_tok[rows].mean(0).float(), dim=-1)
                ot_hits.append(float(x_words[int(mass.argmax())][0] in translations))
                near_hits.append(float(x_words[int((s_norm @ t_mean).argmax())][0] in translations))
        results[lang] = {"pairs": len(pairs), "words": len(ot_hits), "ot_hits": ot_hits, "nearest_hits": near_hits,
                         "ot": float(np.mean(ot_hits)) if ot_hits else float("nan"),
                         "nearest": float(np.mean(near_hits)) if near_hits else float("nan")}
    return results
