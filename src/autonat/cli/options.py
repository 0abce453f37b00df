"""Command-line options generated from config dataclasses: one flag per field, with the field's
name (`batch_size` -> `--batch-size`), default, help and choices (see `autonat.config.opt`).
Nested config fields are flattened (their fields become flags of the same command). Parsing
only converts text to the field's type; bounds and cross-field rules are checked by the config
itself, so the CLI and the Python API accept and refuse exactly the same values.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..config import _base_type, flag_name, is_spec_type


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


_SCALARS = {int: _parse_int, float: _parse_float, str: str, bool: _parse_bool}


def _tuple_parser(args: tuple) -> Any:
    elem = args[0]

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            return tuple(_SCALARS[elem](p) for p in parts)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} in the comma-separated list {text!r}") from None
    return parse


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                    required: tuple[str, ...] = (), title: str | None = None) -> None:
    """Add a flag for every CLI field of `cls` (recursively for nested configs); `required`
    fields must be given on the command line."""
    group = parser.add_argument_group(title) if title else parser
    for f, ann in _fields(cls):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        kind, optional = _base_type(ann)
        if dataclasses.is_dataclass(kind):
            add_config_args(parser, kind, exclude=exclude, required=required,
                            title=f.metadata.get("help") or kind.__name__)
            continue
        default = f.default if f.default is not dataclasses.MISSING \
            else f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        help_ = f.metadata.get("help", "").replace("%", "%%")   # argparse formats help with %
        flags = [flag_name(f.name), *f.metadata.get("aliases", ())]
        choices = f.metadata.get("choices")
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=default, help=help_)
            continue
        if typing.get_origin(kind) is tuple:
            parse, shown = _tuple_parser(typing.get_args(kind)), ",".join(map(str, default or ()))
            group.add_argument(*flags, dest=f.name, type=parse, default=default,
                               metavar="A,B,...", help=f"{help_} (default: {shown})")
            continue
        if is_spec_type(kind):           # parsed (and refused with the flag's name) by the config
            group.add_argument(*flags, dest=f.name, type=str, default=default.spec,
                               help=help_ + " (default: %(default)s)")
            continue
        parse = _SCALARS.get(kind, str)
        if optional:
            base = parse

            def parse(text, base=base):      # noqa: E306 - "none" selects the automatic value
                return None if text.strip().lower() in ("", "none", "auto") else base(text)
        if f.name in required:
            group.add_argument(*flags, dest=f.name, type=parse, required=True, choices=choices,
                               help=help_ + " (required)")
            continue
        group.add_argument(*flags, dest=f.name, type=parse, default=default,
                           choices=choices, help=help_ + (" (default: %(default)s)" if help_ else ""))


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build `cls` from parsed flags (nested configs recursively); `overrides` win."""
    kwargs = {}
    for f, ann in _fields(cls):
        kind, _ = _base_type(ann)
        if f.name in overrides:
            kwargs[f.name] = overrides[f.name]
        elif dataclasses.is_dataclass(kind):
            kwargs[f.name] = config_from_args(kind, args, **overrides)
        elif f.metadata.get("cli", True) and hasattr(args, f.name):
            kwargs[f.name] = getattr(args, f.name)
    return cls(**kwargs)
