"""Retrieval and evaluation commands: ``encode``, ``index``, ``evaluate`` (``eval``), ``compare``,
``benchmarks`` and ``cache``.

    clir-ot evaluate --model me5-small --lang yo       # retrieve and score MIRACL yo dev
    clir-ot compare runs/eval/a 'runs/eval/b-s*'       # a paired test of two systems
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..data.benchmarks import BENCHMARKS
from ..errors import ClirOtError
from ..languages import parse_language_list
from ..retrieval import SHARD_SIZE
from ..retrieval.transforms import TRANSFORMS
from .choices import Backend, BenchmarkChoice, Fusion, Precision, PrecisionChoice, Transform, described
from .common import console, err_console, progress_bar, refuse_existing

app = typer.Typer()


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` → ``(i, n)`` with 0 ≤ i < n; one clear line otherwise."""
    if text is None:
        return None
    i, sep, n = text.partition("/")
    if not (sep and i.strip().isdigit() and n.strip().isdigit() and 0 <= int(i) < int(n)):
        raise ClirOtError(f"--shard {text!r}: expected i/n with 0 <= i < n (e.g. 0/4)")
    return int(i), int(n)


@app.command("encode")
def encode_cmd(
    model: Annotated[str, typer.Option(help="minilm, me5-small, a model directory or an HF id.")],
    out: Annotated[Path, typer.Option(help="Embeddings directory.")],
    lang: Annotated[str, typer.Option(help="Language.")] = "yo",
    benchmark: Annotated[BenchmarkChoice, typer.Option(help="Benchmark: `clir-ot benchmarks` lists them.")]
    = BenchmarkChoice.miracl,
    split: Annotated[str | None, typer.Option(help="Split (default: the benchmark's).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch.")] = 32,
    precision: Precision = PrecisionChoice.auto,
    fp16_storage: Annotated[bool, typer.Option("--fp16", help="Store embeddings as float16.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing embeddings directory.")] = False,
    pool: Annotated[int | None, typer.Option(min=0, help="Reduced pool: judged passages + N random ones "
                                             "(default: the full corpus).")] = None,
    shard: Annotated[str | None, typer.Option(help="i/n: encode only every n-th shard file from the i-th (one "
                                              "process of n, e.g. one per GPU); a run without --shard then "
                                              "finishes the directory.")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Documents per shard file (the unit of resuming and "
                                            "of --shard).")] = SHARD_SIZE,
) -> None:
    """Encode a benchmark's documents (MIRACL: title + text) and its queries; resumes an interrupted run.
    With --shard i/n, n processes share the work; the same command without --shard merges (finishes) it."""
    from ..artifacts import folder_lock
    from ..data.benchmarks import get_benchmark
    from ..eval.evaluate import embeddings_config
    from ..eval.fidelity import require_fidelity, resolve_precision
    from ..models import load_encoder
    from ..retrieval.encode import encode_corpus, shard_ranges

    part = parse_shard(shard)
    if part and overwrite:
        raise ClirOtError("--overwrite with --shard would let one process wipe the others' shards; "
                          "clear the folder first (one run with --overwrite, or remove it)")
    bench = get_benchmark(benchmark.value)
    split = split or bench.default_split
    lang = bench.check(lang, split)
    resolved = resolve_precision(precision.value, [model])["precision"]
    require_fidelity(model, resolved)
    docs = bench.pool(lang, split, pool)
    queries = bench.queries(lang, split)
    encoder = load_encoder(model).set_precision(resolved)
    config = embeddings_config(encoder, model, bench, lang, split, encoder.precision, fp16_storage,
                               bench.corpus_label(lang, pool), queries, [d.doc_id for d in docs])
    lock = f".lock-shard-{part[0]}-of-{part[1]}" if part else ".lock"
    with folder_lock(out, "encode", name=lock), progress_bar() as progress:
        mine = sum(map(len, shard_ranges(len(docs), shard_size, part).values()))
        task = progress.add_task(f"encode {lang} ({mine:,} passages)", total=mine)
        manifest = encode_corpus(encoder, [d.doc_id for d in docs], [d.text for d in docs],
                                 [q.query_id for q in queries], [q.text for q in queries], out, config,
                                 batch_size=batch_size, fp16=fp16_storage, overwrite=overwrite,
                                 shard=part, shard_size=shard_size, on_progress=lambda n: progress.advance(task, n))
    if part:
        missing = manifest["shards_missing"]
        console.print(f"shard {shard}: {manifest['encoded_this_run']:,} passages encoded into {out}; "
                      + (f"{len(missing)} shard file(s) still missing ({', '.join(map(str, missing[:8]))}"
                         f"{' …' if len(missing) > 8 else ''})" if missing
                         else "the directory is finished" if manifest["complete"]
                         else "every shard is done: run the same command without --shard to finish"),
                      markup=False, highlight=False)
        return
    if manifest.get("already_complete"):
        console.print(f"{out} is already complete with this configuration ({manifest['documents']:,} passages, "
                      f"{manifest['queries']} queries): nothing encoded", markup=False)
        return
    console.print(f"encoded {manifest['encoded_this_run']:,} of {manifest['documents']:,} passages and "
                  f"{manifest['queries']} queries into {out} ({manifest.get('passages_per_second_this_run')} "
                  "passages/s this run)", markup=False)


