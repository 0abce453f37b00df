"""The optimisation step the peers share, on autonat's trainer skeleton (`autonat.trainer`).

The pixel-diffusion, latent-diffusion and autoregressive peers differ from each other (and from
the NATs) by their model and objective only; restoring a run, setting the learning rate, the
clipped AdamW step, the EMA, the log line and the crash-safe checkpoint are the same code:

    step = restore(run, model, optimizer, ema)
    while step < cfg.steps:
        set_lr(optimizer, cfg, step)
        loss = ...
        step = update(run, out, cfg, model, optimizer, ema, step, loss, tput, rate_key="images_per_s")

`cfg` is any peer config with lr, warmup, steps, min_lr_ratio, grad_clip and batch_size.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import save_checkpoint
from ..jobs import Throughput
from ..trainer import TrainingRun, lr_at
from ..training import EMA


def restore(run: TrainingRun, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA) -> int:
    """The step to start from: 0, or the latest checkpoint's (model, optimizer and EMA restored)."""
    ck = run.start()
    step = run.restore(ck, model, optimizer)
    if ck is not None:
        ema.load(ck["ema"])
    return step


def lr_of(cfg, step: int) -> float:
    return lr_at(step, lr=cfg.lr, warmup=cfg.warmup, steps=cfg.steps, min_ratio=cfg.min_lr_ratio)


def set_lr(optimizer: torch.optim.Optimizer, cfg, step: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr_of(cfg, step)


def update(run: TrainingRun, out: Path, cfg, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA,
           step: int, loss: torch.Tensor, tput: Throughput, rate_key: str) -> int:
    """Backward, clip, AdamW step, EMA, log line and checkpoint of step `step`; returns step + 1."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    ema.update(model, step)
    step += 1
    tput.add(cfg.batch_size)
    if run.log_due(step):
        run.log.write({"step": step, "loss": float(loss.detach()), "grad_norm": float(gnorm), rate_key: tput.rate(),
                       "threads": torch.get_num_threads(), "lr": lr_of(cfg, step - 1)})
        run.advance(1, loss=f"{float(loss.detach()):.4f}")
    else:
        run.advance(1)
    run.end_step(step, lambda: save_checkpoint(out, model=model.state_dict(), ema=ema.shadow,
                                               optimizer=optimizer, step=step))
    return step
