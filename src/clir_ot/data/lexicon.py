"""Bilingual lexicons en→X: MUSE text (``en_word x_word`` per line) and JSON ``{lang: {en: [x, ...]}}``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import sha256_file
from ..errors import ClirOtError
from .bitext import DEFAULT_MAX_MALFORMED, open_text

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
        with open_text(path) as f:
            try:
                raw = json.load(f)
            except json.JSONDecodeError as exc:
                raise ClirOtError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ClirOtError(f"{path}: expected a JSON object {{lang: {{english_word: [translations]}}}}")
        for code, table in raw.items():
            out = entries.setdefault(code, {})
            for en, xs in table.items():
                xs = [xs] if isinstance(xs, str) else xs
                kept = [c for c in (clean_translation(x) for x in xs if isinstance(x, str)) if c]
                dropped += len(xs) - len(kept)
                if kept:
                    out[en.lower()] = kept
    else:
        if lang is None:
            raise ClirOtError(f"{path}: a MUSE lexicon (en_word x_word per line) must be declared with its language")
        table = entries.setdefault(lang, {})
        total = 0
        with open_text(path) as f:
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
