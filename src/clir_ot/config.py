"""Configuration: dataclasses filled from YAML experiment files and ``--set key=value`` overrides.

Every field of a YAML file can be overridden on the command line with its flat field name
(``--set lr=3e-5``). Values are parsed as YAML scalars (``true``, ``3``, ``1e-4``, ``[de, fr]``) and
then **converted and checked against the field's declared type and range** before any work starts:
``lr=3e-5`` (a string to YAML) becomes the float 3e-5, ``batch_size=2.5`` or ``lr=-1`` is refused
with one line naming the field. Ranges and choices are declared once, on the field
(:func:`setting`), and checked by :func:`validate`, which every configuration dataclass calls from
its ``__post_init__``. The resolved configuration is saved beside every output.

**One result key.** A saved result (a stage's manifest, an evaluation record, a curve or drift point) is
keyed by :func:`result_key` of the configuration that made it, and never by a hand-built dictionary.
The rule for adding a field to a configuration dataclass: declare it with
``setting(default, added="YYYY-MM-DD")``. Such a field enters the key only when its value differs from its
default, so every result saved before the field existed keeps its key (a finished run stays finished),
and a run that sets the new field to another value gets a key of its own. Fields without ``added`` are
the ones every earlier key was computed from; they are always keyed. Removing or renaming a field, or
changing a default, changes keys: that is a deliberate change, and ``tests/test_config_hashes.py`` says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .artifacts import config_hash
from .errors import ClirOtError

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, *, default_factory: Any = _MISSING, ge: float | None = None,
            gt: float | None = None, le: float | None = None, choices: tuple | None = None,
            added: str | None = None) -> Any:
    """A dataclass field with its allowed range (``ge``/``gt``/``le``) or ``choices``; for list fields the
    constraint applies to every element. ``added`` (the date a field was added to a configuration that
    already had saved results) keeps the field out of :func:`result_key` while it holds its default."""
    meta = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "choices": choices, "added": added}.items()
            if v is not None}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def _default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not _MISSING else f.default


def keyed_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a configuration of dataclass ``cls`` as a mapping, saved or made now) less every field
    declared ``added`` that holds its default: what :func:`result_key` hashes. Keys that are no field of
    ``cls`` (``lang`` of a language's evaluation) are kept."""
    later = {f.name: _default_of(f) for f in dataclasses.fields(cls) if "added" in f.metadata}
    return {k: v for k, v in values.items() if not (k in later and _same(v, later[k]))}


def _same(value: Any, default: Any) -> bool:
    """Equal as saved JSON would compare them (a tuple default equals a saved list)."""
    return json.dumps(value, sort_keys=True, default=str) == json.dumps(default, sort_keys=True, default=str)


def key_dict(config: Any) -> dict[str, Any]:
    """The part of a configuration (a dataclass, or an already keyed mapping) that its result is keyed by."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return keyed_fields(type(config), dataclasses.asdict(config))
    return dict(config)


def result_key(config: Any, **inputs: Any) -> str:
    """The one key of a saved result: a short hash of :func:`key_dict` of ``config`` and, where given, of the
    content hashes of its ``inputs`` (``result_key(cfg)`` equals the hash of the configuration alone, as
    every manifest recorded it)."""
    keyed = key_dict(config)
    return config_hash(keyed if not inputs else {"config": keyed, **inputs})


#: the most values a YAML file may hold once its aliases are expanded (a few aliases nested nine deep made 1.9 GB)
MAX_EXPANDED_VALUES = 200_000


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently: ``kd:``
    twice, the second ``method: ot``, trained "kd" with OT). Keys brought in by a merge (``<<: *base``) may be
    overridden, as YAML's merge intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    continue  # unhashable: the base loader says so
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"found the key {key!r} twice (first at "
                        f"line {seen[key] + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def expanded_size(value: Any, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values ``value`` holds with every shared (aliased) part counted each time it is used, without
    expanding anything; stops counting past ``limit``."""
    memo: dict[int, int] = {}

    def size(v: Any) -> int:
        if not isinstance(v, dict | list):
            return 1
        if id(v) in memo:
            return memo[id(v)]
        memo[id(v)] = limit + 1  # a cycle counts as too large
        items = list(v.keys()) + list(v.values()) if isinstance(v, dict) else v
        total = 1
        for item in items:
            total += size(item)
            if total > limit:
                break
        memo[id(v)] = total
        return total

    return size(value)