@app.command("index")
def index_cmd(
    embeddings: Annotated[Path, typer.Option(help="Embeddings directory written by `clir-ot encode`.")],
    out: Annotated[Path, typer.Option(help="TREC run file to write.")],
    backend: Annotated[Backend, typer.Option(help="exact (chunked matmul + top-k), faiss (IndexFlatIP), or an ANN "
                                             "index kept beside the embeddings: hnsw, ivf, ivfpq.")] = Backend.exact,
    depth: Annotated[int, typer.Option(min=1, help="Documents per query.")] = 1000,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run file.")] = False,
) -> None:
    """Search the encoded queries against the encoded corpus into a run file: exact inner product, or an ANN
    index built (once) beside the embeddings."""
    import time

    from ..retrieval.encode import load_embeddings
    from ..retrieval.runfile import write_run, write_run_record
    from ..retrieval.search import search, to_run

    refuse_existing(out, overwrite)
    doc_ids, corpus, query_ids, queries = load_embeddings(embeddings)
    started = time.time()
    scores, idx, _ = search(queries, corpus, depth, backend.value, embeddings)
    elapsed = time.time() - started
    write_run(out, to_run(query_ids, doc_ids, scores, idx), tag=f"clir-ot-{backend.value}")
    write_run_record(out, {"embeddings": str(embeddings), "backend": backend.value, "depth": depth,
                           "passages": len(doc_ids), "queries": len(query_ids)})
    console.print(f"searched {len(query_ids)} queries over {len(doc_ids):,} passages ({backend.value}) in "
                  f"{elapsed:.2f} s → {out}", markup=False)


