"""Folder names inside an experiment's runs folder, derived safely from what a YAML file says.

A name from a YAML value never becomes a path as it is: ``baselines: [/abs/model]`` must not write
into the model's own folder, and ``name: ../../x`` must not leave the runs folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")


def is_safe_name(name: str) -> bool:
    """Letters, digits, ``.``, ``_``, ``+``, ``-`` (not first), at most 80 characters: one path part."""
    return bool(SAFE_NAME.match(name)) and name not in (".", "..")


def baseline_folder(system: str) -> str:
    """The folder of a baseline system: the system itself where it is a plain name (``bm25``,
    ``me5-small``), else its last path part plus a short hash of the whole (``model-1a2b3c4d``)."""
    if is_safe_name(system):
        return system
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(system.rstrip("/")).name).strip("._") or "model"
    return f"{stem[:40]}-{hashlib.sha256(system.encode()).hexdigest()[:8]}"
