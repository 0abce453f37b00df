"""Training the latent-diffusion peer (`baselines.latent_diffusion`) on a NAT token cache, on
autonat's trainer skeleton: the same run directory checks, exact resume, JSONL log, crash-safe
checkpoints, warm-up + cosine learning rate, EMA and keyed randomness as the NAT trainer, the same
cache with its flip views, and the NAT's budget (2000 steps x 256 images): the two families differ
by their generative process only.

    train_latent(LatentTrainConfig(tokens="runs/reference/tokens-train"), out)   -> out/model
    model, schedule, codec, meta = load_latent("out/model")

Step s draws its batch from epoch-wise permutations keyed by (seed, epoch) and its views,
timesteps, noise and label dropout from (seed, s): a resumed run replays exactly the steps an
uninterrupted one would.
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
from ..tokenizer import load as load_tokenizer
from ..tokens import TokenCache
from ..trainer import RunOptions, TrainingRun
from ..training import EMA
from ..weights import build_and_load
from . import peer_loop
from .latent_diffusion import LatentCodec, LatentUViT, LatentUViTConfig
from .pixel_diffusion import ScheduleConfig, noised, train_alphas


@dataclass(frozen=True)
class LatentTrainConfig(RunOptions):
    """One training run of the latent peer (saved as train_config.json). Defaults: the shipped
    U-ViT's recipe and size (2000 x 256, lr 1e-3, 200 warm-up steps, EMA 0.998, flips)."""
    tokens: str = opt("", "token cache (`autonat tokenize`) of class-labelled images")
    tokenizer: str = opt("", "the cache's tokenizer (a shipped name or directory; default: the one the cache records)")
    dim: int = opt(256, "width", min=8)
    depth: int = opt(7, "transformer blocks (odd)", min=1)
    heads: int = opt(4, "attention heads", min=1)
    schedule: ScheduleConfig = opt(default_factory=ScheduleConfig, help="forward process")
    steps: int = opt(2000, "optimizer steps", min=1)
    batch_size: int = opt(256, "images per step", min=1)
    lr: float = opt(1e-3, "peak learning rate", min=0.0, max=10.0)
    min_lr_ratio: float = opt(0.1, "cosine decay to lr * min_lr_ratio", min=0.0, max=1.0)
    warmup: int = opt(200, "linear warm-up steps (capped at 10% of the run)", min=0)
    weight_decay: float = opt(0.0, "AdamW weight decay", min=0.0)
    grad_clip: float = opt(1.0, "gradient-norm clipping", min=0.0)
    ema: float = opt(0.998, "EMA decay of the saved weights", min=0.0, max=0.99999)
    label_dropout: float = opt(0.1, "probability of the null class (classifier-free guidance)", min=0.0, max=1.0)
    hflip: bool = opt(True, "use the cache's flipped view half of the time (as the NATs)")

    def __post_init__(self):
        validate(self)
        if not self.tokens:
            raise AutonatError("the latent peer trains on a token cache: give tokens (--tokens)")


def save_latent(out: str | Path, model: LatentUViT, schedule: ScheduleConfig, scale: float, extra: dict) -> None:
    """A model directory (model.safetensors fp32 + config.json), created atomically."""
    with AtomicDir(out) as tmp:
        atomic_save_tensors(tmp / "model.safetensors", {k: v.float() for k, v in model.state_dict().items()})
        atomic_write_json(tmp / "config.json", {"kind": "latent-diffusion", "model": config_to_dict(model.config),
                                                "schedule": config_to_dict(schedule), "latent_scale": scale,
                                                **extra})