def evaluate_cmd(
    benchmark: Annotated[BenchmarkChoice, typer.Option(help=described({n: b.title for n, b in BENCHMARKS.items()}))]
    = BenchmarkChoice.miracl,
    langs: Annotated[str | None, typer.Option("--lang", "--langs", help="Languages by code, or all (the "
                                              "default: miracl sw,yo,te,bn,hi,th; bible-clir sw,hi,bn,de,fr,es,ru)."
                                              )] = None,
    model: Annotated[str | None, typer.Option(help="bm25 (Pyserini's), bm25-strong (lowercase, regex tokens), minilm, "
                                              "me5-small, a model directory or an HF id (default: me5-small, the "
                                              "student before distillation).")] = None,
    query_model: Annotated[str | None, typer.Option(help="Encode the queries with this dense model instead (e.g. "
                                                    "the frozen teacher: OPTICAL's shape).")] = None,
    run_file: Annotated[Path | None, typer.Option("--run", help="Evaluate this TREC run file instead.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: runs/eval/<system>).")] = None,
    split: Annotated[str | None, typer.Option(help="Split (default: miracl dev, bible-clir test).")] = None,
    depth: Annotated[int | None, typer.Option(min=1, help="Documents retrieved per query (default: miracl 1000, "
                                              "bible-clir 100).")] = None,
    fuse: Annotated[Fusion | None, typer.Option(help="Fuse with BM25: bm25 (interpolation) or rrf.")] = None,
    fuse_with: Annotated[str, typer.Option(help="The lexical run fused: bm25 or bm25-strong.")] = "bm25",
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Interpolation weight of the dense run.")] = 0.5,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch when encoding.")] = 32,
    precision: Precision = PrecisionChoice.auto,
    backend: Annotated[Backend, typer.Option(help="Search backend: exact (chunked matmul), faiss (flat), or an "
                                             "approximate FAISS index for large corpora: hnsw, ivf, ivfpq.")]
    = Backend.exact,
    pool: Annotated[int | None, typer.Option(min=0, help="Reduced pool: judged passages + N random ones "
                                             "(cheap diagnostic; default: the full corpus).")] = None,
    transform: Annotated[Transform, typer.Option(help="A training-free control on the dense embeddings before "
                                                 "the search, fitted without judgements: " + described(TRANSFORMS))]
    = Transform.none,
    overwrite: Annotated[bool, typer.Option(help="Replace another system's results in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout (for scripts).")]
    = False,
) -> None:
    """Retrieve and score a benchmark with trec_eval -c semantics: MIRACL dev Recall@100 (headline), MAP,
    nDCG@10, MRR@10; bible-clir R@1, R@10, R@100, MRR@10.

    Exits 1 when none of the requested languages could be evaluated.
    """
    import json
    from dataclasses import asdict

    from ..data.benchmarks import get_benchmark
    from ..eval.evaluate import EvalConfig, evaluate, markdown_table
    from ..layout import baseline_folder

    bench = get_benchmark(benchmark.value)
    if model is None and run_file is None:
        model = "me5-small"
        err_console.print("no --model or --run given: evaluating me5-small, the student before distillation",
                          markup=False, highlight=False)
    cfg = EvalConfig(langs=parse_language_list(langs, bench.default_langs, bench.languages()),
                     benchmark=bench.name, split=split, model=model, query_model=query_model,
                     run_file=str(run_file) if run_file else None, fuse=fuse.value if fuse else None, alpha=alpha,
                     fuse_with=fuse_with, depth=depth, batch_size=batch_size, precision=precision.value,
                     backend=backend.value, pool_distractors=pool, transform=transform.value)
    folder = baseline_folder(cfg.system_name())
    out = out or Path("runs") / "eval" / (folder if bench.name == "miracl" else f"{bench.name}-{folder}")
    with progress_bar() as progress:
        task = progress.add_task("", total=None, visible=False)

        def on_language(lang: str) -> None:
            progress.update(task, description=escape(f"{cfg.system_name()} {lang}"), completed=0, total=None,
                            visible=True)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, total=total, advance=done)

        results = evaluate(cfg, out, on_language, on_progress, overwrite=overwrite)
    for r in results:
        if r.reused:
            err_console.print(f"reused {r.lang}: {out / r.lang / 'metrics.json'} was made from the same "
                              "configuration, model weights, corpus, topics and qrels (sha256)",
                              markup=False, highlight=False)
        elif (r.info or {}).get("recomputed"):
            err_console.print(f"{r.lang}: {r.info['recomputed']}", markup=False, highlight=False)
    if as_json:
        print(json.dumps({"system": cfg.system_name(), "out": str(out), "results": [asdict(r) for r in results]},
                         allow_nan=False, ensure_ascii=False, indent=2))
    else:
        console.print(markdown_table(results, cfg.measures, cfg.system_name()), markup=False, highlight=False)
        console.print(f"run files, per-query scores and metrics in {out}/", markup=False, highlight=False)
    if not any(r.status == "ok" for r in results):
        raise ClirOtError(f"none of the requested languages ({', '.join(cfg.langs)}) could be evaluated; "
                          "see the reasons above")


app.command("evaluate")(evaluate_cmd)
app.command("eval", help="Retrieve and score a benchmark (same as `evaluate`): MIRACL dev Recall@100, MAP, "
            "nDCG@10, MRR@10; bible-clir R@1, R@10, R@100, MRR@10; trec_eval -c semantics. Exits 1 when no "
            "requested language could be evaluated.")(evaluate_cmd)


