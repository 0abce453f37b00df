"""Crash-safe training checkpoints: a kill at any instant leaves a loadable checkpoint (the last
complete one) and loses at most the work since it was written.

Layout of `<out>/checkpoint/`:
  step-00000500/     model.safetensors (+ ema.safetensors), state.pt (optimizer; loaded with
                     weights_only=True), state.json (step + counters; written LAST = complete)
  LATEST             the name of the newest complete step directory (replaced atomically)

Saving writes `step-N.tmp-*/`, fsyncs every file, renames it to `step-N/`, then replaces LATEST,
then deletes older step directories and stray temporaries. Loading follows LATEST, and if LATEST
is missing or names an incomplete directory (a kill between two of those operations) falls back
to the newest complete step directory. Every path through a crash therefore resumes from either
the previous or the new checkpoint, never from a mix and never from nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .io import AutonatError, _fsync_dir, atomic_save_tensors, atomic_write_bytes, atomic_write_json, load_tensors

_PREFIX = "step-"


def _complete(d: Path) -> bool:
    return (d / "state.json").is_file() and (d / "model.safetensors").is_file()


def _step_dirs(root: Path) -> list[Path]:
    dirs = [d for d in root.glob(_PREFIX + "*") if d.is_dir() and d.name[len(_PREFIX):].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name[len(_PREFIX):]))


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoint"


def has_checkpoint(out: str | Path) -> bool:
    return find_latest(out) is not None


def find_latest(out: str | Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    root = checkpoint_dir(out)
    if not root.is_dir():
        return None
    latest = root / "LATEST"
    if latest.is_file():
        name = latest.read_text().strip()
        if name.startswith(_PREFIX) and _complete(root / name):
            return root / name
    done = [d for d in _step_dirs(root) if _complete(d)]
    return done[-1] if done else None


def save_checkpoint(out: str | Path, *, model: Mapping[str, torch.Tensor],
                    ema: Mapping[str, torch.Tensor] | None, optimizer: torch.optim.Optimizer | None,
                    step: int, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the checkpoint of `step` (see module docstring); returns its directory."""
    root = checkpoint_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{_PREFIX}{step:08d}"
    if _complete(root / name):        # this step is already saved (runs are deterministic)
        atomic_write_bytes(root / "LATEST", (name + "\n").encode())
        return root / name
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=root))
    try:
        atomic_save_tensors(tmp / "model.safetensors", model)
        if ema is not None:
            atomic_save_tensors(tmp / "ema.safetensors", ema)
        if optimizer is not None:
            with open(tmp / "state.pt", "wb") as f:
                torch.save({"optimizer": optimizer.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
        atomic_write_json(tmp / "state.json", {"step": step, **(extra or {})})
        os.chmod(tmp, 0o755)
        final = root / name
        if final.exists():            # an incomplete leftover of this step (not loadable anyway)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(root / "LATEST", (name + "\n").encode())
    for d in root.iterdir():          # older checkpoints and stray temporaries of killed saves
        if d.name != name and d.name != "LATEST":
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
    return final


def load_checkpoint(out: str | Path) -> dict[str, Any] | None:
    """{"meta": state.json, "model", "ema", "optimizer"} of the newest complete checkpoint, or None."""
    d = find_latest(out)
    if d is None:
        return None
    try:
        meta = json.loads((d / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AutonatError(f"checkpoint {d}: unreadable state.json ({e}); delete {d} to fall back "
                           f"to an older checkpoint, or start a new --out") from None
    state: dict[str, Any] = {}
    if (d / "state.pt").is_file():
        try:
            state = torch.load(d / "state.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # pickle / zip errors come in many types
            raise AutonatError(f"checkpoint {d}/state.pt cannot be loaded safely (weights_only=True): "
                               f"{str(e).splitlines()[0][:200]}; it was not written by autonat or is "
                               f"damaged - start a new --out") from None
    return {"meta": meta, "model": load_tensors(d / "model.safetensors"),
            "ema": load_tensors(d / "ema.safetensors") if (d / "ema.safetensors").exists() else None,
            "optimizer": state.get("optimizer")}
