"""Files carried to a machine without a network in parts of bounded size, each verified before use.

    write_parts(files, out, part_size)   # bundle.json + bundle.part-000, -001, ... (each ≤ part_size bytes)
    read_parts(folder, into)             # every part checked, then every file, written under ``into``
    PYTHONPATH=src python -m clir_ot.transfer --unpack DIR --into PREFIX   # on the node, nothing installed yet

The files go, sorted by name, into one deterministic tar stream (no timestamps, owners or modes of the machine
that packed it: the same files give the same bytes), compressed with xz (:mod:`lzma`, preset 6: the Bible export
shrinks from 10.5 to 2.5 MiB) and cut into parts of at most ``part_size`` bytes.
``bundle.json`` records each part's size and sha256 and each file's size and sha256. Unpacking refuses, with
one line and before anything is written, a missing, truncated, longer or altered part; it then writes each
file atomically and checks its sha256, so that what lands is bit for bit what was packed.

:func:`install` then sets a prefix up as a bundle of :mod:`clir_ot.bundle` lays it out: ``wheels/`` installed
into ``site-packages/`` (pip, offline), ``cache/`` as ``$CLIR_OT_CACHE`` (recorded audit verdicts), the Bible
export as ``$CLIR_OT_BIBLE_DB``, and ``env.sh`` exporting them. This module needs the standard library and
PyYAML only, so that it runs on a node where nothing else of clir-ot's is installed yet.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import shlex
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

from .artifacts import atomic_path, sha256_file, write_json_atomic
from .errors import ClirOtError
from .settings import ME5_SMALL_FILE

MANIFEST = "bundle.json"
PART = "bundle.part-{:03d}"
#: the default part size: 40 MiB, under the 64 MiB a transfer to the GPU node carries with the repository
DEFAULT_PART_SIZE = 40 * 2**20
_CHUNK = 2**20
#: the manifest's format: 1, a plain tar stream; 2, the same stream compressed with xz
FORMAT = 2
_PRESET = 6


def _check_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name != str(path):
        raise ClirOtError(f"bundle entry {name!r} is not a plain relative path")
    return name


def _tar_stream(files: Mapping[str, Path]) -> Iterator[bytes]:
    """The tar bytes of ``files`` (name in the bundle → path here), sorted by name, without the machine's
    timestamps, owners or modes."""

    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            self.chunks.append(bytes(data))
            return len(data)

    sink = Sink()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(_check_name(name))
            info.size = Path(files[name]).stat().st_size
            info.mode, info.mtime = 0o644, 0
            with open(files[name], "rb") as f:
                tar.addfile(info, f)
            yield from sink.chunks
            sink.chunks.clear()
    yield from sink.chunks


def _xz(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = lzma.LZMACompressor(preset=_PRESET)
    for chunk in chunks:
        yield compressor.compress(chunk)
    yield compressor.flush()


def write_parts(files: Mapping[str, Path], out: Path, part_size: int = DEFAULT_PART_SIZE,
                extra: Mapping[str, object] | None = None) -> dict:
    """Pack ``files`` (name in the bundle → path here) into ``out``: parts of at most ``part_size`` bytes and
    ``bundle.json`` (parts and files with sizes and sha256, plus ``extra``). Returns the manifest."""
    if part_size < 1:
        raise ClirOtError(f"part size must be at least 1 byte, got {part_size}")
    for name, path in files.items():
        _check_name(name)
        if not Path(path).is_file():
            raise ClirOtError(f"cannot bundle {name}: {path} is not a file")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict] = []
    buffer = bytearray()

    def flush(data: bytes) -> None:
        path = out / PART.format(len(parts))
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        parts.append({"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    for chunk in _xz(_tar_stream(files)):
        buffer += chunk
        while len(buffer) >= part_size:
            flush(bytes(buffer[:part_size]))
            del buffer[:part_size]
    if buffer or not parts:
        flush(bytes(buffer))
    manifest = {"format": FORMAT, "part_size": part_size, "parts": parts,
                "files": {name: {"bytes": Path(files[name]).stat().st_size, "sha256": sha256_file(Path(files[name]))}
                          for name in sorted(files)}, **(extra or {})}
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


def verify_parts(folder: Path) -> dict:
    """The manifest of the bundle in ``folder`` once every part it lists is there with its size and sha256;
    one line naming the first part that is missing, truncated, longer or altered otherwise."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        parts = manifest["parts"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClirOtError(f"{folder / MANIFEST} is missing or unreadable ({type(exc).__name__}): not a bundle "
                          "written by `clir-ot bundle`") from None
    for part in parts:
        path = folder / part["name"]
        if not path.is_file():
            raise ClirOtError(f"bundle part {part['name']} is missing from {folder}: transfer it again")
        size = path.stat().st_size
        if size != part["bytes"]:
            what = "truncated" if size < part["bytes"] else "longer than packed"
            raise ClirOtError(f"bundle part {part['name']} is {what} ({size:,} bytes, packed {part['bytes']:,}): "
                              "transfer it again")
        if sha256_file(path) != part["sha256"]:
            raise ClirOtError(f"bundle part {part['name']} was altered (its sha256 is not the one packed): "
                              "transfer it again")
    return manifest


