"""Long-job plumbing: device and autocast selection, progress bars, crash-tolerant JSONL logs and
throughput counters (checkpoints: `autonat.checkpoint`; the training loop: `autonat.trainer`)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from tqdm.auto import tqdm

from .io import AutonatError, atomic_write_bytes


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """`auto` (CUDA if available, else CPU), `cpu`, `cuda`, `cuda:N`; a clear error otherwise."""
    if isinstance(name, torch.device):
        name = str(name)
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise AutonatError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise AutonatError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise AutonatError(f"device {name!r}: this torch build ({torch.__version__}) sees no CUDA GPU; "
                               f"use --device cpu (or install a CUDA build of torch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AutonatError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


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
    """Append-only JSON-lines log (one dict per line, flushed immediately). A kill while a line
    is being written leaves a torn last line; `truncate_after` (run on every resume) drops it."""

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

    def records(self) -> list[dict]:
        """Every complete record (a torn last line is skipped; a damaged line elsewhere is an error)."""
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().decode("utf-8", errors="replace").split("\n")
        out = []
        for i, ln in enumerate(lines):
            if not ln.strip():
                continue
            try:
                rec = json.loads(ln)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except ValueError:
                if i >= len(lines) - 2:       # the last line, torn by a kill mid-write
                    continue
                raise AutonatError(f"{self.path}: line {i + 1} is not a JSON record; the log is damaged "
                                   f"(remove that line to resume)") from None
            out.append(rec)
        return out

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint (and a torn last line) so the log
        matches an uninterrupted run. The log is rewritten atomically."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [r for r in self.records() if r.get("step", 0) <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in keep).encode())


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
