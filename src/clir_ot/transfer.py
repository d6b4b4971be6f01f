"""Files carried to a machine without a network in parts of bounded size, each verified before use.

    write_parts(files, out, part_size)   # bundle.json + bundle.part-000, -001, ... (each ≤ part_size bytes)
    read_parts(folder, into)             # every part checked, then every file, written under ``into``
    PYTHONPATH=src python -m clir_ot.transfer --unpack DIR --into PREFIX   # on the node, nothing installed yet

The files go, sorted by name, into one deterministic tar stream (no timestamps, owners or modes of the machine
that packed it: the same files give the same bytes), compressed with xz (:mod:`lzma`, preset 6: the Bible export
shrinks from 10.5 to 2.5 MiB) and cut into parts of at most ``part_size`` bytes.
``bundle.json`` records each part's size and sha256 and each file's size and sha256. Unpacking refuses, with
one line and before anything is written, a malformed manifest, a part name that is not a plain name inside the
bundle folder, and a missing, truncated, longer or altered part. It then streams each member into a staging
folder inside ``into``, refusing anything but a regular file that the manifest lists, a member whose size
differs from the declared one (counted while it streams, so a lying part cannot fill a disk) and a sha256 that
differs; only when every file matched are they moved into place, never through a symbolic link out of ``into``
and never over an existing file unless ``overwrite``. What lands is bit for bit what was packed, or nothing.
Bundling refuses what could not be restored so: a name that is not a plain relative path or too long for a
temporary name beside it, a symbolic link that leads out of the folder bundled, and an output folder that
overlaps a source.

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
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
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


#: the longest path component a bundle may carry (UTF-8 bytes): unpacking writes ``.<name>.<random>.tmp`` beside it,
#: and file systems allow 255
MAX_COMPONENT = 200
_HEX = frozenset("0123456789abcdef")
#: what :func:`install` writes into the prefix: no bundle entry may be there (a planted
#: ``site-packages/sitecustomize.py`` would run in every Python that sources ``env.sh``)
RESERVED = ("site-packages", "env.sh")


def _check_name(name: str) -> str:
    """``name`` when it is a plain relative path that unpacking can restore, else one line."""
    if not isinstance(name, str):
        raise ClirOtError(f"bundle entry {name!r} is not a path")
    path = PurePosixPath(name)
    if (not name or path.is_absolute() or ".." in path.parts or name != str(path) or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise ClirOtError(f"bundle entry {name!r} is not a plain relative path")
    if path.parts[0] in RESERVED or name in RESERVED:
        raise ClirOtError(f"bundle entry {name!r} is where unpacking installs (site-packages/, env.sh): a bundle "
                          "never writes there itself")
    long = [part for part in path.parts if len(part.encode("utf-8")) > MAX_COMPONENT]
    if long:
        raise ClirOtError(f"bundle entry {name!r} has a name part of {len(long[0].encode('utf-8'))} bytes; at most "
                          f"{MAX_COMPONENT} can be restored (a temporary name is written beside it)")
    return name


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ClirOtError(f"{MANIFEST}: {what} must be a whole number of bytes ≥ 0, got {value!r}")
    return value


def _digest(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise ClirOtError(f"{MANIFEST}: {what} must be a sha256 (64 lowercase hex digits), got {value!r}")
    return value


def read_manifest(folder: Path) -> dict:
    """``bundle.json`` of ``folder``, every field checked (format, part names, sizes, sha256s, file names): one
    line for the first that is missing or of the wrong kind."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClirOtError(f"{folder / MANIFEST} is missing or unreadable ({type(exc).__name__}): not a bundle "
                          "written by `clir-ot bundle`") from None
    if not isinstance(manifest, dict):
        raise ClirOtError(f"{folder / MANIFEST} is not a mapping: not a bundle written by `clir-ot bundle`")
    fmt = manifest.get("format")
    if isinstance(fmt, bool) or fmt not in (1, FORMAT):
        raise ClirOtError(f"{folder / MANIFEST} has format {fmt!r}, which this clir-ot does not read (1 or {FORMAT}): "
                          "unpack it with the clir-ot that packed it")
    parts, files = manifest.get("parts"), manifest.get("files")
    if not isinstance(parts, list) or not parts or not isinstance(files, dict):
        raise ClirOtError(f"{folder / MANIFEST} lacks its parts (a non-empty list) or files (a mapping)")
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise ClirOtError(f"{MANIFEST}: parts[{i}] must be a mapping with name, bytes and sha256")
        name = part.get("name")
        if not isinstance(name, str) or not name or name != PurePosixPath(name).name or name in (".", "..") \
                or name.startswith(".") or name == MANIFEST or "\\" in name:
            raise ClirOtError(f"{MANIFEST}: part name {name!r} is not a plain file name inside the bundle folder")
        _count(part.get("bytes"), f"parts[{i}].bytes")
        _digest(part.get("sha256"), f"parts[{i}].sha256")
    for name, record in files.items():
        _check_name(name)
        if not isinstance(record, dict):
            raise ClirOtError(f"{MANIFEST}: files[{name!r}] must be a mapping with bytes and sha256")
        _count(record.get("bytes"), f"files[{name!r}].bytes")
        _digest(record.get("sha256"), f"files[{name!r}].sha256")
    return manifest


