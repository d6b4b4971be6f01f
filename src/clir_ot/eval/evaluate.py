"""Evaluate a system on a benchmark: search (dense model, BM25 or a given run), optional fusion, metrics.

    clir-ot evaluate --benchmark miracl --lang yo --model me5-small --out runs/eval/me5
    clir-ot evaluate --benchmark bible-clir --lang sw --model me5-small --query-model me5-small

A benchmark (:mod:`clir_ot.data.benchmarks`) gives the queries, judgements and documents; dense queries
are encoded by ``--query-model`` when given (OPTICAL's shape: a frozen English query encoder, the
student as document encoder), else by the model itself.

Per language, ``OUT/<lang>/`` receives ``run.trec`` (TREC, 6 fields, trec_eval order),
``per_query.csv`` / ``per_query.json`` (wide), ``per_query.tsv`` (long: ``query_id measure value``,
as ``ir_measures`` and ``trec_eval -q`` print them, with ``all`` rows) and ``metrics.json``. A dense
model's document embeddings live in the machine-wide cache (:mod:`clir_ot.retrieval.embedding_cache`;
``metrics.json`` names the entry and whether it was reused); queries are encoded at each evaluation.
``OUT/results.json`` and ``OUT/results.md`` hold the table over languages, with every unavailable
language listed with its reason. A language whose ``metrics.json`` exists with the same configuration
*and* the same input hashes (topics, qrels, corpus, model weights, run file) is not recomputed, and the
result says that it was reused; any change recomputes it.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..artifacts import (
    folder_lock,
    prepare_output_dir,
    stage_state,
    write_json_atomic,
    write_manifest,
    write_text_atomic,
)
from ..config import keyed_fields, result_key, setting, validate
from ..data.benchmarks import BENCHMARKS, Benchmark, Doc, Query, get_benchmark
from ..errors import ClirOtError, DataUnavailableError
from ..inputs import read_json_or_none
from ..models.encoder import BATCH_TOKENS
from ..models.precision import PRECISIONS
from ..retrieval import BACKENDS, ann, fusion
from ..retrieval.ann import ANN_BACKENDS
from ..retrieval.fusion import FUSIONS
from ..retrieval.runfile import read_run, write_run
from ..retrieval.search import to_run
from ..retrieval.transforms import TRANSFORMS, corpus_sample, fit_and_apply
from . import metrics
from .fidelity import require_fidelity, resolve_precision
from .saved import record_files, record_sha256, verify_record

BM25_NAMES = ("bm25", "bm25-strong")



@dataclass
class EvalConfig:
    """What one evaluation searches and scores; converted and range-checked when made."""

    langs: list[str]
    benchmark: str = setting("miracl", choices=tuple(BENCHMARKS))
    split: str | None = None  # None: the benchmark's split (MIRACL: dev, bible-clir: test)
    model: str | None = None  # dense model name/dir/HF id, "bm25" or "bm25-strong"
    #: a dense model that encodes the queries (default: ``model``); the documents are always ``model``'s
    query_model: str | None = None
    run_file: str | None = None
    fuse: str | None = setting(None, choices=FUSIONS)  # None | "bm25" (interpolation) | "rrf"
    alpha: float = setting(0.5, ge=0.0, le=1.0)
    fuse_with: str = setting("bm25", choices=BM25_NAMES)  # the lexical run fused with the model's
    depth: int | None = setting(None, ge=1)  # None: the benchmark's (MIRACL 1000, bible-clir 100)
    batch_size: int = setting(32, ge=1)
    #: ``auto`` is resolved here (:func:`~clir_ot.eval.fidelity.resolve_precision`): saved results are keyed
    #: by the precision that ran, and ``precision_reason`` says why
    precision: str = setting("auto", choices=PRECISIONS)
    fp16_storage: bool = False
    backend: str = setting("exact", choices=BACKENDS)
    #: None = the full corpus. N = a reduced pool: every judged passage plus N random others (seeded);
    #: cheaper, easier than the full corpus, and labelled as such wherever reported.
    pool_distractors: int | None = setting(None, ge=0)
    pool_seed: int = setting(0, ge=0)
    #: None = every query. N = N queries drawn at random (seeded): a set-up check, not a result.
    query_sample: int | None = setting(None, ge=1)
    measures: list[str] | None = None  # None: the benchmark's measures
    #: a training-free control: the dense embeddings re-centred or whitened before the search
    #: (:mod:`clir_ot.retrieval.transforms`, fitted from embeddings alone)
    transform: str = setting("none", choices=tuple(TRANSFORMS), added="2026-12-07")

    def __post_init__(self) -> None:
        validate(self)
        bench = self.bench
        self.split = self.split or bench.default_split
        self.measures = list(self.measures or bench.measures)
        self.depth = self.depth or bench.default_depth
        dense = [name for name in (self.model, self.query_model) if name and name not in BM25_NAMES]
        choice = resolve_precision(self.precision, dense)
        self.precision, self.precision_reason = choice["precision"], choice["reason"]
        self.langs = [bench.check(lang, self.split) for lang in self.langs]
        if not self.langs:
            raise ClirOtError("invalid configuration: no languages to evaluate")
        for name in self.measures:
            try:
                metrics.parse_measure(name)
            except ValueError as exc:
                raise ClirOtError(f"invalid configuration: {exc}") from None
        if self.run_file and self.model:
            raise ClirOtError("give either --model or --run, not both")
        if self.transform != "none" and (not dense or self.run_file):
            raise ClirOtError(f"--transform {self.transform} transforms a dense --model's embeddings; give one")
        if self.query_model and (not self.model or self.model in BM25_NAMES):
            raise ClirOtError("--query-model encodes the queries of a dense --model; give one")
        for name in dense:
            require_fidelity(name, self.precision)
        if self.run_file and (self.pool_distractors is not None or self.query_sample):
            raise ClirOtError("--pool and query sampling choose what a model searches; a --run file was "
                              "searched already (its corpus is whatever made it)")

    @property
    def bench(self) -> Benchmark:
        return get_benchmark(self.benchmark)

    def corpus_label(self, lang: str) -> str:
        """What was searched. A run file says nothing about the corpus it searched, and neither does the label."""
        if self.run_file:
            return f"run file {Path(self.run_file).name} (searched outside clir-ot; its corpus is not known here)"
        return self.bench.corpus_label(lang, self.pool_distractors, self.pool_seed, self.query_sample)

    def query_ids(self, lang: str) -> set[str] | None:
        return self.bench.sample_query_ids(lang, self.split, self.query_sample, self.pool_seed)

    def system_name(self) -> str:
        return system_name(asdict(self))

    def lang_config(self, lang: str) -> dict:
        cfg = asdict(self) | {"lang": lang}
        cfg.pop("langs")
        return cfg


def system_name(cfg: dict) -> str:
    """The name of the system an evaluation configuration (or a language's saved configuration) scores."""
    base = cfg.get("model") or Path(cfg.get("run_file") or "run").name
    if cfg.get("query_model"):
        base += f" (queries: {cfg['query_model']})"
    if cfg.get("transform", "none") != "none":
        base += f", {cfg['transform']}"
    fuse, alpha = cfg.get("fuse"), cfg.get("alpha")
    return base + (f"+{cfg.get('fuse_with')}({fuse}{'' if fuse == 'rrf' else f', α={alpha}'})" if fuse else "")


@dataclass
class LanguageResult:
    lang: str
    status: str  # "ok" | "unavailable"
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    n_queries: int = 0
    run_path: str = ""
    info: dict = field(default_factory=dict)
    #: set when the saved result was reused because every input hash matched (never saved itself)
    reused: bool = False


def input_identity(lang: str, cfg: EvalConfig) -> dict:
    """Content hashes of everything a result of ``lang`` depends on besides its configuration: the topics
    and qrels, the corpus searched (unless a run file is scored), the model's weights, the run file, the recipe
    a reduced precision would run for each model (:func:`~clir_ot.models.loading.precision_recipe`), and for an
    ANN backend its parameter rules and FAISS's version.
    A saved result is reused only when these and the configuration are unchanged."""
    from ..artifacts import sha256_file
    from ..models.loading import model_fingerprint, precision_recipe

    identity: dict = {"judgements": cfg.bench.judgement_identity(lang, cfg.split)}
    if cfg.run_file:
        path = Path(cfg.run_file)
        if not path.is_file():
            raise ClirOtError(f"run file not found: {path}")
        identity["run_file"] = sha256_file(path)
    if not cfg.run_file or cfg.fuse:
        identity["corpus"] = cfg.bench.corpus_identity(lang, cfg.split)["sha256"]
    if cfg.model and cfg.model not in BM25_NAMES:
        identity["model"] = model_fingerprint(cfg.model)
    if cfg.query_model:
        identity["query_model"] = model_fingerprint(cfg.query_model)
    if cfg.backend in ANN_BACKENDS:
        identity["ann"] = ann.identity(cfg.backend)
    if cfg.model and cfg.model not in BM25_NAMES and cfg.precision != "fp32":
        identity["precision_recipe"] = precision_recipe(cfg.model, cfg.precision)
    if cfg.query_model and cfg.precision != "fp32":
        identity["query_precision_recipe"] = precision_recipe(cfg.query_model, cfg.precision)
    return identity


def corpus_docs(lang: str, cfg: EvalConfig) -> list[Doc]:
    """The documents searched: the full collection or the reduced pool of ``cfg``."""
    return cfg.bench.pool(lang, cfg.split, cfg.pool_distractors, cfg.pool_seed, cfg.query_ids(lang))


def selected_queries(lang: str, cfg: EvalConfig) -> list[Query]:
    return cfg.bench.selected_queries(lang, cfg.split, cfg.query_ids(lang))


def bm25_run(lang: str, cfg: EvalConfig, variant: str = "bm25") -> tuple[dict, dict]:
    from ..retrieval.bm25 import BM25Index

    docs = corpus_docs(lang, cfg)
    queries = selected_queries(lang, cfg)
    index = BM25Index([d.text for d in docs], tokenizer="regex" if variant == "bm25-strong" else "whitespace")
    scores, idx = index.search([q.text for q in queries], cfg.depth)
    return to_run([q.query_id for q in queries], [d.doc_id for d in docs], scores, idx), index.describe()


def embeddings_config(encoder, model: str, bench: Benchmark, lang: str, split: str, precision: str,
                      fp16_storage: bool, corpus: str, queries: list[Query], doc_ids: list[str]) -> dict:
    """What a folder of embeddings depends on: model weights hash, benchmark and corpus hash, the documents
    encoded (sha256 of their ids, in order), the queries, precision and storage type, and the encoder's
    pooling / prefixes / length. ``corpus`` (what was searched, in words) is kept for people to read; it is
    no part of the key (:func:`~clir_ot.retrieval.encode.embeddings_key`)."""
    import hashlib

    from ..models.loading import model_fingerprint

    return {"model": model, "model_fingerprint": model_fingerprint(model), "benchmark": bench.name, "lang": lang,
            "split": split, "precision": precision, "corpus": corpus,
            # the recipe that ran (fp32 is the reference and has none): a new recipe never hits old entries
            **({"precision_recipe": encoder.recipe} if precision != "fp32" else {}),
            "corpus_sha256": bench.corpus_identity(lang, split)["sha256"],
            "documents_sha256": hashlib.sha256("\n".join(doc_ids).encode()).hexdigest(),
            "query_ids": sorted(q.query_id for q in queries), "fp16_storage": fp16_storage,
            "spec": asdict(encoder.spec),
            # how texts were batched (it moves the last bits); entries written the old way miss
            "batching": f"bulk-tokenised, longest first, <= {BATCH_TOKENS} padded tokens per batch"}


@lru_cache(maxsize=8)
def _query_embeddings(model: str, fingerprint: str, precision: str, texts: tuple[str, ...],
                      batch_size: int) -> np.ndarray:
    from ..models import load_encoder
    from ..retrieval.encode import encode_texts

    encoder = load_encoder(model).set_precision(precision)
    return encode_texts(encoder, texts, "query", batch_size)


def query_embeddings(model: str, precision: str, texts: list[str], batch_size: int) -> np.ndarray:
    """Queries encoded by ``model``, remembered in this process by its weights and the texts (bible-clir's
    English queries are the same for every language; they are encoded once per model)."""
    from ..artifacts import config_hash
    from ..models.loading import model_fingerprint

    return _query_embeddings(model, config_hash(model_fingerprint(model)), precision, tuple(texts), batch_size)


def dense_run(lang: str, cfg: EvalConfig, on_progress: Callable[[int, int], None] | None) -> tuple[dict, dict]:
    from ..models import load_encoder
    from ..retrieval.embedding_cache import document_embeddings
    from ..retrieval.search import search

    docs = corpus_docs(lang, cfg)
    queries = selected_queries(lang, cfg)
    encoder = load_encoder(cfg.model).set_precision(cfg.precision)
    enc_config = embeddings_config(encoder, cfg.model, cfg.bench, lang, cfg.split, cfg.precision, cfg.fp16_storage,
                                   cfg.corpus_label(lang), [], [d.doc_id for d in docs])
    total = len(docs)
    doc_ids, corpus, cached = document_embeddings(
        encoder, enc_config, [d.doc_id for d in docs], [d.text for d in docs], batch_size=cfg.batch_size,
        fp16=cfg.fp16_storage, on_progress=(lambda n: on_progress(n, total)) if on_progress else None)
    manifest = read_json_or_none(Path(cached["entry"]) / "manifest.json") or {}
    query_ids = [q.query_id for q in queries]
    q = query_embeddings(cfg.query_model or cfg.model, cfg.precision, [q.text for q in queries], cfg.batch_size)
    if cfg.query_model:
        if q.shape[1] != corpus.shape[1]:
            raise ClirOtError(f"--query-model {cfg.query_model} gives {q.shape[1]}-dimensional embeddings and "
                              f"{cfg.model} {corpus.shape[1]}-dimensional ones: they cannot be compared")
    transformed = None
    if cfg.transform != "none":
        q, corpus, transformed = fit_and_apply(cfg.transform, q, corpus, lambda: query_embeddings(
            cfg.query_model or cfg.model, cfg.precision, [docs[i].text for i in corpus_sample(len(docs))],
            cfg.batch_size))
    started = time.time()
    scores, idx, searched = search(q, corpus, cfg.depth, cfg.backend, Path(cached["entry"]))
    return to_run(query_ids, doc_ids, scores, idx), {
        "encoder": manifest.get("encoder"), "embeddings": cached,
        "encode_wall_time_s": 0.0 if cached["hit"] else manifest.get("wall_time_s"),
        "search_backend": cfg.backend, "search_time_s": round(time.time() - started, 3),
        **({"index": searched} if "parameters" in searched else {}),
        **({"transform": transformed} if transformed else {}),
        "precision": {"precision": cfg.precision, "reason": cfg.precision_reason, "recipe": encoder.recipe}}


def per_query_long(per_query: dict[str, dict[str, float]], aggregate: dict[str, float]) -> str:
    """Per-query scores in the long form of ``ir_measures`` / ``trec_eval -q``: ``query_id<TAB>measure<TAB>value``,
    one line per query and measure, then the mean over queries under the query id ``all``."""
    lines = [f"{qid}\t{m}\t{v:.6f}" for qid, scores in per_query.items() for m, v in scores.items()]
    lines += [f"all\t{m}\t{v:.6f}" for m, v in aggregate.items()]
    return "".join(line + "\n" for line in lines)


def per_query_csv(per_query: dict[str, dict[str, float]]) -> str:
    buf = io.StringIO()
    names = list(next(iter(per_query.values())).keys()) if per_query else []
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["query_id", *names])
    for qid, scores in per_query.items():
        writer.writerow([qid, *(f"{scores[m]:.6f}" for m in names)])
    return buf.getvalue()


