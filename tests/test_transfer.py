"""Bundles in parts: packed and unpacked bit for bit, and any damaged part refused with one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clir_ot.errors import ClirOtError
from clir_ot.transfer import MANIFEST, read_parts, verify_parts, write_parts

pytestmark = pytest.mark.unit

RESOURCES = Path(__file__).resolve().parents[1] / "src" / "clir_ot" / "resources" / "miracl"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Real data (the embedded yo corpus, 3 MB, and its qrels), random bytes and an empty file."""
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(700_000))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    return {"miracl/yo.docs.jsonl.gz": RESOURCES / "miracl-corpus-v1.0-yo.docs.jsonl.gz",
            "miracl/qrels.yo.tsv": RESOURCES / "topics-qrels" / "qrels.miracl-v1.0-yo-dev.tsv",
            "models/noise.bin": noise, "empty.txt": empty}


def test_pack_then_unpack_gives_every_file_back_bit_for_bit(files: dict[str, Path], tmp_path: Path) -> None:
    manifest = write_parts(files, tmp_path / "bundle", part_size=2**20, extra={"command": "clir-ot bundle --unpack"})
    parts = sorted((tmp_path / "bundle").glob("bundle.part-*"))
    assert [p.name for p in parts] == [p["name"] for p in manifest["parts"]] and len(parts) >= 4
    assert all(p.stat().st_size <= 2**20 for p in parts) and manifest["command"] == "clir-ot bundle --unpack"
    read_parts(tmp_path / "bundle", tmp_path / "into")
    for name, source in files.items():
        assert (tmp_path / "into" / name).read_bytes() == source.read_bytes(), name
    assert sorted(str(p.relative_to(tmp_path / "into")) for p in (tmp_path / "into").rglob("*") if p.is_file()) \
        == sorted(files)


def test_the_parts_are_compressed_and_a_format_this_clir_ot_does_not_read_is_refused(files: dict[str, Path],
                                                                                     tmp_path: Path) -> None:
    qrels = files["miracl/qrels.yo.tsv"]
    manifest = write_parts({"qrels.tsv": qrels}, tmp_path / "bundle")
    assert manifest["format"] == 2 and manifest["parts"][0]["bytes"] < qrels.stat().st_size / 3
    manifest["format"] = 3
    (tmp_path / "bundle" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ClirOtError, match="has format 3, which this clir-ot does not read"):
        read_parts(tmp_path / "bundle", tmp_path / "into")
    assert not (tmp_path / "into").exists()


def test_the_same_files_pack_to_the_same_bytes(files: dict[str, Path], tmp_path: Path) -> None:
    a = write_parts(files, tmp_path / "a", part_size=2**20)
    os.utime(files["empty.txt"], (0, 10**9))  # another time stamp, another order: the same parts
    os.chmod(files["models/noise.bin"], 0o600)
    b = write_parts(dict(reversed(list(files.items()))), tmp_path / "b", part_size=2**20)
    assert a["parts"] == b["parts"]


@pytest.mark.parametrize("damage", ["missing", "truncated", "longer", "altered"])
def test_a_damaged_part_is_refused_with_one_line_before_anything_is_written(files: dict[str, Path], tmp_path: Path,
                                                                           damage: str) -> None:
    write_parts(files, tmp_path / "bundle", part_size=2**20)
    part = tmp_path / "bundle" / "bundle.part-001"
    data = part.read_bytes()
    if damage == "missing":
        part.unlink()
    elif damage == "truncated":
        part.write_bytes(data[:-10])
    elif damage == "longer":
        part.write_bytes(data + b"x")
    else:
        part.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    word = {"missing": "is missing", "truncated": "is truncated", "longer": "is longer than packed",
            "altered": "was altered"}[damage]
    with pytest.raises(ClirOtError, match=f"bundle part bundle.part-001 {word}") as info:
        read_parts(tmp_path / "bundle", tmp_path / "into")
    assert "\n" not in str(info.value) and not (tmp_path / "into").exists()


