"""Configuration: dataclasses filled from YAML experiment files and ``--set key=value`` overrides.

Every field of a YAML file can be overridden on the command line (``--set ot.reg=0.1`` style keys use
the flat field names here: ``--set reg=0.1``). Values are parsed as YAML scalars (``true``, ``3``,
``1e-4``, ``[de, fr]``). The resolved configuration is saved beside every output.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ClirOtError

T = TypeVar("T")


def read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ClirOtError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ClirOtError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ClirOtError(f"{path}: expected a mapping of fields")
    return data


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ClirOtError(f"override {pair!r} is not of the form key=value")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def build(cls: type[T], *layers: dict[str, Any]) -> T:
    """Instantiate dataclass ``cls`` from layered dicts (later layers win); unknown keys are errors."""
    names = {f.name for f in dataclasses.fields(cls)}
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in names:
                raise ClirOtError(f"unknown configuration field {key!r}; known: {', '.join(sorted(names))}")
            merged[key] = value
    try:
        return cls(**merged)
    except (TypeError, ValueError) as exc:
        raise ClirOtError(f"invalid configuration: {exc}") from exc


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
