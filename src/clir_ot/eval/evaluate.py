"""Evaluate a system on MIRACL: search (dense model, BM25 or a given run), optional fusion, metrics.

    clir-ot evaluate --benchmark miracl --lang yo --model me5-small --out runs/eval/me5

Per language, ``OUT/<lang>/`` receives ``run.trec`` (TREC, 6 fields, trec_eval order),
``per_query.csv`` / ``per_query.json``, ``metrics.json``, and for dense models the resumable
``embeddings/``. ``OUT/results.json`` and ``OUT/results.md`` hold the table over languages, with
every unavailable language listed with its reason. A language whose ``metrics.json`` exists with
the same configuration hash is not recomputed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..artifacts import config_hash, write_json_atomic, write_manifest, write_text_atomic
from ..data import miracl
from ..errors import ClirOtError, DataUnavailableError
from ..retrieval import fusion
from ..retrieval.runfile import read_run, write_run
from ..retrieval.search import to_run
from . import metrics

BM25_NAMES = ("bm25",)


@dataclass
class EvalConfig:
    langs: list[str]
    split: str = "dev"
    model: str | None = None  # dense model name/dir/HF id, or "bm25"
    run_file: str | None = None
    fuse: str | None = None  # None | "bm25" (interpolation) | "rrf"
    alpha: float = 0.5
    depth: int = 1000
    batch_size: int = 32
    precision: str = "fp32"
    fp16_storage: bool = False
    backend: str = "exact"
    #: None = the full corpus. N = a reduced pool: every judged passage plus N random others (seeded);
    #: cheaper, easier than the full corpus, and labelled as such wherever reported.
    pool_distractors: int | None = None
    pool_seed: int = 0
    #: None = every query. N = N queries drawn at random (seeded): a set-up check, not a result.
    query_sample: int | None = None
    measures: list[str] = field(default_factory=lambda: list(metrics.DEFAULT_MEASURES))

    def corpus_label(self) -> str:
        return miracl.corpus_label(self.pool_distractors, self.pool_seed, self.query_sample)

    def query_ids(self, lang: str) -> set[str] | None:
        return miracl.sample_query_ids(lang, self.split, self.query_sample, self.pool_seed)

    def system_name(self) -> str:
        base = self.model or Path(self.run_file or "run").name
        return base + (f"+bm25({self.fuse}{'' if self.fuse == 'rrf' else f', α={self.alpha}'})" if self.fuse else "")

    def lang_config(self, lang: str) -> dict:
        cfg = asdict(self) | {"lang": lang}
        cfg.pop("langs")
        return cfg


@dataclass
class LanguageResult:
    lang: str
    status: str  # "ok" | "unavailable"
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    n_queries: int = 0
    run_path: str = ""
    info: dict = field(default_factory=dict)


def corpus_docs(lang: str, cfg: EvalConfig) -> list[miracl.Doc]:
    """The passages searched: the full corpus or the reduced pool of ``cfg``."""
    return miracl.load_corpus(lang, cfg.split, cfg.pool_distractors, cfg.pool_seed, cfg.query_ids(lang))


def selected_queries(lang: str, cfg: EvalConfig) -> list[miracl.Query]:
    return sampled_topics(lang, cfg.split, cfg.query_ids(lang))


def sampled_topics(lang: str, split: str, keep: set[str] | None) -> list[miracl.Query]:
    """The queries of ``lang`` whose ids are in ``keep`` (all queries when ``None``)."""
    return [q for q in miracl.load_queries(lang, split) if keep is None or q.query_id in keep]


def judged_qrels(lang: str, split: str, queries: list[miracl.Query]) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: relevance}}`` restricted to ``queries``: the qrels the metrics count."""
    keep = {q.query_id for q in queries}
    return {qid: j for qid, j in metrics.qrels_dict(miracl.load_qrels(lang, split)).items() if qid in keep}


def bm25_run(lang: str, cfg: EvalConfig) -> tuple[dict, dict]:
    from ..retrieval.bm25 import BM25Index

    docs = corpus_docs(lang, cfg)
    queries = selected_queries(lang, cfg)
    index = BM25Index([d.text for d in docs])
    scores, idx = index.search([q.text for q in queries], cfg.depth)
    return to_run([q.query_id for q in queries], [d.doc_id for d in docs], scores, idx), index.describe()


