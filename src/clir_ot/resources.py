"""Paths of the data embedded in the package (``clir_ot/resources``); see its NOTICE.md."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Filesystem path of an embedded resource file or folder."""
    return Path(str(resources.files("clir_ot").joinpath("resources", *parts)))


def embedded_miracl_mirror() -> Path:
    """The embedded MIRACL mirror: dev topics/qrels of the six languages and the Yoruba corpus."""
    return resource_path("miracl")