def evaluate_language(lang: str, cfg: EvalConfig, out: Path,
                      on_progress: Callable[[int, int], None] | None = None) -> LanguageResult:
    """Evaluate one language into ``out/<lang>``; a saved result is reused only when the configuration
    and every input hash (:func:`input_identity`) match, and the returned result then says ``reused``."""
    lang_dir = out / lang
    lang_cfg = cfg.lang_config(lang)
    done = lang_dir / "metrics.json"
    try:
        identity = input_identity(lang, cfg)
    except DataUnavailableError as exc:
        return LanguageResult(lang, "unavailable", str(exc))
    keyed = keyed_fields(type(cfg), lang_cfg)
    key = result_key(keyed, inputs=identity)
    recomputed = None
    if stage_state(done, key, field="key") == "done":
        saved = read_json_or_none(done)
        changed = verify_record(lang_dir, saved)
        if changed is None:
            return LanguageResult(**(saved["result"] | {"reused": True}))
        recomputed = f"{changed}; recomputed"
    started = time.time()
    try:
        queries = selected_queries(lang, cfg)
        qrels = cfg.bench.judged_qrels(lang, cfg.split, queries)
        if cfg.run_file:
            run, info = read_run(Path(cfg.run_file), [q.query_id for q in queries]), {"run_file": cfg.run_file}
        elif cfg.model in BM25_NAMES:
            run, info = bm25_run(lang, cfg, cfg.model)
        else:
            run, info = dense_run(lang, cfg, on_progress)
        if cfg.fuse:
            sparse, bm25_info = bm25_run(lang, cfg, cfg.fuse_with)
            run = fusion.interpolate(run, sparse, cfg.alpha, cfg.depth) if cfg.fuse == "bm25" \
                else fusion.reciprocal_rank_fusion([run, sparse], depth=cfg.depth)
            info["fusion"] = {"method": cfg.fuse, "alpha": cfg.alpha, "bm25": bm25_info}
    except DataUnavailableError as exc:
        return LanguageResult(lang, "unavailable", str(exc))
    info["inputs"] = identity
    if recomputed:
        info["recomputed"] = recomputed
    lang_dir.mkdir(parents=True, exist_ok=True)
    write_run(lang_dir / "run.trec", run, tag=cfg.system_name())
    scores = metrics.per_query(qrels, run, cfg.measures)
    write_text_atomic(lang_dir / "per_query.csv", per_query_csv(scores))
    write_json_atomic(lang_dir / "per_query.json", scores)
    write_text_atomic(lang_dir / "per_query.tsv", per_query_long(scores, metrics.aggregate(scores)))
    info["wall_time_s"] = round(time.time() - started, 2)
    info["corpus"] = cfg.corpus_label(lang)
    if not cfg.run_file:  # a measure deeper than the search (R@100 of a depth-10 run) is bounded by it
        info["searched"] = (f"{cfg.backend}{' (approximate)' if cfg.backend in ANN_BACKENDS else ''}, "
                            f"{cfg.depth} documents per query")
    result = LanguageResult(lang, "ok", metrics=metrics.aggregate(scores), n_queries=len(qrels),
                            run_path=str(lang_dir / "run.trec"), info=info)
    saved_result = {k: v for k, v in asdict(result).items() if k != "reused"}
    record = {"key": key, "config_hash": result_key(keyed), "config": lang_cfg,
              "inputs": identity,
              "result": saved_result, "files": record_files(lang_dir)}
    write_json_atomic(done, record | {"record_sha256": record_sha256(record)})
    return result


