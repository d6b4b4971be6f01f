"""Bitext readers: the TSV with header ``lang source ref en x`` and plain two-column ``en<TAB>x``.

Language labels are normalised (:func:`clir_ot.languages.normalize_language`: ``yor``, ``yo-Latn`` and
``Yoruba`` are all read as ``yo``) so that every later comparison sees one code per language.
Malformed lines (wrong field count, an empty side, a label that names no language) are counted and reported
with their line numbers, never dropped silently; above ``max_malformed`` (a fraction of the
non-empty lines) the file is refused.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..artifacts import sha256_file
from ..errors import ClirOtError
from ..inputs import open_text, reading
from ..languages import normalize_language

HEADER = ("lang", "source", "ref", "en", "x")
DEFAULT_MAX_MALFORMED = 0.01


class BitextPair(NamedTuple):
    lang: str
    source: str
    ref: str
    en: str
    x: str
    line: int  # 1-based line number in the file


@dataclass
class Bitext:
    """Pairs read from one file, with what was wrong in it."""

    path: Path
    pairs: list[BitextPair]
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    sha256: str = ""
    #: line numbers of rows removed because they hold a verse of bible-clir's held-out books
    held_out_removed: list[int] = field(default_factory=list)

    @property
    def languages(self) -> list[str]:
        return sorted({p.lang for p in self.pairs})

    def summary(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "rows": len(self.pairs),
                "malformed": len(self.malformed), "languages": self.languages,
                "held_out_removed": len(self.held_out_removed)}

    def without_held_out(self) -> Bitext:
        """This file without the rows that hold a verse of bible-clir's held-out books (by reference or by
        normalised text, :func:`clir_ot.data.bible.held_out_rows`); their line numbers are kept."""
        from .bible import held_out_rows

        drop = set(held_out_rows((p.source, p.ref, p.en, p.x) for p in self.pairs))
        return Bitext(self.path, [p for i, p in enumerate(self.pairs) if i not in drop], self.malformed,
                      self.sha256, sorted(self.pairs[i].line for i in drop))


#: a bitext line longer than this is malformed: no sentence pair is that long, and training reads 64 tokens
MAX_LINE_CHARS = 10_000


def read_bitext(path: Path, lang: str | None = None, max_malformed: float = DEFAULT_MAX_MALFORMED) -> Bitext:
    """Read a bitext file.

    A file whose first line is the header ``lang source ref en x`` is read as the 5-column TSV. Any
    other file is a plain two-column ``en<TAB>x`` file and must be declared with ``lang``.
    """
    path = Path(path)
    pairs: list[BitextPair] = []
    malformed: list[tuple[int, str]] = []
    with reading(path, "bitext"), open_text(path) as f:
        first = f.readline().rstrip("\n").rstrip("\r")
        tsv = tuple(first.split("\t")) == HEADER
        if not tsv and lang is None:
            raise ClirOtError(f"{path}: a plain two-column en<TAB>x file must be declared with its language "
                              f"('{path}:de'); or give it the header 'lang source ref en x'")
        if not tsv and normalize_language(lang) is None:
            raise ClirOtError(f"{path}: {lang!r} is not a language code")
        lang = normalize_language(lang) if lang is not None else None
        lines = f if tsv else _chain_first(first, f)
        start = 2 if tsv else 1
        for n, raw in enumerate(lines, start=start):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            if len(line) > MAX_LINE_CHARS:
                malformed.append((n, f"a line of {len(line):,} characters (at most {MAX_LINE_CHARS:,})"))
                continue
            cols = line.split("\t")
            if tsv:
                if len(cols) != 5:
                    malformed.append((n, f"expected 5 tab-separated fields, found {len(cols)}"))
                    continue
                label, source, ref, en, x = cols
                code = normalize_language(label)
                if code is None:
                    malformed.append((n, f"bad language code {label!r}"))
                    continue
            else:
                if len(cols) != 2:
                    malformed.append((n, f"expected 2 tab-separated fields (en, x), found {len(cols)}"))
                    continue
                code, source, ref, (en, x) = lang, path.stem, str(n), cols
            if not en.strip() or not x.strip():
                malformed.append((n, "empty side"))
                continue
            pairs.append(BitextPair(code, source, ref, en.strip(), x.strip(), n))
    total = len(pairs) + len(malformed)
    if total == 0:
        raise ClirOtError(f"{path}: no bitext rows")
    if malformed and len(malformed) / total > max_malformed:
        shown = "; ".join(f"line {n}: {why}" for n, why in malformed[:5])
        raise ClirOtError(f"{path}: {len(malformed)} of {total} lines are malformed "
                          f"(more than {max_malformed:.1%}); first: {shown}")
    return Bitext(path, pairs, malformed, sha256_file(path))


def _chain_first(first: str, rest: io.TextIOBase):
    yield first
    yield from rest


def write_bitext(path: Path, pairs: list[BitextPair]) -> None:
    """Write pairs as the 5-column TSV with header (gzip if the name ends in .gz), atomically."""
    from ..artifacts import atomic_path

    with atomic_path(Path(path)) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            f.write("\t".join(HEADER) + "\n")
            for p in pairs:
                fields = (p.lang, p.source, p.ref, p.en, p.x)
                f.write("\t".join(s.replace("\t", " ").replace("\n", " ") for s in fields) + "\n")