@app.command("compare")
def compare_cmd(
    sides: Annotated[list[str], typer.Argument(
        help="Two sides, a then b (Δ = a − b): each an evaluation folder (`clir-ot evaluate --out`, or a "
             "reproduce run's eval/<condition>-s<seed>) or a quoted glob of folders, one per seed "
             "('runs/eval/kd-s*').", show_default=False)],
    langs: Annotated[str | None, typer.Option("--lang", "--langs", help="Languages by code (default: every "
                                              "language all folders evaluated).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparisons as JSON on stdout.")] = False,
) -> None:
    """Paired test of two systems over the same queries, each one evaluation or several seeds: per language
    and measure Δ = a − b, a 95% CI (query bootstrap; with seeds, queries and seeds resampled), randomization
    and t p-values over queries, Holm across the table. Refused unless all searched the same corpus, pool,
    queries and judgements."""
    import json
    from dataclasses import asdict

    from ..eval.compare import compare_evaluations, resolve_side

    if len(sides) != 2:
        raise ClirOtError(f"compare takes two sides, a and b, not {len(sides)}: give several seeds of a side as "
                          "one quoted glob ('runs/eval/kd-s*'), which the shell then leaves to compare")
    known = tuple(sorted({lang for bench in BENCHMARKS.values() for lang in bench.languages()}))
    languages = parse_language_list(langs, (), known)
    side_a, side_b = resolve_side(sides[0]), resolve_side(sides[1])
    rows = compare_evaluations(side_a, side_b, languages)
    several_seeds = len(side_a) > 1 or len(side_b) > 1
    if as_json:
        print(json.dumps({"a": [str(f) for f in side_a], "b": [str(f) for f in side_b],
                          "comparisons": [{**asdict(r), "p_test": r.p_test, "holds": r.holds} for r in rows]},
                         indent=2, allow_nan=False))
        return

    def describe(side: list[Path]) -> str:
        return str(side[0]) if len(side) == 1 else f"{len(side)} seeds: " + ", ".join(map(str, side))

    test = "two-level bootstrap over queries and seeds" if several_seeds else "paired over queries"
    table = Table(title=f"a = {describe(side_a)}\nb = {describe(side_b)}\n{test}; Holm across the {len(rows)} "
                  "tests", box=None, collapse_padding=True, pad_edge=False)
    columns = ["lang", "measure", "n", "a", "b", "Δ a−b", "95% CI"]
    columns += ["p boot", "p Holm", "p t"] if several_seeds else ["p rand", "p Holm", "p t"]
    columns += ["holds"]
    for col in columns:
        table.add_column(col, overflow="fold")  # a narrow terminal folds a number, never cuts it
    for r in rows:
        diff = f"{r.diff:+.4f}"
        cells = [r.lang, r.measure, str(r.n_queries), f"{r.mean_a:.4f}", f"{r.mean_b:.4f}",
                 f"[bold]{diff}[/bold]" if r.holds else diff, f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"]
        cells += [f"{r.p_test:.4f}", f"{r.p_holm:.4f}", f"{r.p_t:.4f}", "yes" if r.holds else "no"]
        table.add_row(*cells)
    console.print(table)
    if several_seeds:
        legend = ("a, b: means over seeds and queries; holds (and bold Δ): Holm-adjusted p < 0.05 and the interval "
                  "excludes 0; "
                  "p boot: two-level bootstrap, queries and seeds resampled (Holm's input); p t: paired t over "
                  "queries on the seed means (query variance only; --json adds the randomization test's)")
    else:
        legend = ("holds (and bold Δ): Holm-adjusted p < 0.05 and the interval excludes 0; p rand: paired "
                  "randomization (Holm's input), p t: paired t (one run per side: query variance only)")
    console.print(legend, markup=False, highlight=False)


@app.command("benchmarks")
def benchmarks_cmd() -> None:
    """List the benchmarks: name, what it is, split, measures and languages."""
    table = Table(title="benchmarks (--benchmark)")
    for col in ("name", "what", "split", "measures", "languages"):
        table.add_column(col, overflow="fold")
    for b in BENCHMARKS.values():
        table.add_row(b.name, b.title, b.default_split, ", ".join(b.measures), ", ".join(b.languages()))
    console.print(table)


@app.command("cache")
def cache_cmd(
    clear: Annotated[bool, typer.Option(help="Remove every entry (entries being written now are kept).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON on stdout.")] = False,
) -> None:
    """List the embedding cache (document embeddings per model weights, collection and precision, under
    $CLIR_OT_CACHE/embeddings), or clear it."""
    import json

    from ..retrieval import embedding_cache

    if clear:
        removed, freed = embedding_cache.clear()
        console.print(f"removed {removed} embedding cache entr{'y' if removed == 1 else 'ies'} "
                      f"({freed / 2**20:.1f} MiB) from {embedding_cache.cache_root()}", markup=False, highlight=False)
        return
    entries = embedding_cache.entries()
    if as_json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"embedding cache: {embedding_cache.cache_root()}")
    for col in ("key", "model", "benchmark", "lang", "searched", "precision", "documents", "MiB", "finished"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(e["key"], str(e["model"]), str(e["benchmark"]), str(e["lang"]), str(e["corpus"]),
                      str(e["precision"]), str(e["documents"]), f"{e['bytes'] / 2**20:.1f}", "yes" if e["complete"]
                      else "no (resumed by the next evaluation)")
    console.print(table)
