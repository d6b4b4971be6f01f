"""Bilingual lexicons en→X: MUSE text (``en_word x_word`` per line) and JSON ``{lang: {en: [x, ...]}}``.

Section labels are normalised like bitext labels (``deu`` and ``de-DE`` are ``de``); sections that name
the same language are merged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import sha256_file
from ..errors import ClirOtError
from ..inputs import open_text, reading
from ..languages import normalize_language
from .bitext import DEFAULT_MAX_MALFORMED

#: Characters that mark dictionary annotations rather than translations ("einkehren <v", "/ˈɪl/").
_ANNOTATION_CHARS = set("<>/[]{}()=;")


@dataclass
class Lexicon:
    """``entries[lang][english_word] -> [translation, ...]`` plus where it came from."""

    path: Path
    entries: dict[str, dict[str, list[str]]]
    malformed: list[tuple[int, str]] = field(default_factory=list)
    dropped: int = 0  # translations removed as annotations / empty
    sha256: str = ""

    @property
    def languages(self) -> list[str]:
        return sorted(self.entries)

    def summary(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "languages": self.languages,
                "entries": {k: len(v) for k, v in self.entries.items()}, "malformed": len(self.malformed),
                "dropped_annotations": self.dropped}


def clean_translation(text: str) -> str | None:
    """A usable single translation, or ``None`` for dictionary annotations and blanks."""
    text = " ".join(text.split())
    if not text or any(c in _ANNOTATION_CHARS for c in text) or len(text.split()) > 3:
        return None
    return text


def read_lexicon(path: Path, lang: str | None = None, max_malformed: float = DEFAULT_MAX_MALFORMED) -> Lexicon:
    """Read a JSON lexicon (``.json`` / ``.json.gz``) or a MUSE text lexicon (needs ``lang``)."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    entries: dict[str, dict[str, list[str]]] = {}
    malformed: list[tuple[int, str]] = []
    dropped = 0
    if name.endswith(".json"):
        with reading(path, "lexicon"), open_text(path) as f:
            raw = json.load(f)
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ClirOtError(f"{path}: expected a JSON object {{lang: {{english_word: [translations]}}}}")
        for label, table in raw.items():
            code = normalize_language(label)
            if code is None:
                raise ClirOtError(f"{path}: section {label!r} is not a language code")
            out = entries.setdefault(code, {})
            for en, xs in table.items():
                xs = [xs] if isinstance(xs, str) else xs
                if not isinstance(xs, list):
                    raise ClirOtError(f"{path}: section {label!r}, entry {en!r}: expected a list of translations, "
                                      f"found {type(xs).__name__}")
                kept = [c for c in (clean_translation(x) for x in xs if isinstance(x, str)) if c]
                dropped += len(xs) - len(kept)
                if kept:
                    out[en.lower()] = kept
    else:
        if lang is None:
            raise ClirOtError(f"{path}: a MUSE lexicon (en_word x_word per line) must be declared with its language")
        code = normalize_language(lang)
        if code is None:
            raise ClirOtError(f"{path}: {lang!r} is not a language code")
        table = entries.setdefault(code, {})
        total = 0
        with reading(path, "lexicon"), open_text(path) as f:
            for n, raw_line in enumerate(f, start=1):
                parts = raw_line.split()
                if not parts:
                    continue
                total += 1
                if len(parts) != 2:
                    malformed.append((n, f"expected 2 fields (en_word x_word), found {len(parts)}"))
                    continue
                table.setdefault(parts[0].lower(), []).append(parts[1])
        if total and len(malformed) / total > max_malformed:
            shown = "; ".join(f"line {n}: {why}" for n, why in malformed[:5])
            raise ClirOtError(f"{path}: {len(malformed)} of {total} lines are malformed; first: {shown}")
    return Lexicon(path, entries, malformed, dropped, sha256_file(path))
