"""Reading user files: text (optionally gzipped) whose damage becomes one clear error naming the file.

Binary data, UTF-16 text, a cut or corrupt gzip: every reader of bitext, lexicons and run files goes
through :func:`open_text` inside :func:`reading`, so none of them ends in a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ClirOtError


def open_text(path: Path) -> io.TextIOBase:
    """Open a UTF-8 text file (a byte-order mark before the first line is dropped), transparently gunzipping
    ``.gz``."""
    path = Path(path)
    if path.is_dir():
        raise ClirOtError(f"{path} is a folder; give a file")
    if not path.is_file():
        raise ClirOtError(f"file not found: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="\n")
    return open(path, encoding="utf-8-sig", newline="\n")


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn the errors of reading a damaged ``what`` file into a :class:`ClirOtError` naming it."""
    try:
        yield
    except UnicodeError as exc:
        raise ClirOtError(f"{path}: the {what} is not UTF-8 text ({exc.reason} at byte {getattr(exc, 'start', '?')}); "
                          "binary data or another encoding (UTF-16?)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ClirOtError(f"{path}: the {what} is a truncated or corrupt gzip file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ClirOtError(f"{path}: the {what} is not valid JSON ({exc})") from None


def read_json_or_none(path: Path) -> object | None:
    """A cache file's JSON, or ``None`` when it is missing or damaged (a cache miss: recompute it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
