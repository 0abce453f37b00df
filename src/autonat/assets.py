"""Shipped reference artefacts (package data) and name -> directory resolution.

Shipped names are short strings users type (`fashion-mnist`, `fashion-mnist-enat`); anything else
is taken as a path to a saved directory. Every shipped artefact is built by `autonat reference
build` (see docs/REFERENCE.md), never downloaded.
"""
from __future__ import annotations

from pathlib import Path

from .io import AutonatError

ASSETS = Path(__file__).resolve().parent / "assets"

SHIPPED: dict[str, dict[str, str]] = {
    "tokenizer": {"fashion-mnist": "fashion-mnist/tokenizer", "emoji": "emoji/uvit-small/tokenizer"},
    "model": {"fashion-mnist": "fashion-mnist/uvit-small",
              "fashion-mnist-enat": "fashion-mnist/enat-small",
              "emoji": "emoji/uvit-small"},          # text-to-image (Noto emoji; its text encoder inside)
    "featnet": {"fashion-mnist": "fashion-mnist/featnet", "emoji": "emoji/featnet"},
    "strategies": {"fashion-mnist": "fashion-mnist/strategies",
                   "fashion-mnist-enat": "fashion-mnist/strategies-enat",
                   "emoji": "emoji/uvit-small/strategies"},
}
# The tokenizer each shipped model was trained on.
MODEL_TOKENIZER = {"fashion-mnist": "fashion-mnist", "fashion-mnist-enat": "fashion-mnist", "emoji": "emoji"}


def shipped_path(kind: str, name: str) -> Path | None:
    rel = SHIPPED.get(kind, {}).get(name)
    return ASSETS / rel if rel else None


def resolve(kind: str, name_or_path: str | Path) -> Path:
    """Directory of a shipped artefact (by name) or of a user's saved one (by path)."""
    name = str(name_or_path)
    shipped = shipped_path(kind, name)
    if shipped is not None:
        if not (shipped / "config.json").is_file() and kind != "strategies":
            raise AutonatError(f"the shipped {kind} {name!r} is missing from this installation "
                               f"({shipped}); rebuild it with `autonat reference build`")
        return shipped
    path = Path(name_or_path).expanduser()
    if not path.exists():
        known = ", ".join(sorted(SHIPPED.get(kind, {}))) or "none"
        raise AutonatError(f"{kind} {name!r}: no such directory and not a shipped name "
                           f"(shipped {kind}s: {known})")
    if not path.is_dir():
        raise AutonatError(f"{kind} {name!r} must be a directory (config.json + *.safetensors)")
    return path