def _overlaps(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def collect_files(paths: list[Path], out: Path) -> dict[str, Path]:
    """``{name in the bundle: path}`` of files and folders (a folder with everything under it, named from the
    folder down); one line for an ``out`` that overlaps a source, a symbolic link that leads out of the folder
    bundled (or is broken), two paths with the same name in the bundle, and a name that cannot be restored."""
    files: dict[str, Path] = {}
    for path in paths:
        if not (path.is_dir() or path.is_file()):
            raise ClirOtError(f"{path} is neither a file nor a folder")
        if _overlaps(path, out):
            raise ClirOtError(f"--out {out} overlaps {path}, which it would bundle: choose an --out outside it")
        found = {str(p.relative_to(path.parent)): p for p in sorted(path.rglob("*"))
                 if p.is_file() or p.is_symlink()} if path.is_dir() else {path.name: path}
        if path.is_dir():
            root = path.resolve()
            for p in found.values():
                if p.is_symlink() and (not p.exists() or root not in p.resolve().parents):
                    raise ClirOtError(f"{p} is a symbolic link that leads out of {path} (or nowhere): bundle what "
                                      "it points to itself, or remove the link")
        clash = sorted(found.keys() & files.keys())
        if clash:
            raise ClirOtError(f"two paths would both be {clash[0]} in the bundle: bundle them separately")
        for name in found:
            _check_name(name)
        files |= found
    return files


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
    manifest = read_manifest(folder)
    for part in manifest["parts"]:
        path = folder / part["name"]
        if path.is_symlink() or (path.exists() and path.resolve().parent != folder.resolve()):
            raise ClirOtError(f"bundle part {part['name']} in {folder} is a symbolic link: parts are plain files "
                              "inside the bundle folder")
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


def _inside(into: Path, name: str) -> Path:
    """``into/name``, refused where an existing folder or link on the way leads out of ``into``."""
    root = into.resolve()
    target = into / name
    if target.is_symlink() or not str(target.resolve()).startswith(str(root) + "/"):
        raise ClirOtError(f"{target} leads out of {into} (a symbolic link on the way): unpack into a folder "
                          "without links")
    return target


def _stream_member(source, declared: int, sha256: str, name: str, tmp: Path) -> None:
    """Copy one member to ``tmp``, stopping at the first byte beyond ``declared``; one line for a size or sha256
    other than the manifest's."""
    digest, written = hashlib.sha256(), 0
    with open(tmp, "wb") as f:
        while chunk := source.read(min(_CHUNK, declared - written + 1)):
            written += len(chunk)
            if written > declared:
                raise ClirOtError(f"{name} holds more than the {declared:,} bytes {MANIFEST} declares: refused")
            digest.update(chunk)
            f.write(chunk)
    if written != declared:
        raise ClirOtError(f"{name} holds {written:,} bytes, not the {declared:,} {MANIFEST} declares: refused")
    if digest.hexdigest() != sha256:
        raise ClirOtError(f"{name} unpacked with another sha256 than the one packed")


def read_parts(folder: Path, into: Path, overwrite: bool = False) -> dict:
    """Verify every part of the bundle in ``folder`` (:func:`verify_parts`), then stream each file into a staging
    folder inside ``into``, checked against its declared size and sha256, and move them into place once all
    matched (an existing file is replaced only with ``overwrite``). Returns the manifest."""
    folder, into = Path(folder), Path(into)
    manifest = verify_parts(folder)
    expected = manifest["files"]
    targets = {name: _inside(into, name) for name in expected} if into.exists() else {n: into / n for n in expected}
    existing = sorted(name for name, target in targets.items() if target.exists() or target.is_symlink())
    if existing and not overwrite:
        raise ClirOtError(f"{into} already holds {existing[0]}" + (f" and {len(existing) - 1} more file(s)"
                          if len(existing) > 1 else "") + " of this bundle; pass --overwrite to replace them")
    try:
        into.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".clir-ot-unpack-", dir=into))
    except OSError as exc:
        raise ClirOtError(f"cannot unpack into {into}: {exc.strerror or exc}") from None
    try:
        _unpack_into(folder, manifest, staging)
        for name in sorted(expected):
            target = _inside(into, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
    except OSError as exc:
        raise ClirOtError(f"unpacking into {into} failed ({exc.strerror or exc}"
                          + (f": {exc.filename}" if exc.filename else "") + "); files not yet moved into place were "
                          "discarded: free the space or fix the folder, then unpack again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _unpack_into(folder: Path, manifest: dict, staging: Path) -> None:
    """Every member of the bundle's stream written under ``staging``, each checked (:func:`_stream_member`)."""
    expected = manifest["files"]
    seen: set[str] = set()
    stream = io.BufferedReader(_Joined([folder / p["name"] for p in manifest["parts"]]), _CHUNK)
    if manifest["format"] == FORMAT:
        stream = lzma.LZMAFile(stream)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = _check_name(member.name)
                if not member.isfile() or name not in expected or name in seen:
                    raise ClirOtError(f"bundle entry {name!r} is not a regular file that {MANIFEST} lists once")
                declared = expected[name]["bytes"]
                if member.size != declared:
                    raise ClirOtError(f"bundle entry {name!r} is {member.size:,} bytes in the stream, not the "
                                      f"{declared:,} {MANIFEST} declares: refused")
                tmp = staging / name
                tmp.parent.mkdir(parents=True, exist_ok=True)
                _stream_member(tar.extractfile(member), declared, expected[name]["sha256"], name, tmp)
                seen.add(name)
    except (tarfile.TarError, lzma.LZMAError, EOFError) as exc:
        raise ClirOtError(f"the bundle's parts in {folder} do not hold a readable stream ({exc}): transfer them "
                          "again") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise ClirOtError(f"the bundle's parts hold no {', '.join(missing[:3])}: it was packed incompletely")


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
    parser.add_argument("--overwrite", action="store_true", help="replace files of the bundle already in --into")
    args = parser.parse_args(argv)
    try:
        print(unpack(args.unpack, args.into, args.overwrite))
    except ClirOtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def unpack(folder: Path, into: Path, overwrite: bool = False) -> str:
    """:func:`read_parts` then :func:`install`; the line that says what was done and what to run next."""
    manifest = read_parts(folder, into, overwrite)
    env = install(into)
    return (f"unpacked {len(manifest['files'])} file(s) from {len(manifest['parts'])} part(s) into {into}; "
            f"every part and file matched its sha256. Next: . {env}")


if __name__ == "__main__":
    sys.exit(main())