def dense_run(lang: str, cfg: EvalConfig, lang_dir: Path,
              on_progress: Callable[[int, int], None] | None) -> tuple[dict, dict]:
    from ..models import load_encoder
    from ..retrieval.encode import encode_corpus, load_embeddings
    from ..retrieval.search import search

    docs = corpus_docs(lang, cfg)
    queries = selected_queries(lang, cfg)
    encoder = load_encoder(cfg.model).set_precision(cfg.precision)
    emb_dir = lang_dir / "embeddings"
    enc_config = {"model": cfg.model, "lang": lang, "split": cfg.split, "precision": cfg.precision,
                  "corpus": cfg.corpus_label(),
                  "fp16_storage": cfg.fp16_storage, "spec": asdict(encoder.spec)}
    total = len(docs)
    manifest = encode_corpus(encoder, [d.doc_id for d in docs], [d.text for d in docs],
                             [q.query_id for q in queries], [q.text for q in queries], emb_dir, enc_config,
                             batch_size=cfg.batch_size, fp16=cfg.fp16_storage,
                             on_progress=(lambda n: on_progress(n, total)) if on_progress else None)
    doc_ids, corpus, query_ids, q = load_embeddings(emb_dir)
    started = time.time()
    scores, idx = search(q, corpus, cfg.depth, cfg.backend)
    return to_run(query_ids, doc_ids, scores, idx), {
        "encoder": manifest.get("encoder"), "encode_wall_time_s": manifest.get("wall_time_s"),
        "search_backend": cfg.backend, "search_time_s": round(time.time() - started, 3)}


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
    lang_dir = out / lang
    lang_cfg = cfg.lang_config(lang)
    done = lang_dir / "metrics.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config_hash") == config_hash(lang_cfg):
            return LanguageResult(**saved["result"])
    started = time.time()
    try:
        queries = selected_queries(lang, cfg)
        qrels = judged_qrels(lang, cfg.split, queries)
        if cfg.run_file:
            run, info = read_run(Path(cfg.run_file), [q.query_id for q in queries]), {"run_file": cfg.run_file}
        elif cfg.model in BM25_NAMES:
            run, info = bm25_run(lang, cfg)
        else:
            run, info = dense_run(lang, cfg, lang_dir, on_progress)
        if cfg.fuse:
            sparse, bm25_info = bm25_run(lang, cfg)
            run = fusion.interpolate(run, sparse, cfg.alpha, cfg.depth) if cfg.fuse == "bm25" \
                else fusion.reciprocal_rank_fusion([run, sparse], depth=cfg.depth)
            info["fusion"] = {"method": cfg.fuse, "alpha": cfg.alpha, "bm25": bm25_info}
    except DataUnavailableError as exc:
        return LanguageResult(lang, "unavailable", str(exc))
    lang_dir.mkdir(parents=True, exist_ok=True)
    write_run(lang_dir / "run.trec", run, tag=cfg.system_name())
    scores = metrics.per_query(qrels, run, cfg.measures)
    write_text_atomic(lang_dir / "per_query.csv", per_query_csv(scores))
    write_json_atomic(lang_dir / "per_query.json", scores)
    info["wall_time_s"] = round(time.time() - started, 2)
    info["corpus"] = cfg.corpus_label()
    result = LanguageResult(lang, "ok", metrics=metrics.aggregate(scores), n_queries=len(qrels),
                            run_path=str(lang_dir / "run.trec"), info=info)
    write_json_atomic(done, {"config_hash": config_hash(lang_cfg), "config": lang_cfg, "result": asdict(result)})
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
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def evaluate(cfg: EvalConfig, out: Path, on_language: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> list[LanguageResult]:
    """Evaluate every language of ``cfg``; write per-language artifacts and the summary."""
    if cfg.run_file and len(cfg.langs) != 1:
        raise ClirOtError("--run evaluates one run file: give exactly one --lang")
    if not cfg.run_file and not cfg.model:
        raise ClirOtError("give --model (a dense model or bm25) or --run FILE")
    if cfg.fuse not in (None, "bm25", "rrf"):
        raise ClirOtError(f"unknown fusion {cfg.fuse!r}; expected bm25 (interpolation) or rrf")
    started = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for lang in cfg.langs:
        if on_language:
            on_language(lang)
        results.append(evaluate_language(lang, cfg, out, on_progress))
    system = cfg.system_name()
    write_json_atomic(out / "results.json", {"system": system, "results": [asdict(r) for r in results]})
    write_text_atomic(out / "results.md", markdown_table(results, cfg.measures, system))
    write_manifest(out, "evaluate", asdict(cfg), started=started)
    return results

