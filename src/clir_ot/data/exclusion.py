"""Language exclusion: the evaluation languages never enter training.

One place decides what is excluded (default: sw, yo, te, bn, hi, th, plus the target ``--lang``)
and audits training files twice:

1. **labels**: a bitext row, lexicon section or code-switch target labelled with an excluded language
   is refused outright, naming file, line and language;
2. **content**: text in the Telugu, Bengali, Devanagari or Thai scripts, and text that the lingua
   language identifier (PyPI ``lingua-language-detector``, ships its models) takes for Swahili or
   Yoruba, is counted per file; above ``max_content_fraction`` of the rows, refused.

Training data is audited with :func:`audit_bitext` and :func:`audit_lexicon`, and :func:`enforce` refuses it,
before a training command loads or writes anything; ``clir-ot data audit`` runs the same code on any file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..artifacts import config_hash, write_json_atomic
from ..errors import ClirOtError, ExclusionError
from ..inputs import read_json_or_none
from ..languages import EVAL_LANGUAGES, normalize_language
from .bitext import Bitext
from .lexicon import Lexicon

#: Scripts of excluded languages (Unicode blocks). Devanagari also covers Marathi/Nepali: all refused.
SCRIPTS: dict[str, tuple[str, re.Pattern[str]]] = {
    "te": ("Telugu", re.compile(r"[\u0C00-\u0C7F]")),
    "bn": ("Bengali", re.compile(r"[\u0980-\u09FF]")),
    "hi": ("Devanagari", re.compile(r"[\u0900-\u097F]")),
    "th": ("Thai", re.compile(r"[\u0E00-\u0E7F]")),
}
#: Languages identified from content by lingua (Latin-script excluded languages).
LID_LANGUAGES = ("sw", "yo")
#: Candidate set for lingua: the Latin-script languages one meets in bitext, plus sw and yo.
_LID_CANDIDATES = ("ENGLISH", "GERMAN", "FRENCH", "SPANISH", "ITALIAN", "PORTUGUESE", "DUTCH", "INDONESIAN",
                   "MALAY", "TURKISH", "FINNISH", "TAGALOG", "SWAHILI", "YORUBA", "ZULU", "SOMALI", "LATIN")
LID_MIN_WORDS = 4  # shorter texts are too ambiguous for language identification
#: lingua's confidence needed to call a text sw/yo. Measured here: UDHR sw/yo paragraphs score
#: ≥ 0.998 at the 10th percentile, while Bible name lists in de/fr/es peak at ~0.65.
LID_MIN_CONFIDENCE = 0.8
DEFAULT_MAX_CONTENT_FRACTION = 0.005


@dataclass(frozen=True)
class Finding:
    path: str
    line: int  # 1-based; 0 when not line-based (JSON lexicon sections)
    lang: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.lang} ({self.reason})"


@dataclass
class FileAudit:
    path: str
    kind: str  # bitext | lexicon
    rows: int
    label_findings: list[Finding] = field(default_factory=list)
    content_findings: list[Finding] = field(default_factory=list)
    #: the content verdict's record (:func:`verdict_path`); ``None`` for a file without a sha256
    verdict: Path | None = None

    def content_counts(self) -> dict[str, int]:
        return dict(Counter(f.lang for f in self.content_findings))

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "rows": self.rows,
                "label_findings": [str(f) for f in self.label_findings[:20]],
                "n_label_findings": len(self.label_findings), "content_counts": self.content_counts()}


def normalize_labels(labels: Iterable[str], what: str) -> list[str]:
    """``labels`` in normal form (``yor`` → ``yo``), order kept; a label that names no language is refused."""
    out: list[str] = []
    for label in labels:
        code = normalize_language(label)
        if code is None:
            raise ExclusionError(f"{what} {label!r} is not a language code or name")
        if code not in out:
            out.append(code)
    return out


def excluded_languages(target: str | None = None, extra: Iterable[str] = ()) -> list[str]:
    """The evaluation languages plus the target and any extra ones, normalised, in a stable order."""
    return normalize_labels([*EVAL_LANGUAGES, *([target] if target else []), *extra], "excluded language")


@cache
def _detector():
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in _LID_CANDIDATES)).build()


def identify_lid_languages(texts: list[str]) -> list[str | None]:
    """For each text, ``"sw"``/``"yo"`` when lingua's top language is one of them with confidence
    ≥ ``LID_MIN_CONFIDENCE`` (texts of ≥ ``LID_MIN_WORDS`` words only), else ``None``."""
    idx = [i for i, t in enumerate(texts) if len(t.split()) >= LID_MIN_WORDS]
    out: list[str | None] = [None] * len(texts)
    if not idx:
        return out
    found = _detector().compute_language_confidence_values_in_parallel([texts[i] for i in idx])
    for i, values in zip(idx, found, strict=True):
        if not values:
            continue
        code = values[0].language.iso_code_639_1.name.lower()
        if code in LID_LANGUAGES and values[0].value >= LID_MIN_CONFIDENCE:
            out[i] = code
    return out


def script_language(text: str, excluded: Iterable[str]) -> str | None:
    for lang in excluded:
        if lang in SCRIPTS and SCRIPTS[lang][1].search(text):
            return lang
    return None


def _content_findings(path: str, items: list[tuple[int, str]], excluded: list[str]) -> list[Finding]:
    findings = []
    lid_targets = [lang for lang in LID_LANGUAGES if lang in excluded]
    lid = identify_lid_languages([t for _, t in items]) if lid_targets else [None] * len(items)
    for (line, text), lid_lang in zip(items, lid, strict=True):
        lang = script_language(text, excluded)
        if lang:
            findings.append(Finding(path, line, lang, f"{SCRIPTS[lang][0]} script"))
        elif lid_lang in lid_targets:
            findings.append(Finding(path, line, lid_lang, "identified by lingua"))
    return findings


def verdict_path(sha256: str, excluded: list[str]) -> Path:
    """Where the content verdict of the file with this sha256, audited against ``excluded``, is recorded."""
    from ..settings import cache_dir

    key = config_hash({"sha256": sha256, "excluded": sorted(excluded), "min_conf": LID_MIN_CONFIDENCE,
                       "min_words": LID_MIN_WORDS, "candidates": _LID_CANDIDATES, "version": 2})
    return cache_dir() / "audits" / f"{key}.json"


def _cached_content_findings(path: str, cache_file: Path | None, items: list[tuple[int, str]],
                             excluded: list[str], per_line: bool) -> list[Finding]:
    """Content findings, cached in ``cache_file`` (:func:`verdict_path` of the file's sha256 and the audit
    settings; ``None``: not cached) because language identification is the slow part, with the lingua version
    that found them. A verdict of another lingua version is found again where lingua
    is installed; where it is not (a GPU node that was sent ``$CLIR_OT_CACHE/audits``), the recorded verdict
    stands, and a file without one is refused with one line."""
    lingua = _lingua_version()
    cached = read_json_or_none(cache_file) if cache_file else None
    if isinstance(cached, dict) and (lingua is None or cached.get("lingua") == lingua):
        try:  # a damaged cache file is a miss: the audit runs again
            return [Finding(path, int(line), str(lang), str(reason)) for line, lang, reason in cached["findings"]]
        except (KeyError, TypeError, ValueError):
            pass
    if lingua is None and any(lang in LID_LANGUAGES for lang in excluded):
        raise ClirOtError(f"auditing {path} needs the language identifier lingua (PyPI lingua-language-detector), "
                          "which is not installed, or its recorded verdict in $CLIR_OT_CACHE/audits (made where "
                          "lingua runs: `clir-ot data audit` there, then carry the audits folder)")
    findings = _content_findings(path, items, excluded)
    if per_line:  # both sides of a bitext row count once
        findings = _dedupe(findings)
    if cache_file:
        write_json_atomic(cache_file, {"lingua": lingua, "findings": [[f.line, f.lang, f.reason] for f in findings]})
    return findings


def _lingua_version() -> str | None:
    """The installed lingua's version; ``None`` where it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("lingua-language-detector")
    except metadata.PackageNotFoundError:
        return None


