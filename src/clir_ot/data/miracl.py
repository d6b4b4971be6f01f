"""MIRACL through ``ir_datasets``, with an offline mirror that fills its cache.

The real loader is ``ir_datasets.load(f"miracl/{lang}/{split}")``. Where there is no network,
:func:`prepare` copies files from a local mirror into the ``ir_datasets`` cache so that the same
loader runs offline. Mirror layout (the one of ``../shared/data/miracl`` and of the embedded copy)::

    topics-qrels/topics.miracl-v1.0-<lang>-<split>.tsv
    topics-qrels/qrels.miracl-v1.0-<lang>-<split>.tsv
    miracl-corpus-v1.0-<lang>.docs.jsonl.gz            # one-shard corpora (sw, bn, yo)
    miracl-corpus-v1.0-<lang>-<i>.docs.jsonl.gz         # shard i of multi-shard corpora

Cache paths come from ``ir_datasets``' own download registry (``etc/downloads.json``), which also
encodes the Yoruba quirk: its only shard lives at ``miracl/v1.0/yo/docs/docs-1.jsonl.gz``.
Documents are ``title + " " + text`` (``MiraclDoc.default_text``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from ..artifacts import copy_atomic, file_digest
from ..errors import ClirOtError, DataUnavailableError
from ..languages import check_language
from ..resources import embedded_miracl_mirror
from ..settings import is_offline
from .selection import Doc

KINDS = ("topics", "qrels", "corpus")


class Query(NamedTuple):
    query_id: str
    text: str


class Qrel(NamedTuple):
    query_id: str
    doc_id: str
    relevance: int


@cache
def ir_datasets_home() -> Path:
    """The ``ir_datasets`` cache root (``$IR_DATASETS_HOME``, default ``~/.ir_datasets``).

    ``ir_datasets`` fixes its dataset paths when it is first imported; so is this value.
    """
    import ir_datasets

    return Path(ir_datasets.util.home_path())


@cache
def _registry() -> dict[str, dict]:
    path = resources.files("ir_datasets").joinpath("etc", "downloads.json")
    return json.loads(path.read_text(encoding="utf-8"))["miracl"]


@cache
def _metadata() -> dict[str, dict]:
    path = resources.files("ir_datasets").joinpath("etc", "metadata.json")
    return json.loads(path.read_text(encoding="utf-8"))


def expected_counts(lang: str, split: str) -> dict[str, int | None]:
    """Passages, queries and judgements that ``ir_datasets``' metadata records for ``miracl/<lang>/<split>``."""
    meta = _metadata()
    corpus, sub = meta.get(f"miracl/{lang}", {}), meta.get(f"miracl/{lang}/{split}", {})
    return {"corpus": corpus.get("docs", {}).get("count"), "topics": sub.get("queries", {}).get("count"),
            "qrels": sub.get("qrels", {}).get("count")}


def has_split(lang: str, split: str) -> bool:
    return f"v1.0/{lang}/{split}/topics" in _registry()


def check_split(lang: str, split: str) -> str:
    lang = check_language(lang)
    if not has_split(lang, split):
        splits = sorted({k.split("/")[2] for k in _registry() if k.startswith(f"v1.0/{lang}/")
                         and k.endswith("/topics")})
        raise ClirOtError(f"MIRACL has no {split!r} split for {lang!r}; available: {', '.join(splits)}")
    return lang


