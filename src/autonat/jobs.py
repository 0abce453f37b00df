"""Long-job plumbing shared by every trainer: seeding, JSONL logs, progress bars, atomic
checkpoints with exact resume, and device / autocast selection.

A checkpoint is a directory `<out>/checkpoint/` holding `model.safetensors` (+ `ema.safetensors`),
`state.pt` (optimizer, RNG states; read back with `weights_only=True`) and `state.json` (step,
counters). It is written under a temporary name and renamed, so a kill at any moment leaves
either the previous or the new checkpoint, never a mix.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from tqdm.auto import tqdm

from .io import AtomicDir, atomic_save_tensors, atomic_write_json, load_json, load_tensors


def seed_everything(seed: int) -> None:
    """Seed Python and torch's global RNGs (training uses them for dropout and masking draws)."""
    random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA and CPU (AMX makes CPU bf16 matmuls ~4x faster than fp32 here)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             initial: int = 0, disable: bool | None = None):
    """A tqdm bar on stderr; silent when `disable` or when AUTONAT_PROGRESS=0."""
    if disable is None:
        disable = os.environ.get("AUTONAT_PROGRESS", "1") == "0"
    return tqdm(iterable, total=total, desc=desc, initial=initial, disable=disable,
                dynamic_ncols=True, file=sys.stderr, mininterval=1.0)


class JsonlLog:
    """Append-only JSON-lines log (one dict per line, flushed immediately)."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint so the log matches a clean run."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [ln for ln in self.path.read_text().splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(k + "\n" for k in keep))


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: str | Path, *, model: Mapping[str, torch.Tensor],
                    ema: Mapping[str, torch.Tensor] | None, optimizer: torch.optim.Optimizer,
                    step: int, extra: Mapping[str, Any] | None = None,
                    extra_state: Mapping[str, Any] | None = None) -> None:
    """Atomically write `<out>/checkpoint/`."""
    with AtomicDir(Path(out) / "checkpoint") as tmp:
        atomic_save_tensors(tmp / "model.safetensors", model)
        if ema is not None:
            atomic_save_tensors(tmp / "ema.safetensors", ema)
        torch.save({"optimizer": optimizer.state_dict(), "rng": rng_state(),
                    **(extra_state or {})}, tmp / "state.pt")
        atomic_write_json(tmp / "state.json", {"step": step, **(extra or {})})


def load_checkpoint(out: str | Path) -> dict[str, Any] | None:
    """Read `<out>/checkpoint/` or return None if there is none."""
    ck = Path(out) / "checkpoint"
    if not (ck / "state.json").is_file():
        return None
    meta = load_json(ck / "state.json")
    state = torch.load(ck / "state.pt", map_location="cpu", weights_only=True)
    return {"meta": meta, "model": load_tensors(ck / "model.safetensors"),
            "ema": load_tensors(ck / "ema.safetensors") if (ck / "ema.safetensors").exists() else None,
            **state}


class Throughput:
    """Samples/second over the time since the last `rate()` call."""

    def __init__(self):
        self.t, self.n = time.perf_counter(), 0

    def add(self, n: int) -> None:
        self.n += n

    def rate(self) -> float:
        now = time.perf_counter()
        r = self.n / max(now - self.t, 1e-9)
        self.t, self.n = now, 0
        return r