def load_latent(path: str | Path, tokenizer: str | None = None, device: str = "cpu"):
    """(denoiser in eval mode, its schedule, its LatentCodec, the whole config.json) of a directory
    written by `save_latent`; the tokenizer is the one recorded at training unless given, and
    must be the same one (by identity)."""
    path = Path(path)
    meta = load_json(path / "config.json")
    if not isinstance(meta, dict) or meta.get("kind") != "latent-diffusion":
        raise AutonatError(f"{path} is not a latent-diffusion model directory (config.json kind)")
    cfg = config_from_dict(LatentUViTConfig, meta["model"], what=f"{path}/config.json model")
    schedule = config_from_dict(ScheduleConfig, meta["schedule"], what=f"{path}/config.json schedule")
    tok = load_tokenizer(tokenizer or meta["tokenizer_ref"], device=device)
    if tok.identity != meta["tokenizer"]:
        raise AutonatError(f"{path} was trained in the latent space of tokenizer {meta['tokenizer']}, "
                           f"not {tok.identity} ({tokenizer or meta['tokenizer_ref']})")
    model = build_and_load(LatentUViT, cfg, path / "model.safetensors", what=str(path)).to(device).eval()
    return model, schedule, LatentCodec(tok, float(meta["latent_scale"])), meta


def train_latent(cfg: LatentTrainConfig, out: str | Path, resume: bool = False, show_progress: bool = True) -> Path:
    """Train, then write the EMA weights to `out/model`; returns that directory."""
    out = Path(out)
    device = pick_device(cfg.device)
    cache = TokenCache.open(cfg.tokens)
    if cache.text is not None:
        raise AutonatError(f"{cfg.tokens} is a captioned cache; the latent peer is class-conditional")
    tok_ref = cfg.tokenizer or cache.tokenizer_ref()
    tok = load_tokenizer(tok_ref)
    cache.check_tokenizer(tok.identity, tok_ref)
    h, w = (int(v) for v in cache.manifest["grid"])
    first = torch.from_numpy(cache.tokens[:4096, 0].astype("int64")).view(-1, h, w)
    codec = LatentCodec(tok, LatentCodec.data_scale(tok, first))
    mcfg = LatentUViTConfig(latent_dim=tok.config.codebook_dim, seq_len=h * w, num_classes=cache.num_classes,
                            dim=cfg.dim, depth=cfg.depth, heads=cfg.heads)
    run = TrainingRun(out, config_to_dict(cfg), cfg, steps=cfg.steps, resume=resume, desc="latent",
                      show_progress=show_progress)
    run.check()
    torch.manual_seed(cfg.seed)                          # weight init only
    model = LatentUViT(mcfg).to(device).train()
    ema = EMA(model, cfg.ema)
    opt_ = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    alphas = train_alphas(cfg.schedule)
    step = peer_loop.restore(run, model, opt_, ema)
    tput, t0 = Throughput(), time.time()
    with run.loop(step):
        while step < cfg.steps:
            idx = epoch_indices(len(cache), cfg.batch_size, step, cfg.seed)
            g = step_generator(cfg.seed, step, 5)
            views = (torch.rand(len(idx), generator=g) < 0.5).long() if cfg.hflip and cache.tokens.shape[1] > 1 \
                else None
            ids, cond = cache.batch(idx, views)
            x0 = codec.encode(ids.view(-1, h, w))
            t = torch.randint(0, cfg.schedule.num_train_timesteps, (len(idx),), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            drop = torch.rand(len(idx), generator=g) < cfg.label_dropout
            labels = torch.where(drop, torch.full_like(cond.labels, mcfg.num_classes), cond.labels)
            xt, target = noised(x0, noise, t, alphas, cfg.schedule.prediction_type)
            peer_loop.set_lr(opt_, cfg, step)
            torch.manual_seed(mix64(cfg.seed, step, 4))
            with autocast(device, cfg.bf16):
                pred = model(xt.to(device), t.to(device), class_labels=labels.to(device)).sample
            loss = torch.nn.functional.mse_loss(pred.float(), target.to(device))
            step = peer_loop.update(run, out, cfg, model, opt_, ema, step, loss, tput, "images_per_s")
    save_latent(out / "model", ema.module, cfg.schedule, codec.scale,
                {"train": config_to_dict(cfg), "tokenizer": cache.manifest["tokenizer_identity"],
                 "tokenizer_ref": tok_ref, "images_seen": cfg.steps * cfg.batch_size,
                 "parameters": sum(p.numel() for p in model.parameters()),
                 "wall_seconds_last_run": round(time.time() - t0, 1)})
    return out / "model"