class _Joined(io.RawIOBase):
    """The parts read one after the other, as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.handle = list(paths), None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self.handle is None:
                if not self.paths:
                    return 0
                self.handle = open(self.paths.pop(0), "rb")
            n = self.handle.readinto(buffer)
            if n:
                return n
            self.handle.close()
            self.handle = None


def read_parts(folder: Path, into: Path) -> dict:
    """Verify every part of the bundle in ``folder`` (:func:`verify_parts`), then write each file under
    ``into`` (atomically) and check it against its recorded size and sha256. Returns the manifest."""
    folder, into = Path(folder), Path(into)
    manifest = verify_parts(folder)
    expected = manifest["files"]
    seen = set()
    stream = io.BufferedReader(_Joined([folder / p["name"] for p in manifest["parts"]]), _CHUNK)
    if manifest.get("format") not in (1, FORMAT):
        raise ClirOtError(f"{folder / MANIFEST} has format {manifest.get('format')!r}, which this clir-ot does not "
                          f"read (1 or {FORMAT}): unpack it with the clir-ot that packed it")
    if manifest["format"] == FORMAT:
        stream = lzma.LZMAFile(stream)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = _check_name(member.name)
            if not member.isfile() or name not in expected:
                raise ClirOtError(f"bundle entry {name!r} is not one of the files {MANIFEST} lists")
            source = tar.extractfile(member)
            digest = hashlib.sha256()
            with atomic_path(into / name) as tmp, open(tmp, "wb") as f:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
                if digest.hexdigest() != expected[name]["sha256"]:
                    raise ClirOtError(f"{name} unpacked with another sha256 than the one packed")
            seen.add(name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise ClirOtError(f"the bundle's parts hold no {', '.join(missing[:3])}: it was packed incompletely")
    return manifest


#: where :mod:`clir_ot.bundle` puts each kind of file inside a bundle (and so inside the prefix it unpacks into)
WHEELS, CACHE, BIBLE_DB = "wheels", "cache", "bible/held-out.db"
#: the vocabulary-trimmed mE5-small (:func:`clir_ot.models.e5s1.write_trimmed_e5s1`), read through
#: ``$CLIR_OT_ME5_SMALL_FILE``
TRIMMED_ME5 = "models/me5-small-trimmed.e5t1"


def install(prefix: Path) -> Path:
    """Set up an unpacked bundle's ``prefix``: its wheels installed into ``prefix/site-packages`` (pip, no index,
    no dependencies resolved: the bundle carries them), and ``prefix/env.sh`` exporting ``PYTHONPATH`` (those
    packages and this checkout's ``src``),
    ``CLIR_OT_CACHE``, ``CLIR_OT_BIBLE_DB``, ``CLIR_OT_ME5_SMALL_FILE`` (a trimmed student file) and offline mode.
    Returns the path of ``env.sh``."""
    prefix = Path(prefix).resolve()
    wheels = sorted((prefix / WHEELS).glob("*.whl"))
    if wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "--no-index", "--no-deps", "--target", str(prefix / "site-packages"),
                               *map(str, wheels)], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ClirOtError(f"installing the bundle's {len(wheels)} wheels into {prefix / 'site-packages'} "
                              f"failed: {last}")
    source = Path(__file__).resolve().parents[1]  # the src folder of the checkout that unpacked the bundle
    path = f"{shlex.quote(str(prefix / 'site-packages'))}:{shlex.quote(str(source))}"
    lines = ["# written by clir-ot's bundle unpacking: source it, then run python -m clir_ot from the bundle",
             f"export PYTHONPATH={path}${{PYTHONPATH:+:$PYTHONPATH}}",
             f"export CLIR_OT_CACHE={shlex.quote(str(prefix / CACHE))}", "export CLIR_OT_OFFLINE=1",
             "export HF_HUB_OFFLINE=1", "export TRANSFORMERS_OFFLINE=1"]
    if (prefix / BIBLE_DB).is_file():
        lines.append(f"export CLIR_OT_BIBLE_DB={shlex.quote(str(prefix / BIBLE_DB))}")
    if (prefix / TRIMMED_ME5).is_file():
        lines.append(f"export {ME5_SMALL_FILE}={shlex.quote(str(prefix / TRIMMED_ME5))}")
    env = prefix / "env.sh"
    with atomic_path(env) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return env


def main(argv: list[str] | None = None) -> int:
    """``python -m clir_ot.transfer --unpack DIR --into PREFIX``: verify, unpack and install a bundle."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m clir_ot.transfer", description=main.__doc__)
    parser.add_argument("--unpack", type=Path, required=True, help="the folder holding bundle.json and its parts")
    parser.add_argument("--into", type=Path, required=True, help="the prefix to unpack and install into")
    args = parser.parse_args(argv)
    try:
        print(unpack(args.unpack, args.into))
    except ClirOtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def unpack(folder: Path, into: Path) -> str:
    """:func:`read_parts` then :func:`install`; the line that says what was done and what to run next."""
    manifest = read_parts(folder, into)
    env = install(into)
    return (f"unpacked {len(manifest['files'])} file(s) from {len(manifest['parts'])} part(s) into {into}; "
            f"every part and file matched its sha256. Next: . {env}")


if __name__ == "__main__":
    sys.exit(main())
