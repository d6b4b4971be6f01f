"""Training data for distillation: audited bitext + code-switched English, in a deterministic order.

``load_training_data`` reads every file, removes every row that holds a verse of bible-clir's held-out
books (by reference or normalised text: :mod:`clir_ot.data.bible`; counted in the manifest), audits
it against the excluded languages *before* anything else happens (see :mod:`clir_ot.data.exclusion`),
and returns a :class:`TrainingData` whose
``examples(seed, epoch)`` yields (English, other side) pairs: the translation from the bitext and a
code-switched version of the English sentence, in training languages only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import ClirOtError
from ..languages import normalize_language
from ..resources import resource_path
from . import exclusion
from .bitext import DEFAULT_MAX_MALFORMED, Bitext, read_bitext
from .codeswitch import CodeSwitcher, Mode
from .lexicon import Lexicon, read_lexicon

EMBEDDED_PREFIX = "embedded:"
DEMO_BITEXT = "embedded:bitext_demo.tsv.gz"
DEMO_LEXICON = "embedded:lexicon_demo.json.gz"
UDHR_PROBE = "embedded:udhr_paragraphs.tsv.gz"
#: en→sw/hi from FreeDict, English words of bible-clir's held-out verses only: the token-alignment probe's
#: lexicon for unseen languages (evaluation languages: refused for training by the exclusion audit)
PROBE_LEXICON = "embedded:lexicon_probe.json.gz"


def resolve_data_path(spec: str) -> tuple[Path, str | None]:
    """``"path"``, ``"path:lang"`` or ``"embedded:name"`` → (path, declared language)."""
    if spec.startswith(EMBEDDED_PREFIX):
        path = resource_path("bitext", spec[len(EMBEDDED_PREFIX):])
        if not path.is_file():
            raise ClirOtError(f"no embedded data file {spec!r}; embedded: {DEMO_BITEXT}, {DEMO_LEXICON}, {UDHR_PROBE}, "
                              f"{PROBE_LEXICON}")
        return path, None
    head, sep, tail = spec.rpartition(":")
    if sep and head and not Path(spec).exists() and normalize_language(tail) is not None:
        return Path(head), normalize_language(tail)
    return Path(spec), None


class TrainingExample(NamedTuple):
    en: str
    x: str
    kind: str  # "bitext" | "codeswitch"
    lang: str  # language of x ("mix" for multilingual code-switching)


@dataclass
class TrainingData:
    bitexts: list[Bitext]
    lexicon: Lexicon | None
    train_langs: list[str]
    excluded: list[str]
    audits: list[exclusion.FileAudit]
    code_switch_p: float = 0.5
    code_switch_mode: Mode = "bilingual"
    use_bitext: bool = True
    switcher: CodeSwitcher | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.lexicon is not None and self.code_switch_p > 0:
            cs_langs = [lang for lang in self.train_langs if lang in self.lexicon.entries]
            exclusion.check_code_switch_targets(cs_langs, self.excluded)
            if cs_langs:
                self.switcher = CodeSwitcher(self.lexicon, cs_langs, self.code_switch_p, self.code_switch_mode)

    @property
    def pairs(self):
        return [p for b in self.bitexts for p in b.pairs if p.lang in self.train_langs]

    def examples(self, seed: int, epoch: int = 0) -> Iterator[TrainingExample]:
        """Shuffled (seed, epoch) pairs; each bitext pair yields its translation and a code-switched copy."""
        pairs = self.pairs
        order = list(range(len(pairs)))
        random.Random(f"order:{seed}:{epoch}").shuffle(order)
        cs_rng = random.Random(f"codeswitch:{seed}:{epoch}")
        for i in order:
            p = pairs[i]
            if self.use_bitext:
                yield TrainingExample(p.en, p.x, "bitext", p.lang)
            if self.switcher is not None:
                cs = self.switcher(p.en, cs_rng)
                lang = cs.languages[0] if len(set(cs.languages)) == 1 else "mix"
                yield TrainingExample(p.en, cs.text, "codeswitch", lang)

    def key(self) -> str:
        """A hash of what the examples are made of: the files' contents, the rows kept from each, the held-out
        filter and the lexicon — a distillation is reused only when this is unchanged."""
        from ..artifacts import config_hash
        from .bible import held_out_identity

        return config_hash({"bitext": [(b.sha256, len(b.pairs), b.held_out_removed) for b in self.bitexts],
                            "lexicon": self.lexicon.sha256 if self.lexicon else None,
                            "held_out": held_out_identity(), "languages": self.train_langs})

    def manifest(self) -> dict:
        """Training languages, excluded languages, data files with sha256 and row counts, the audit."""
        return {
            "key": self.key(),
            "training_languages": self.train_langs,
            "excluded_languages": self.excluded,
            "bitext": [b.summary() | {"rows_used": sum(p.lang in self.train_langs for p in b.pairs)}
                       for b in self.bitexts],
            "lexicon": self.lexicon.summary() if self.lexicon else None,
            "code_switching": {"p": self.code_switch_p, "mode": self.code_switch_mode,
                               "languages": self.switcher.langs if self.switcher else []},
            "audit": [a.to_dict() for a in self.audits],
        }


def load_training_data(bitext: list[str], lexicon: str | None, target_lang: str | None,
                       train_langs: list[str] | None = None, extra_excluded: list[str] = (),
                       code_switch_p: float = 0.5, code_switch_mode: Mode = "bilingual", use_bitext: bool = True,
                       max_malformed: float = DEFAULT_MAX_MALFORMED,
                       max_content_fraction: float = exclusion.DEFAULT_MAX_CONTENT_FRACTION) -> TrainingData:
    """Read and audit training files; raise :class:`ExclusionError` before training can start."""
    excluded = exclusion.excluded_languages(target_lang, extra_excluded)
    if train_langs:
        train_langs = exclusion.normalize_labels(train_langs, "training language")
        exclusion.check_code_switch_targets(train_langs, excluded)
    bitexts = []
    for spec in bitext:
        path, lang = resolve_data_path(spec)
        bitexts.append(read_bitext(path, lang, max_malformed).without_held_out())
    lex = None
    if lexicon:
        path, lang = resolve_data_path(lexicon)
        lex = read_lexicon(path, lang, max_malformed)
    audits = [exclusion.audit_bitext(b, excluded) for b in bitexts]
    if lex is not None:
        audits.append(exclusion.audit_lexicon(lex, excluded))
    exclusion.enforce(audits, max_content_fraction)
    langs = train_langs or sorted({lang for b in bitexts for lang in b.languages})
    if not langs:
        raise ClirOtError("no training languages: give bitext files or --train-langs")
    return TrainingData(bitexts, lex, list(langs), excluded, audits, code_switch_p, code_switch_mode, use_bitext)
