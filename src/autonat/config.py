"""Typed configs: one frozen dataclass per component, validated on construction, saved as JSON
next to every checkpoint and result, and mirrored mechanically by the command line.

A field declared with `opt(default, help, min=..., max=..., choices=...)` carries its help text and
bounds in its metadata. Besides numbers, strings, booleans, tuples and nested configs, a field may
hold a *spec type*: a class with `from_spec(text)` and a `.spec` string (e.g. the mask-ratio
distribution p(r)): it is parsed once where text enters (command line, JSON, or a string given in
Python) and travels as the object; JSON stores its spec. `validate(cfg)` (called by every config's `__post_init__`) checks types
and bounds and raises an `AutonatError` naming the field, its command-line flag, the value and what
is allowed - the same message from Python and from the CLI. `autonat.cli.options` builds argparse
options from the same fields (same names, same defaults, same help), so the two never drift.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any, Mapping, TypeVar

from .io import AutonatError

T = TypeVar("T")


def opt(default: Any = dataclasses.MISSING, help: str = "", *, min: float | None = None,
        max: float | None = None, choices: tuple | None = None, cli: bool = True,
        finite: bool = True, aliases: tuple[str, ...] = (), default_factory: Any = dataclasses.MISSING,
        check: Any = None) -> Any:
    """A dataclass field with help text and bounds (`min`/`max` inclusive) in its metadata.
    `cli=False` keeps it off the command line; `finite=False` allows inf/nan for floats;
    `aliases` are further flags for the same option; `check(value)` raises an AutonatError for
    a value the other rules cannot describe (e.g. a colour)."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "cli": cli, "finite": finite,
            "aliases": aliases, "check": check}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(type, optional) of an annotation such as `int`, `float | None`, `tuple[int, ...]`."""
    args = typing.get_args(annotation)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None)), True
    return annotation, False


def _check_scalar(name: str, value: Any, kind: Any, meta: Mapping[str, Any]) -> None:
    where = f"{name} ({flag_name(name)})" if meta.get("cli", True) else name
    if kind is bool:
        if not isinstance(value, bool):
            raise AutonatError(f"{where} must be true or false, got {value!r}")
        return
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AutonatError(f"{where} must be a whole number, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AutonatError(f"{where} must be a number, got {value!r}")
        if meta.get("finite", True) and not math.isfinite(value):
            raise AutonatError(f"{where} must be a finite number, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise AutonatError(f"{where} must be a string, got {value!r}")
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if choices is not None and value not in choices:
        raise AutonatError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
    if lo is not None and value < lo:
        raise AutonatError(f"{where} must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise AutonatError(f"{where} must be <= {hi}, got {value!r}")
    if meta.get("check") is not None:
        meta["check"](value)


def validate(cfg: Any) -> None:
    """Check every field of a config dataclass against its annotation and `opt` bounds."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kind, optional = _base_type(hints.get(f.name))
        if value is None:
            if not optional:
                raise AutonatError(f"{f.name} ({flag_name(f.name)}) must be set")
            continue
        if typing.get_origin(kind) is tuple:
            if not isinstance(value, (tuple, list)):
                raise AutonatError(f"{f.name} ({flag_name(f.name)}) must be a list, got {value!r}")
            args = typing.get_args(kind)
            if len(args) != 2 or args[1] is not Ellipsis:
                if len(value) != len(args):
                    raise AutonatError(f"{f.name} ({flag_name(f.name)}) needs {len(args)} values, "
                                       f"got {list(value)}")
            for i, v in enumerate(value):
                _check_scalar(f.name, v, args[0] if args[-1] is Ellipsis else args[i], f.metadata)
        elif kind in (bool, int, float, str):
            _check_scalar(f.name, value, kind, f.metadata)
        elif is_spec_type(kind):
            if isinstance(value, str):
                try:
                    value = kind.from_spec(value)
                except AutonatError as e:
                    raise AutonatError(f"{f.name} ({flag_name(f.name)}): {e}") from None
                object.__setattr__(cfg, f.name, value)
            elif not isinstance(value, kind):
                raise AutonatError(f"{f.name} ({flag_name(f.name)}) must be a {kind.__name__} or its text "
                                   f"spec, got {value!r}")
        elif dataclasses.is_dataclass(kind) and not dataclasses.is_dataclass(value):
            raise AutonatError(f"{f.name} must be a {kind.__name__}, got {value!r}")


def is_spec_type(kind: Any) -> bool:
    """A class whose values are written as text (`from_spec` / `.spec`), see module docstring."""
    return isinstance(kind, type) and callable(getattr(kind, "from_spec", None))


# ----------------------------------------------------------------------------------------------
# Configs <-> JSON
# ----------------------------------------------------------------------------------------------

def config_to_dict(cfg: Any) -> dict:
    """A dataclass config as a JSON-ready dict (tuples become lists, spec types their spec)."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass config, got {type(cfg).__name__}")

    def plain(v: Any) -> Any:
        if is_spec_type(type(v)):
            return v.spec
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return json.loads(json.dumps(plain(cfg)))


def _coerce(value: Any, annotation: Any) -> Any:
    kind, _ = _base_type(annotation)
    if typing.get_origin(kind) is tuple and isinstance(value, list):
        return tuple(value)
    if dataclasses.is_dataclass(kind) and isinstance(value, dict):
        return config_from_dict(kind, value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_from_dict(cls: type[T], data: Any, what: str | None = None) -> T:
    """Build a dataclass from a dict, refusing unknown keys by name (a typo must not be ignored)
    and wrong types with a message naming the file (`what`)."""
    label = what or cls.__name__
    if not isinstance(data, Mapping):
        raise AutonatError(f"{label}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise AutonatError(f"{label}: unknown config key(s) {unknown}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{k: _coerce(v, hints.get(k)) for k, v in data.items()})
    except AutonatError as e:
        raise AutonatError(f"{label}: {e}") from None
    except (TypeError, ValueError) as e:
        raise AutonatError(f"{label}: invalid configuration ({e})") from None