def cache_files(lang: str, split: str) -> dict[str, list[tuple[Path, str | None]]]:
    """Cache paths (with expected md5) that ``ir_datasets`` reads for topics, qrels and corpus."""
    lang = check_split(lang, split)
    reg, home = _registry(), ir_datasets_home() / "miracl"
    shards = sorted((k for k in reg if k.startswith(f"v1.0/{lang}/corpus/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    out: dict[str, list[tuple[Path, str | None]]] = {
        "topics": [(home / reg[f"v1.0/{lang}/{split}/topics"]["cache_path"],
                    reg[f"v1.0/{lang}/{split}/topics"].get("expected_md5"))],
        "qrels": [(home / reg[f"v1.0/{lang}/{split}/qrels"]["cache_path"],
                   reg[f"v1.0/{lang}/{split}/qrels"].get("expected_md5"))] if f"v1.0/{lang}/{split}/qrels" in reg
        else [],
        "corpus": [(home / reg[k]["cache_path"], reg[k].get("expected_md5")) for k in shards],
    }
    return out


def mirror_files(mirror: Path, lang: str, split: str) -> dict[str, list[Path]]:
    """Files a mirror folder is expected to hold for ``lang``/``split`` (see module docstring)."""
    n_shards = len(cache_files(lang, split)["corpus"])
    corpus = ([mirror / f"miracl-corpus-v1.0-{lang}.docs.jsonl.gz"] if n_shards == 1 else
              [mirror / f"miracl-corpus-v1.0-{lang}-{i}.docs.jsonl.gz" for i in range(n_shards)])
    tq = mirror / "topics-qrels"
    return {"topics": [tq / f"topics.miracl-v1.0-{lang}-{split}.tsv"],
            "qrels": [tq / f"qrels.miracl-v1.0-{lang}-{split}.tsv"], "corpus": corpus}


@dataclass
class PrepareReport:
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def prepare(langs: list[str], split: str = "dev", mirror: Path | None = None) -> PrepareReport:
    """Copy mirror files into the ``ir_datasets`` cache where they are not there yet.

    Topics and qrels are checked against the md5 that ``ir_datasets`` expects (the official files);
    a mismatch is refused. Corpus shards are copied as they are and checked when read (passage count
    against ``ir_datasets``' metadata; see :func:`corpus_identity`). Nothing already cached is replaced.
    """
    mirror = Path(mirror) if mirror is not None else embedded_miracl_mirror()
    if not mirror.is_dir():
        raise ClirOtError(f"mirror folder {mirror} does not exist")
    report = PrepareReport()
    for lang in langs:
        if not has_split(lang, split):
            continue
        expected = cache_files(lang, split)
        sources = mirror_files(mirror, lang, split)
        for kind in KINDS:
            for (dst, md5), src in zip(expected[kind], sources[kind], strict=False):
                label = f"{lang}/{split} {kind}: {dst.name}"
                if dst.exists():
                    report.present.append(label)
                elif src.is_file():
                    if md5 is not None and kind != "corpus" and file_digest(src, "md5") != md5:
                        raise ClirOtError(f"{src} does not match the official MIRACL file "
                                          f"(md5 {md5} expected by ir_datasets); refusing to cache it")
                    copy_atomic(src, dst)
                    report.copied.append(label)
                else:
                    report.missing.append(label)
    return report


def ensure_embedded(lang: str, split: str) -> None:
    """Fill the cache from the embedded mirror for ``lang``/``split`` where it has the files."""
    prepare([lang], split, embedded_miracl_mirror())


def _available(kind: str, lang: str, split: str) -> bool:
    return all(p.exists() for p, _ in cache_files(lang, split)[kind]) and bool(cache_files(lang, split)[kind])


def corpus_unavailable_message(lang: str, reason: str) -> str:
    return (f"the MIRACL corpus for {lang!r} is not available here: {reason}. "
            f"With a network, ir_datasets downloads it on first use "
            f"(python -c \"import ir_datasets; ir_datasets.load('miracl/{lang}/dev').docs_iter().__next__()\"). "
            f"Offline, put the shards in a mirror folder (miracl-corpus-v1.0-{lang}[-<i>].docs.jsonl.gz) and run "
            f"`clir-ot data prepare --from DIR --lang {lang}`.")


def _dataset(lang: str, split: str):
    """``ir_datasets.load`` of ``miracl/<lang>/<split>``; callers fill the cache first."""
    import ir_datasets

    return ir_datasets.load(f"miracl/{lang}/{split}")


def _require_file(kind: str, lang: str, split: str) -> None:
    """Topics or qrels: in the cache (else downloaded, unless offline) and equal to the official file."""
    files = cache_files(lang, split)[kind]
    if not files:
        raise DataUnavailableError(f"MIRACL {lang}/{split} has no {kind}")
    path, md5 = files[0]
    if not path.exists():
        if is_offline():
            raise DataUnavailableError(f"MIRACL {lang}/{split} {kind} are not in the ir_datasets cache and offline "
                                       "mode is on (CLIR_OT_OFFLINE); run "
                                       f"`clir-ot data prepare --from DIR --lang {lang}`")
        return  # ir_datasets downloads and checks it
    _verify_file(path, md5, f"MIRACL {lang}/{split} {kind}", expected_counts(lang, split)[kind], lang)


def load_queries(lang: str, split: str = "dev") -> list[Query]:
    """Topics of ``miracl/<lang>/<split>`` (query ids kept as strings), checked against the official file."""
    lang = check_split(lang, split)
    ensure_embedded(lang, split)
    _require_file("topics", lang, split)
    try:
        return [Query(q.query_id, q.text) for q in _dataset(lang, split).queries_iter()]
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise DataUnavailableError(f"MIRACL {lang}/{split} topics are not available: {exc}") from exc


def load_qrels(lang: str, split: str = "dev") -> list[Qrel]:
    """Relevance judgements of ``miracl/<lang>/<split>``, checked against the official file."""
    lang = check_split(lang, split)
    ensure_embedded(lang, split)
    _require_file("qrels", lang, split)
    try:
        return [Qrel(q.query_id, q.doc_id, int(q.relevance)) for q in _dataset(lang, split).qrels_iter()]
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise DataUnavailableError(f"MIRACL {lang}/{split} qrels are not available: {exc}") from exc


def _verify_file(path: Path, md5: str | None, what: str, expected_rows: int | None, lang: str) -> None:
    """Refuse a cached topics/qrels file that is not the official one (md5 from ir_datasets' registry)."""
    found = file_digest(path, "md5")
    if md5 is None or found == md5:
        return
    rows = count_lines(path)
    raise DataUnavailableError(
        f"{what} in the ir_datasets cache ({path}) is not the official file: md5 {found}, "
        f"ir_datasets expects {md5}" + (f"; it has {rows:,} lines, the official one {expected_rows:,}"
                                         if expected_rows is not None else "")
        + f". Delete it and run `clir-ot data prepare --lang {lang}` (or let ir_datasets download it).")


def require_corpus(lang: str, split: str = "dev") -> None:
    """Make sure the corpus of ``lang`` is in the cache: embedded copy, else ir_datasets' download.

    Raises :class:`DataUnavailableError` with what to do when it cannot be had.
    """
    lang = check_split(lang, split)
    ensure_embedded(lang, split)
    if _available("corpus", lang, split):
        return
    if is_offline():
        raise DataUnavailableError(corpus_unavailable_message(lang, "not in the ir_datasets cache and "
                                                              "offline mode is on (CLIR_OT_OFFLINE)"))
    reason = _download_failure(lang, split)
    if reason:
        raise DataUnavailableError(corpus_unavailable_message(lang, reason))


@cache
def _download_failure(lang: str, split: str) -> str | None:
    """Try ir_datasets' download once per process; the reason it failed, or None."""
    import logging

    import ir_datasets

    logging.disable(logging.WARNING)  # ir_datasets' retry chatter is replaced by one clear message
    try:
        next(iter(ir_datasets.load(f"miracl/{lang}/{split}").docs_iter()))
    except Exception as exc:  # any download failure: connection, HTTP, checksum
        return f"not in the ir_datasets cache and the download failed ({type(exc).__name__})"
    finally:
        logging.disable(logging.NOTSET)
    return None


def iter_docs(lang: str, split: str = "dev") -> Iterator[Doc]:
    """Passages of the ``lang`` corpus in official order, as ``Doc(doc_id, title + " " + text)``."""
    require_corpus(lang, split)
    for d in _dataset(lang, split).docs_iter():
        yield Doc(d.doc_id, d.default_text())


def load_corpus(lang: str, split: str = "dev") -> list[Doc]:
    """The whole corpus of ``lang``, verified, in corpus order (reduced pools: :mod:`clir_ot.data.benchmarks`)."""
    return list(_all_docs(lang, split))


def _all_docs(lang: str, split: str) -> tuple[Doc, ...]:
    """The whole corpus, verified (:func:`corpus_identity`), parsed once per process and file version."""
    identity = corpus_identity(lang, split)
    return _parsed_docs(lang, split, identity["sha256"])


@lru_cache(maxsize=2)
def _parsed_docs(lang: str, split: str, sha256: str) -> tuple[Doc, ...]:
    path_hint = ", ".join(str(p) for p, _ in cache_files(lang, split)["corpus"])
    try:
        docs = tuple(iter_docs(lang, split))
    except (EOFError, OSError, zlib.error, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise DataUnavailableError(
            f"the cached MIRACL {lang} corpus ({path_hint}) cannot be read: {type(exc).__name__}: {exc}. "
            f"It is truncated or corrupt; delete it and run `clir-ot data prepare --lang {lang}`") from None
    expected = expected_counts(lang, split)["corpus"]
    if expected is not None and len(docs) != expected:
        raise DataUnavailableError(
            f"the cached MIRACL {lang} corpus ({path_hint}) has {len(docs):,} passages; ir_datasets expects "
            f"{expected:,}. A partial corpus gives wrong MIRACL numbers: delete it and run "
            f"`clir-ot data prepare --lang {lang}` (or let ir_datasets download it)")
    if len({d.doc_id for d in docs}) != len(docs):
        raise DataUnavailableError(f"the cached MIRACL {lang} corpus ({path_hint}) repeats passage ids")
    return docs


def judgement_identity(lang: str, split: str = "dev") -> dict:
    """sha256 of the (verified) topics and qrels files that an evaluation of ``lang`` counts."""
    lang = check_split(lang, split)
    ensure_embedded(lang, split)
    for kind in ("topics", "qrels"):
        _require_file(kind, lang, split)
    files = cache_files(lang, split)
    return {kind: file_digest(files[kind][0][0]) for kind in ("topics", "qrels")}


def corpus_identity(lang: str, split: str = "dev") -> dict:
    """What the cached corpus of ``lang`` is: its shards' sha256 (one combined hash), its passage count as
    ``ir_datasets`` records it, and whether each shard is byte for byte the official file (md5 of the
    download registry) — else its passage count is checked when it is read."""
    lang = check_split(lang, split)
    require_corpus(lang, split)
    shards = cache_files(lang, split)["corpus"]
    official = all(md5 == file_digest(p, "md5") for p, md5 in shards)
    combined = hashlib.sha256("".join(file_digest(p) for p, _ in shards).encode()).hexdigest()
    return {"lang": lang, "passages": expected_counts(lang, split)["corpus"], "sha256": combined,
            "official_md5": official}


def count_lines(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return sum(1 for _ in f)


@dataclass
class LanguageStatus:
    lang: str
    split: str
    counts: dict[str, int | None]  # kind -> count, None when unavailable
    sources: dict[str, str]  # kind -> "cache" | "embedded" | "mirror" | "missing"


def status(langs: list[str], split: str = "dev", mirror: Path | None = None) -> list[LanguageStatus]:
    """What is usable offline for each language: in the cache, embedded, in ``mirror``, or missing."""
    out = []
    mirrors = [("embedded", embedded_miracl_mirror())] + ([("mirror", Path(mirror))] if mirror else [])
    for lang in langs:
        counts: dict[str, int | None] = {}
        sources: dict[str, str] = {}
        if not has_split(lang, split):
            out.append(LanguageStatus(lang, split, dict.fromkeys(KINDS), dict.fromkeys(KINDS, "no split")))
            continue
        cached = cache_files(lang, split)
        for kind in KINDS:
            paths = [p for p, _ in cached[kind]]
            source = "cache" if paths and all(p.exists() for p in paths) else "missing"
            if source == "missing":
                for name, root in mirrors:
                    candidates = mirror_files(root, lang, split)[kind]
                    if candidates and all(p.is_file() for p in candidates):
                        source, paths = name, candidates
                        break
            sources[kind] = source
            counts[kind] = None if source == "missing" else sum(count_lines(p) for p in paths)
        out.append(LanguageStatus(lang, split, counts, sources))
    return out