def audit_bitext(bitext: Bitext, excluded: list[str]) -> FileAudit:
    path = str(bitext.path)
    audit = FileAudit(path, "bitext", len(bitext.pairs))
    audit.label_findings = [Finding(path, p.line, p.lang, "row labelled with an excluded language")
                            for p in bitext.pairs if normalize_language(p.lang) in excluded]
    items = [(p.line, p.x) for p in bitext.pairs] + [(p.line, p.en) for p in bitext.pairs]
    audit.verdict = verdict_path(bitext.sha256, excluded) if bitext.sha256 else None
    audit.content_findings = _cached_content_findings(path, audit.verdict, items, excluded, per_line=True)
    return audit


def audit_lexicon(lexicon: Lexicon, excluded: list[str]) -> FileAudit:
    path = str(lexicon.path)
    rows = sum(len(t) for t in lexicon.entries.values())
    audit = FileAudit(path, "lexicon", rows)
    audit.label_findings = [Finding(path, 0, lang, f"lexicon section '{lang}' ({len(lexicon.entries[lang])} entries)")
                            for lang in lexicon.entries if normalize_language(lang) in excluded]
    items = [(0, x) for table in lexicon.entries.values() for xs in table.values() for x in xs]
    audit.verdict = verdict_path(lexicon.sha256, excluded) if lexicon.sha256 else None
    audit.content_findings = _cached_content_findings(path, audit.verdict, items, excluded, per_line=False)
    return audit


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        if (f.line, f.lang) not in seen:
            seen.add((f.line, f.lang))
            out.append(f)
    return out


def enforce(audits: list[FileAudit], max_content_fraction: float = DEFAULT_MAX_CONTENT_FRACTION) -> None:
    """Raise :class:`ExclusionError` naming file, line and language if any audit fails."""
    problems: list[str] = []
    for a in audits:
        if a.label_findings:
            first = a.label_findings[0]
            langs = sorted({f.lang for f in a.label_findings})
            problems.append(f"{first} — {len(a.label_findings)} item(s) in excluded language(s) {', '.join(langs)}")
        if a.rows and len(a.content_findings) / a.rows > max_content_fraction:
            first = a.content_findings[0]
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(a.content_counts().items()))
            problems.append(f"{first} — content in excluded languages in {len(a.content_findings)} of {a.rows} "
                            f"rows ({counts}), above the {max_content_fraction:.1%} threshold")
    if problems:
        raise ExclusionError("evaluation languages must never enter training; refused:\n  " + "\n  ".join(problems))


def check_code_switch_targets(langs: Iterable[str], excluded: list[str]) -> None:
    bad = [lang for lang in langs if normalize_language(lang) in excluded]
    if bad:
        raise ExclusionError(f"code-switching target language(s) {', '.join(bad)} are excluded evaluation "
                             "languages; choose training languages only")