def markdown_table(results: list[LanguageResult], measures: list[str], system: str) -> str:
    lines = [f"| lang | system | queries | {' | '.join(measures)} |", "|" + "---|" * (len(measures) + 3)]
    for r in results:
        if r.status == "ok":
            cells = " | ".join(f"{r.metrics[m]:.4f}" for m in measures)
            lines.append(f"| {r.lang} | {system} | {r.n_queries} | {cells} |")
        else:
            lines.append(f"| {r.lang} | {system} | – | {' | '.join('n/a' for _ in measures)} |")
    notes = [f"- **{r.lang} unavailable**: {r.reason}" for r in results if r.status != "ok"]
    corpora = sorted({r.info.get("corpus", "") for r in results if r.status == "ok"} - {""})
    notes += [f"- corpus: {c}" for c in corpora]
    searched = sorted({r.info.get("searched", "") for r in results if r.status == "ok"} - {""})
    notes += [f"- search: {s}" for s in searched]
    precisions = sorted({f"{p['precision']} ({p['reason']})" for r in results
                         if r.status == "ok" and (p := r.info.get("precision"))})
    notes += [f"- precision: {p}" for p in precisions]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def evaluate(cfg: EvalConfig, out: Path, on_language: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None, overwrite: bool = False) -> list[LanguageResult]:
    """Evaluate every language of ``cfg``; write per-language artifacts and the summary.

    ``out`` may hold earlier results of the *same* system (they are reused or recomputed per language by
    input hashes); results of another system there are refused unless ``overwrite`` (which clears ``out``).
    One process at a time writes ``out``.
    """
    if cfg.run_file and len(cfg.langs) != 1:
        raise ClirOtError("--run evaluates one run file: give exactly one --lang")
    if not cfg.run_file and not cfg.model:
        raise ClirOtError("give --model (a dense model or bm25) or --run FILE")
    started = time.time()
    out = Path(out)
    system = cfg.system_name()
    with folder_lock(out, "evaluate"):
        previous = _saved_system(out)
        if previous is not None and previous != system:
            if not overwrite:
                raise ClirOtError(f"{out} holds the results of another system ({previous}); choose another --out "
                                  "or pass --overwrite to replace them")
            prepare_output_dir(out, overwrite=True)
        elif (differs := _other_configuration(out, cfg)) is not None:
            if not overwrite:
                raise ClirOtError(f"{out} holds {system} evaluated with another configuration ({differs}); choose "
                                  "another --out or pass --overwrite to replace it")
            prepare_output_dir(out, overwrite=True)
        results = []
        for lang in cfg.langs:
            if on_language:
                on_language(lang)
            results.append(evaluate_language(lang, cfg, out, on_progress))
        write_json_atomic(out / "results.json", {"system": system, "results": [
            {k: v for k, v in asdict(r).items() if k != "reused"} for r in results]})
        write_text_atomic(out / "results.md", markdown_table(results, cfg.measures, system))
        write_manifest(out, "evaluate", asdict(cfg), key=result_key(cfg), started=started,
                       extra={"reused": [r.lang for r in results if r.reused]})
    return results


