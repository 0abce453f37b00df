"""The training skeleton every trainer uses (the NAT, the VQ tokenizer, the feature network).

A trainer supplies its config, its model/optimizer state and one training step; the skeleton
owns what must be the same everywhere:

* the run directory: every option is validated before `out` is touched; a run refuses an `out`
  that already holds a run unless resumed, and refuses to resume with different options (naming
  them, and saying what to do for a finished run with more steps); a run that fails before its
  first checkpoint removes the directory it created, so an error leaves `out` as it was;
* randomness keyed by (seed, step, stream) (`autonat.rng`): a resumed run replays exactly the
  steps an uninterrupted one would, with no RNG state to save;
* the learning-rate schedule (`lr_at`): linear warm-up (capped at 10 % of the run, so short runs
  are not all warm-up), then cosine decay to `min_ratio` or constant;
* the JSONL log (a torn last line from a kill is dropped on resume) and a progress bar with ETA;
* checkpoints (`autonat.checkpoint`, crash-safe): every `ckpt_every` steps, every `ckpt_minutes`
  of wall-clock, at the end, and on SIGINT/SIGTERM (then the run stops with `Interrupted`).
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from . import distributed as D
from .checkpoint import has_checkpoint, load_checkpoint
from .config import opt
from .io import AutonatError, Interrupted, atomic_write_json, load_json
from .jobs import JsonlLog, progress

WARMUP_CAP = 0.1        # warm-up never exceeds this fraction of the run


@dataclass(frozen=True)
class RunOptions:
    """The skeleton's options, shared by every trainer's config (which extends this class)."""
    log_every: int = opt(50, "log every N steps", min=1)
    ckpt_every: int = opt(1000, "checkpoint every N steps", min=1)
    ckpt_minutes: float = opt(10.0, "also checkpoint every N minutes of wall-clock", min=0.1)
    seed: int = opt(0, "seed of every random stream", min=0)
    bf16: bool = opt(True, "bf16 autocast (attention stays fp32 on CPU)")
    device: str = opt("auto", "auto (CUDA if available), cpu, cuda, cuda:N")


def effective_warmup(warmup: int, steps: int) -> int:
    return max(0, min(warmup, int(steps * WARMUP_CAP)))


def lr_at(step: int, *, lr: float, warmup: int, steps: int, schedule: str = "cosine",
          min_ratio: float = 0.1) -> float:
    """Learning rate at 0-based `step`: linear warm-up over `effective_warmup` steps, then
    cosine decay from lr towards lr * min_ratio, reached at step `steps` (or constant)."""
    w = effective_warmup(warmup, steps)
    if step < w:
        return lr * (step + 1) / w
    if schedule == "constant":
        return lr
    p = min(1.0, (step - w) / max(1, steps - w))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def short_run_warning(steps: int, typical: int, what: str) -> str | None:
    """A warning for runs far shorter than the recipe they imitate."""
    if steps * 10 < typical:
        return (f"{what}: {steps} steps is a smoke test (the shipped recipe uses {typical}); "
                f"expect a barely trained model")
    return None


class TrainingRun:
    """Run directory, resume checks, log, progress and checkpoint timing of one training job.

    `config` is the JSON-ready dict saved as `train_config.json`; two runs are the same run iff
    their configs are equal."""

    def __init__(self, out: str | Path, config: dict, options: RunOptions, *, steps: int, resume: bool,
                 desc: str, show_progress: bool = True):
        self.out, self.config, self.steps = Path(out), config, steps
        self.log_every, self.ckpt_every = options.log_every, options.ckpt_every
        self.ckpt_seconds = 60 * options.ckpt_minutes
        self.resume, self.desc, self.show_progress = resume, desc, show_progress
        self.main = D.is_main()
        self.log = JsonlLog(self.out / "log.jsonl", enabled=False)
        self.created = False
        self._stop_signal: int | None = None

    # -- before the first step ------------------------------------------------------------
    def check(self) -> None:
        """Validate `out` against the request without touching the disk."""
        if self.out.exists() and not self.out.is_dir():
            raise AutonatError(f"--out {self.out} exists and is not a directory")
        if self.resume:
            if not has_checkpoint(self.out) and not (self.out / "train_config.json").is_file():
                raise AutonatError(f"--resume: no checkpoint in {self.out}/checkpoint (nothing to resume; "
                                   f"run without --resume to start)")
            # a run stopped before its first checkpoint restarts from step 0 under the same options
            self._check_same_config()
        elif has_checkpoint(self.out) or (self.out / "train_config.json").exists():
            raise AutonatError(f"{self.out} already holds a training run; pass --resume to continue it "
                               f"or choose a new --out")
        parent = self.out.parent if not self.out.exists() else self.out
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise AutonatError(f"--out {self.out}: {parent} is not a writable directory")

    def _check_same_config(self) -> None:
        saved = load_json(self.out / "train_config.json")
        if not isinstance(saved, dict):
            raise AutonatError(f"{self.out}/train_config.json is damaged (not a JSON object)")
        diff = {k: (saved.get(k), v) for k, v in self.config.items() if saved.get(k) != v}
        diff.update({k: (v, None) for k, v in saved.items() if k not in self.config})
        if not diff:
            return
        msg = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
        hint = ""
        if set(diff) == {"steps"}:
            hint = (" A run cannot be extended under the same learning-rate schedule; to train "
                    f"further, start a new run from its weights with --init-from {self.out}.")
        raise AutonatError(f"--resume: options differ from the run in {self.out} ({msg}).{hint}")

    def start(self) -> dict[str, Any] | None:
        """Create the run (or reopen it for --resume); returns the checkpoint to resume from."""
        self.check()
        ck = load_checkpoint(self.out) if self.resume and has_checkpoint(self.out) else None
        D.barrier()                     # every rank has checked `out` before the main one writes
        if self.main:
            self.created = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            if ck is None:
                atomic_write_json(self.out / "train_config.json", self.config)
        self.log = JsonlLog(self.out / "log.jsonl", enabled=self.main)
        if ck is not None:
            self.log.truncate_after(int(ck["meta"]["step"]))      # drop what came after the checkpoint
        elif self.main and self.log.path.exists():
            self.log.path.unlink()                                # a fresh run starts a fresh log
        D.barrier()
        return ck

    @staticmethod
    def restore(ck: dict[str, Any] | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Load a checkpoint from `start()` into the model and optimizer; returns the step to continue
        from (0 for a fresh run)."""
        if ck is None:
            return 0
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        return int(ck["meta"]["step"])

    # -- the loop -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def loop(self, step: int) -> Iterator["TrainingRun"]:
        """Progress bar, signal handlers and clean-up around the training loop."""
        self._bar = progress(total=self.steps, initial=step, desc=self.desc,
                             disable=not (self.show_progress and self.main))
        self._last_ckpt = time.monotonic()
        handlers = self._install_handlers()
        try:
            yield self
        except Exception:   # an error (not an interruption): leave no partial run behind
            if self.main and self.created and not has_checkpoint(self.out):
                shutil.rmtree(self.out, ignore_errors=True)
            raise
        finally:
            self._bar.close()
            for sig, old in handlers:
                signal.signal(sig, old)

    def _install_handlers(self) -> list:
        if threading.current_thread() is not threading.main_thread():
            return []
        installed = []

        def request_stop(signum, frame):
            if self._stop_signal is not None:          # second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum
            self._bar.write(f"{self.desc}: {signal.Signals(signum).name} received, "
                            f"saving a checkpoint at the end of this step ...")

        for sig in (signal.SIGINT, signal.SIGTERM):
            installed.append((sig, signal.signal(sig, request_stop)))
        return installed

    def advance(self, n: int = 1, **postfix: Any) -> None:
        self._bar.update(n)
        if postfix:
            self._bar.set_postfix(**postfix)

    def log_due(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.steps

    def end_step(self, step: int, save: Callable[[], None]) -> None:
        """Checkpoint if due (steps, wall-clock, a signal, or the last step), then stop if a
        signal asked for it. `save` writes the checkpoint (called on the main process only)."""
        flags = torch.tensor([float(self._stop_signal or 0),
                              float(time.monotonic() - self._last_ckpt >= self.ckpt_seconds)])
        if D.is_distributed():
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        stop, timed = int(flags[0]), bool(flags[1])
        if step % self.ckpt_every == 0 or step == self.steps or timed or stop:
            if self.main:
                save()
            D.barrier()
            self._last_ckpt = time.monotonic()
        if stop:
            raise Interrupted(stop, f"{self.desc} stopped at step {step} by {signal.Signals(stop).name}; "
                                    f"checkpoint saved in {self.out}/checkpoint - continue with --resume")
