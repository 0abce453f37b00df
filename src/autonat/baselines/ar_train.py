"""Training the autoregressive peer (`baselines.ar`) on a token cache, on autonat's trainer skeleton:
the same run directory checks, exact resume, JSONL log, crash-safe checkpoints, warm-up + cosine
learning rate, EMA and keyed randomness as the NAT trainer, and the same token cache (with its
flip views), so the two families differ by their model and objective only.

    train_ar(ARTrainConfig(tokens="runs/reference/tokens-train"), out)   -> out/model
    model, meta = load_ar("out/model")
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import config_from_dict, config_to_dict, opt, validate
from ..io import AtomicDir, AutonatError, atomic_save_tensors, atomic_write_json, load_json
from ..jobs import Throughput, autocast, pick_device
from ..rng import epoch_indices, mix64, step_generator
from ..tokens import TokenCache
from ..trainer import RunOptions, TrainingRun
from ..training import EMA
from ..weights import build_and_load
from . import peer_loop
from .ar import ARConfig, ARTransformer


@dataclass(frozen=True)
class ARTrainConfig(RunOptions):
    """One training run of the AR peer (saved as train_config.json). Defaults: the shipped U-ViT's
    recipe (2000 x 256 sequences, lr 1e-3, 200 warm-up steps, EMA 0.998, flips)."""
    tokens: str = opt("", "token cache (`autonat tokenize`) of class-labelled images")
    dim: int = opt(256, "width", min=8)
    depth: int = opt(7, "transformer blocks", min=1)
    heads: int = opt(4, "attention heads", min=1)
    steps: int = opt(2000, "optimizer steps", min=1)
    batch_size: int = opt(256, "sequences per step", min=1)
    lr: float = opt(1e-3, "peak learning rate", min=0.0, max=10.0)
    min_lr_ratio: float = opt(0.1, "cosine decay to lr * min_lr_ratio", min=0.0, max=1.0)
    warmup: int = opt(200, "linear warm-up steps (capped at 10% of the run)", min=0)
    weight_decay: float = opt(0.05, "AdamW weight decay (matrices only)", min=0.0)
    grad_clip: float = opt(1.0, "gradient-norm clipping", min=0.0)
    ema: float = opt(0.998, "EMA decay of the saved weights", min=0.0, max=0.99999)
    label_dropout: float = opt(0.1, "probability of the null class (classifier-free guidance)", min=0.0, max=1.0)
    hflip: bool = opt(True, "use the cache's flipped view half of the time (as the NATs)")

    def __post_init__(self):
        validate(self)
        if not self.tokens:
            raise AutonatError("the AR peer trains on a token cache: give tokens (--tokens)")


def save_ar(out: str | Path, model: ARTransformer, extra: dict) -> None:
    """A model directory (model.safetensors fp32 + config.json), created atomically."""
    with AtomicDir(out) as tmp:
        atomic_save_tensors(tmp / "model.safetensors", {k: v.float() for k, v in model.state_dict().items()})
        atomic_write_json(tmp / "config.json", {"kind": "ar-transformer", "model": config_to_dict(model.config),
                                                **extra})


def load_ar(path: str | Path, device: str = "cpu") -> tuple[ARTransformer, dict]:
    """(model in eval mode, the whole config.json) of a directory written by `save_ar`."""
    path = Path(path)
    meta = load_json(path / "config.json")
    if not isinstance(meta, dict) or meta.get("kind") != "ar-transformer":
        raise AutonatError(f"{path} is not an AR-transformer model directory (config.json kind)")
    cfg = config_from_dict(ARConfig, meta["model"], what=f"{path}/config.json model")
    return build_and_load(ARTransformer, cfg, path / "model.safetensors", what=str(path)).to(device).eval(), meta


def train_ar(cfg: ARTrainConfig, out: str | Path, resume: bool = False, show_progress: bool = True) -> Path:
    """Train, then write the EMA weights to `out/model`; returns that directory."""
    out = Path(out)
    device = pick_device(cfg.device)
    cache = TokenCache.open(cfg.tokens)
    if cache.text is not None:
        raise AutonatError(f"{cfg.tokens} is a captioned cache; the AR peer is class-conditional")
    mcfg = ARConfig(codebook_size=cache.codebook_size, seq_len=cache.seq_len, num_classes=cache.num_classes,
                    dim=cfg.dim, depth=cfg.depth, heads=cfg.heads)
    run = TrainingRun(out, config_to_dict(cfg), cfg, steps=cfg.steps, resume=resume, desc="ar",
                      show_progress=show_progress)
    run.check()
    torch.manual_seed(cfg.seed)                          # weight init only
    model = ARTransformer(mcfg).to(device).train()
    ema = EMA(model, cfg.ema)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "emb" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "emb" not in n)]
    opt_ = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
    step = peer_loop.restore(run, model, opt_, ema)
    tput, t0 = Throughput(), time.time()
    with run.loop(step):
        while step < cfg.steps:
            idx = epoch_indices(len(cache), cfg.batch_size, step, cfg.seed)
            g = step_generator(cfg.seed, step, 6)
            views = (torch.rand(len(idx), generator=g) < 0.5).long() if cfg.hflip and cache.tokens.shape[1] > 1 \
                else None
            ids, cond = cache.batch(idx, views)
            drop = torch.rand(len(idx), generator=g) < cfg.label_dropout
            labels = torch.where(drop, torch.full_like(cond.labels, mcfg.num_classes), cond.labels)
            peer_loop.set_lr(opt_, cfg, step)
            torch.manual_seed(mix64(cfg.seed, step, 4))
            with autocast(device, cfg.bf16):
                loss = model.loss(labels.to(device), ids.to(device))
            step = peer_loop.update(run, out, cfg, model, opt_, ema, step, loss, tput, "sequences_per_s")
    save_ar(out / "model", ema.module, {"train": config_to_dict(cfg), "tokenizer": cache.manifest["tokenizer_identity"],
                                        "sequences_seen": cfg.steps * cfg.batch_size,
                                        "parameters": sum(p.numel() for p in model.parameters()),
                                        "wall_seconds_last_run": round(time.time() - t0, 1)})
    return out / "model"