#: configuration fields that do not change a language's result (how texts are batched)
_NOT_RESULT = ("lang", "batch_size")


def _other_configuration(out: Path, cfg: EvalConfig) -> str | None:
    """The first field (``name: saved vs now``) in which a language already evaluated in ``out`` was configured
    otherwise than ``cfg`` would (backend, pool, depth, precision, queries, ...), or ``None``. Changed inputs
    under the same configuration (new weights at the same path) are not a difference: they are recomputed."""
    for path in sorted(Path(out).glob("*/metrics.json")):
        saved = (read_json_or_none(path) or {}).get("config")
        if not isinstance(saved, dict) or path.parent.name not in cfg.langs:
            continue
        saved, now = keyed_fields(type(cfg), saved), keyed_fields(type(cfg), cfg.lang_config(path.parent.name))
        for key in sorted(set(saved) | set(now)):
            if key not in _NOT_RESULT and saved.get(key) != now.get(key):
                return f"{key}: {saved.get(key)!r} saved, {now.get(key)!r} now"
    return None


def _saved_system(out: Path) -> str | None:
    """The system whose results ``out`` holds, or ``None`` for an empty (or new) folder."""
    summary = read_json_or_none(out / "results.json")  # a damaged summary: the languages' records decide
    if isinstance(summary, dict) and summary.get("system"):
        return str(summary["system"])
    # a kill between the languages and the summary: the languages' own records name the system
    saved = [read_json_or_none(p) for p in sorted(out.glob("*/metrics.json"))] if out.is_dir() else []
    names = {system_name(r["config"]) if isinstance(r, dict) and isinstance(r.get("config"), dict) else None
             for r in saved}
    if len(names) == 1 and None not in names:
        return names.pop()
    if out.is_dir() and any(p.name != ".lock" for p in out.iterdir()):
        return "files not written by clir-ot evaluate"
    return None