def load_yaml_text(text: str, where: str) -> Any:
    """YAML text parsed strictly (:class:`_StrictLoader`) and bounded once aliases are expanded
    (:data:`MAX_EXPANDED_VALUES`); one line naming ``where`` otherwise."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError) as exc:
        raise ClirOtError(f"{where}: invalid YAML ({' '.join(str(exc).split())})") from None
    if expanded_size(data) > MAX_EXPANDED_VALUES:
        raise ClirOtError(f"{where}: its aliases expand to more than {MAX_EXPANDED_VALUES:,} values; write the "
                          "values out or use fewer nested aliases")
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ClirOtError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClirOtError(f"{path}: cannot be read as UTF-8 text ({' '.join(str(exc).split())})") from None
    data = load_yaml_text(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ClirOtError(f"{path}: expected a mapping of fields")
    return data


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ClirOtError(f"override {pair!r} is not of the form key=value")
        try:
            out[key.strip()] = load_yaml_text(value, f"override {pair!r}") if value.strip() else None
        except ClirOtError:
            raise ClirOtError(f"override {pair!r}: value is not valid YAML") from None
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
    except TypeError as exc:
        raise ClirOtError(f"invalid configuration: {exc}") from exc
    except ValueError as exc:
        raise ClirOtError(str(exc) if str(exc).startswith("invalid") else f"invalid configuration: {exc}") from exc


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def validate(obj: Any) -> None:
    """Convert every field of dataclass ``obj`` to its declared type and check its declared range, in place.

    Raises :class:`ClirOtError` naming the first field that does not fit.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = _convert(f.name, getattr(obj, f.name), hints[f.name])
        _check_range(f.name, value, f.metadata)
        object.__setattr__(obj, f.name, value)


def _fail(name: str, expected: str, value: Any) -> ClirOtError:
    return ClirOtError(f"invalid configuration: {name} must be {expected}, got {value!r}")


#: Types whose values must already be of that type, with how the error names it.
_EXACT: dict[type, str] = {bool: "true or false", str: "a string"}


def _convert(name: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(name, value, inner[0]) if len(inner) == 1 else value
    if hint is Any:
        return value
    if hint in _EXACT:  # bool and str are taken as they are, never converted (YAML's "no" is not a string)
        if isinstance(value, hint):
            return value
        raise _fail(name, _EXACT[hint], value)
    if hint is int:
        if isinstance(value, bool):
            raise _fail(name, "an integer", value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _fail(name, "an integer", value)
    if hint is float:
        if isinstance(value, bool):
            raise _fail(name, "a number", value)
        try:
            number = float(value) if isinstance(value, int | float | str) else None
        except ValueError:
            number = None
        if number is None or not math.isfinite(number):
            raise _fail(name, "a finite number", value)
        return number
    if origin is list:
        item = args[0] if args else Any
        if isinstance(value, str) and item is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, int | float | str) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list | tuple):
            raise _fail(name, "a list", value)
        return [_convert(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, dict):
            return value
        raise _fail(name, "a mapping", value)
    return value


def _check_range(name: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if value is None or not meta:
        return
    for item in value if isinstance(value, list) else [value]:
        if "choices" in meta and item not in meta["choices"]:
            raise _fail(name, f"one of {', '.join(map(str, meta['choices']))}", item)
        if "gt" in meta and not item > meta["gt"]:
            raise _fail(name, f"> {meta['gt']}", item)
        if "ge" in meta and not item >= meta["ge"]:
            raise _fail(name, f"≥ {meta['ge']}", item)
        if "le" in meta and not item <= meta["le"]:
            raise _fail(name, f"≤ {meta['le']}", item)