def test_a_folder_without_a_manifest_or_with_a_foreign_entry_is_refused(files: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    with pytest.raises(ClirOtError, match="not a bundle"):
        verify_parts(tmp_path)
    write_parts(files, tmp_path / "bundle", part_size=2**20)
    manifest = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    del manifest["files"]["empty.txt"]
    (tmp_path / "bundle" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ClirOtError, match="'empty.txt' is not a regular file that bundle.json lists once"):
        read_parts(tmp_path / "bundle", tmp_path / "into")
    assert not list((tmp_path / "into").iterdir())  # staged, refused, discarded: nothing landed
    with pytest.raises(ClirOtError, match="not a plain relative path"):
        write_parts({"../escape": files["empty.txt"]}, tmp_path / "bad")


def test_the_bundle_command_packs_folders_and_files_and_unpack_refuses_an_altered_part(tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from clir_ot.cli import app

    def run(*args: str):  # a narrow terminal: the unpack command still prints on one line, to be copied whole
        return CliRunner(env={"COLUMNS": "40", "NO_COLOR": "1", "TERM": "dumb"}).invoke(app, [str(a) for a in args])

    topics = shutil.copytree(RESOURCES / "topics-qrels", tmp_path / "topics-qrels")
    corpus = RESOURCES / "miracl-corpus-v1.0-yo.docs.jsonl.gz"
    packed = run("bundle", topics, corpus, "--out", tmp_path / "b", "--part-size", "1")
    assert packed.exit_code == 0, packed.output
    assert "part(s) of at most 1 MiB" in " ".join(packed.stdout.split())
    assert "\nclir-ot bundle --unpack b --into <folder>\n" in packed.stdout
    again = run("bundle", corpus, "--out", tmp_path / "b")
    assert again.exit_code == 1 and "already exists" in again.stderr
    unpacked = run("bundle", "--unpack", tmp_path / "b", "--into", tmp_path / "into")
    assert unpacked.exit_code == 0, unpacked.output
    assert (tmp_path / "into" / corpus.name).read_bytes() == corpus.read_bytes()
    for f in topics.iterdir():
        assert (tmp_path / "into" / "topics-qrels" / f.name).read_bytes() == f.read_bytes()
    last = sorted((tmp_path / "b").glob("bundle.part-*"))[-1]
    data = last.read_bytes()
    last.write_bytes(data[:10] + bytes([data[10] ^ 1]) + data[11:])  # one bit of a file's bytes
    refused = run("bundle", "--unpack", tmp_path / "b", "--into", tmp_path / "into2")
    assert refused.exit_code == 1 and f"bundle part {last.name} " in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "into2").exists()


def test_the_node_side_unpacker_needs_nothing_but_the_checkout(files: dict[str, Path], tmp_path: Path) -> None:
    """``python -m clir_ot.transfer`` runs where no dependency is installed yet: it imports nothing beyond the
    standard library and PyYAML, unpacks, writes env.sh, and exits 1 with one line on a damaged part."""
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[1] / "src"
    write_parts(files, tmp_path / "b", part_size=2**20)
    probe = ("import sys, clir_ot.transfer as t; heavy = {'torch', 'numpy', 'transformers', 'ir_datasets', 'typer'}; "
             "print(sorted(heavy & set(sys.modules)))")
    env = {"PYTHONPATH": str(src), "PATH": os.environ.get("PATH", "")}
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
    ok = subprocess.run([sys.executable, "-m", "clir_ot.transfer", "--unpack", str(tmp_path / "b"), "--into",
                         str(tmp_path / "node")], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "every part and file matched" in ok.stdout
    assert (tmp_path / "node" / "env.sh").is_file()
    (tmp_path / "b" / "bundle.part-000").unlink()
    bad = subprocess.run([sys.executable, "-m", "clir_ot.transfer", "--unpack", str(tmp_path / "b"), "--into",
                          str(tmp_path / "node2")], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        f"error: bundle part bundle.part-000 is missing from {tmp_path / 'b'}: transfer it again")
