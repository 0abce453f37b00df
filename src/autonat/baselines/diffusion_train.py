"""Training the pixel-space diffusion peer on autonat's trainer skeleton (`autonat.trainer`): the run
directory and its checks, exact resume, the JSONL log, crash-safe checkpoints, the warm-up + cosine
learning rate, the EMA of `autonat.training` and keyed randomness (`autonat.rng`), exactly as the
NAT trainer - so the two families differ by their model and objective only.

    train_diffusion(DiffusionTrainConfig(...), out)      -> out/model (EMA weights, `load_unet`)

Step s draws its batch from epoch-wise permutations keyed by (seed, epoch), and its timesteps,
noise and label dropout from (seed, s): a resumed run replays exactly the steps an uninterrupted
one would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import config_to_dict, opt, validate
from ..data import load_dataset
from ..jobs import Throughput, autocast, pick_device
from ..rng import epoch_indices, mix64, step_generator
from ..trainer import RunOptions, TrainingRun
from ..training import EMA
from . import peer_loop
from .pixel_diffusion import (ScheduleConfig, UNetConfig, build_unet, noised, save_unet, to_model_space,
                              train_alphas)


@dataclass(frozen=True)
class DiffusionTrainConfig(RunOptions):
    """One training run of the diffusion peer (saved as train_config.json)."""
    data: str = opt("fashion-mnist", "'fashion-mnist', a directory of IDX files, or an image folder")
    unet: UNetConfig = opt(default_factory=UNetConfig, help="UNet architecture")
    schedule: ScheduleConfig = opt(default_factory=ScheduleConfig, help="forward process")
    steps: int = opt(2100, "optimizer steps", min=1)
    batch_size: int = opt(128, "images per step", min=1)
    lr: float = opt(1e-3, "peak learning rate", min=0.0, max=10.0)
    min_lr_ratio: float = opt(0.1, "cosine decay to lr * min_lr_ratio", min=0.0, max=1.0)
    warmup: int = opt(200, "linear warm-up steps (capped at 10% of the run)", min=0)
    weight_decay: float = opt(0.0, "AdamW weight decay", min=0.0)
    betas: tuple[float, float] = opt((0.9, 0.999), "AdamW betas", min=0.0, max=1.0)
    grad_clip: float = opt(1.0, "gradient-norm clipping", min=0.0)
    ema: float = opt(0.998, "EMA decay of the saved weights", min=0.0, max=0.99999)
    label_dropout: float = opt(0.1, "probability of the null class (classifier-free guidance)", min=0.0, max=1.0)
    hflip: bool = opt(False, "horizontal flips (off: shoes and bags face one way in Fashion-MNIST)")

    def __post_init__(self):
        validate(self)


def step_inputs(cfg: DiffusionTrainConfig, step: int, x0: torch.Tensor, labels: torch.Tensor,
                alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noisy input, timesteps, (possibly dropped) labels and regression target of one step."""
    g = step_generator(cfg.seed, step, 5)
    b = x0.shape[0]
    t = torch.randint(0, cfg.schedule.num_train_timesteps, (b,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    drop = torch.rand(b, generator=g) < cfg.label_dropout
    flip = torch.rand(b, generator=g) < 0.5
    if cfg.hflip:
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    labels = torch.where(drop, torch.full_like(labels, cfg.unet.num_classes), labels)
    xt, target = noised(x0, noise, t, alphas, cfg.schedule.prediction_type)
    return xt, t, labels, target


def train_diffusion(cfg: DiffusionTrainConfig, out: str | Path, resume: bool = False,
                    show_progress: bool = True, before_step=None) -> Path:
    """Train, then write the EMA weights to `out/model`; returns that directory.
    `before_step()` runs before every step (e.g. to re-choose the thread count)."""
    out = Path(out)
    device = pick_device(cfg.device)
    ds = load_dataset(cfg.data, "train")
    data, labels_all = to_model_space(ds.images), ds.labels.long()
    run = TrainingRun(out, config_to_dict(cfg), cfg, steps=cfg.steps, resume=resume, desc="diffusion",
                      show_progress=show_progress)
    run.check()
    torch.manual_seed(cfg.seed)                          # weight init only
    model = build_unet(cfg.unet).to(device).train()
    ema = EMA(model, cfg.ema)
    opt_ = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    alphas = train_alphas(cfg.schedule)
    step = peer_loop.restore(run, model, opt_, ema)
    tput, t0 = Throughput(), time.time()
    with run.loop(step):
        while step < cfg.steps:
            if before_step is not None:
                before_step()
            idx = epoch_indices(len(data), cfg.batch_size, step, cfg.seed)
            xt, t, lab, target = step_inputs(cfg, step, data[idx], labels_all[idx], alphas)
            peer_loop.set_lr(opt_, cfg, step)
            torch.manual_seed(mix64(cfg.seed, step, 4))   # dropout inside the model
            with autocast(device, cfg.bf16):
                pred = model(xt.to(device), t.to(device), class_labels=lab.to(device)).sample
            loss = torch.nn.functional.mse_loss(pred.float(), target.to(device))
            step = peer_loop.update(run, out, cfg, model, opt_, ema, step, loss, tput, "images_per_s")
    save_unet(out / "model", ema.module, cfg.unet, cfg.schedule,
              {"train": config_to_dict(cfg), "images_seen": cfg.steps * cfg.batch_size,
               "parameters": sum(p.numel() for p in model.parameters()),
               "wall_seconds_last_run": round(time.time() - t0, 1)})
    return out / "model"
