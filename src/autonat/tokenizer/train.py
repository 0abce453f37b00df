"""Training and evaluation of the VQ tokenizer (`autonat tokenizer train|eval`).

Loss = MSE + grad_weight * |image-gradient difference| (a cheap sharpness term; no pretrained
perceptual network is used, and never the feature network used for FID) + commitment loss.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import ArrayDataset, load_dataset, to_float
from ..io import AutonatError, atomic_write_json, config_from_dict, config_to_dict, load_json
from ..jobs import (JsonlLog, Throughput, autocast, load_checkpoint, pick_device, progress,
                    save_checkpoint, seed_everything, set_rng_state)
from .model import Tokenizer, TokenizerConfig


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """How a tokenizer is trained (saved as train_config.json in the output directory)."""
    data: str = "fashion-mnist"
    resolution: int | None = None
    channels: int | None = None
    batch_size: int = 128
    max_steps: int = 3200
    lr: float = 2e-3
    min_lr_ratio: float = 0.05      # cosine decay to lr * min_lr_ratio
    warmup_steps: int = 200
    grad_clip: float = 1.0
    grad_weight: float = 0.5        # weight of the image-gradient (edge) loss
    hflip: bool = True
    eval_every: int = 800
    eval_samples: int = 2000        # periodic eval on the first n test images
    ckpt_every: int = 500
    seed: int = 0
    bf16: bool = True
    device: str = "auto"


def _lr(cfg: TokenizerTrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def _gradient_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(x) - dx(y)).abs().mean() + (dy(x) - dy(y)).abs().mean()


@torch.no_grad()
def evaluate_tokenizer(tok: Tokenizer, dataset: ArrayDataset, n: int | None = None,
                       batch_size: int = 500, bf16: bool = False, show_progress: bool = False) -> dict:
    """Reconstruction metrics on (the first `n` images of) `dataset`.

    psnr = 10 log10(1 / MSE) with MSE over all pixels of the set (pixel range [0, 1]);
    psnr_image_mean averages per-image PSNR (higher by Jensen; reported for comparison).
    codebook_usage = fraction of codes used at least once; perplexity = exp(entropy of usage).
    """
    was_training = tok.training
    tok.eval()
    device = tok.codebook_device
    n = len(dataset) if n is None else min(n, len(dataset))
    counts = torch.zeros(tok.codebook_size, dtype=torch.float64)
    se_sum, per_img_psnr, pixels = 0.0, [], 0
    for s in progress(range(0, n, batch_size), desc="tokenizer eval", disable=not show_progress):
        x = to_float(dataset.images[s:s + batch_size]).to(device)
        with autocast(device, bf16):
            ids = tok.encode(x)
            rec = tok.decode(ids)
        counts += torch.bincount(ids.flatten().cpu(), minlength=tok.codebook_size).double()
        err = (rec.float() - x).pow(2).flatten(1).mean(1).double().cpu()
        se_sum += float(err.sum()) * x[0].numel()
        pixels += x.numel()
        per_img_psnr.append(-10 * torch.log10(err.clamp_min(1e-10)))
    mse = se_sum / pixels
    p = counts / counts.sum()
    tok.train(was_training)
    return {"psnr": round(-10 * math.log10(max(mse, 1e-12)), 3),
            "psnr_image_mean": round(float(torch.cat(per_img_psnr).mean()), 3),
            "mse": mse, "codebook_usage": round(float((counts > 0).double().mean()), 4),
            "perplexity": round(float(torch.exp(-(p * torch.log(p + 1e-12)).sum())), 2),
            "n": n, "tokens_per_image": tok.num_tokens, "codebook_size": tok.codebook_size,
            "bits_per_image": round(tok.num_tokens * math.log2(tok.codebook_size), 1)}


def train_tokenizer(model_cfg: TokenizerConfig, cfg: TokenizerTrainConfig, out: str | Path,
                    resume: bool = False, show_progress: bool = True) -> Tokenizer:
    """Train a tokenizer, writing `out/{config.json, model.safetensors, train_config.json, log.jsonl,
    checkpoint/}`. With `resume`, continue exactly from `out/checkpoint/` (same configs required)."""
    out = Path(out)
    device = pick_device(cfg.device)
    ck = load_checkpoint(out) if resume else None
    if resume and ck is None:
        raise AutonatError(f"--resume: no checkpoint in {out}/checkpoint")
    if ck is not None:
        saved = load_json(out / "train_config.json")
        if saved["model"] != config_to_dict(model_cfg) or saved["train"] != config_to_dict(cfg):
            raise AutonatError(f"--resume: {out}/train_config.json differs from the requested "
                               f"configuration; use a new --out or the same options")
    elif (out / "checkpoint").exists():
        raise AutonatError(f"{out} already holds a training run; pass --resume or choose a new --out")

    train = load_dataset(cfg.data, "train", resolution=cfg.resolution, channels=cfg.channels)
    test = load_dataset(cfg.data, "test", resolution=cfg.resolution, channels=cfg.channels) \
        if cfg.data in ("fashion-mnist", "fmnist") or (Path(cfg.data) / "test").exists() else train
    c, h, w = train.image_shape
    if (c, h) != (model_cfg.channels, model_cfg.image_size) or h != w:
        model_cfg = replace(model_cfg, channels=c, image_size=h)
    seed_everything(cfg.seed)
    tok = Tokenizer(model_cfg).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in tok.parameters() if p.requires_grad], lr=cfg.lr,
                            betas=(0.9, 0.99), weight_decay=0.0)
    step = 0
    if ck is not None:
        tok.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        step = ck["meta"]["step"]
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "train_config.json", {"model": config_to_dict(model_cfg),
                                                      "train": config_to_dict(cfg)})
    log = JsonlLog(out / "log.jsonl")
    log.truncate_after(step)
    # The data order is a pure function of (seed, epoch): resume needs no iterator state.
    n = len(train)
    per_epoch = n // cfg.batch_size
    tput = Throughput()
    bar = progress(total=cfg.max_steps, initial=step, desc="tokenizer", disable=not show_progress)
    t0 = time.time()
    tok.train()
    while step < cfg.max_steps:
        epoch, k = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
        x = to_float(train.images[idx]).to(device, non_blocking=True)
        if cfg.hflip:
            flip = torch.rand(x.shape[0], generator=torch.Generator().manual_seed(cfg.seed + 7 * step)) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1).to(device), x.flip(-1), x)
        x = x.contiguous(memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        with autocast(device, cfg.bf16):
            rec, q = tok(x)
        rec = rec.float()
        mse = F.mse_loss(rec, x)
        loss = mse + q.commit_loss + (cfg.grad_weight * _gradient_loss(rec, x) if cfg.grad_weight else 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        tput.add(x.shape[0])
        bar.update(1)
        if step % 50 == 0 or step == cfg.max_steps:
            rec_psnr = -10 * math.log10(max(float(mse.detach()), 1e-12))
            bar.set_postfix(psnr=f"{rec_psnr:.2f}", ppl=f"{float(q.perplexity):.0f}")
            log.write({"step": step, "loss": float(loss.detach()), "mse": float(mse.detach()), "train_psnr": rec_psnr,
                       "batch_perplexity": float(q.perplexity), "batch_usage": float(q.usage),
                       "lr": _lr(cfg, step - 1), "images_per_s": tput.rate()})
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            m = evaluate_tokenizer(tok, test, cfg.eval_samples, bf16=cfg.bf16)
            log.write({"step": step, "eval": m})
            tok.train()
        if step % cfg.ckpt_every == 0 or step == cfg.max_steps:
            save_checkpoint(out, model=tok.state_dict(), ema=None, optimizer=opt, step=step)
    bar.close()
    tok.eval()
    tok.save_pretrained(out)
    log.write({"step": step, "done": True, "wall_seconds": time.time() - t0})
    return Tokenizer.from_pretrained(out, device)


def load_train_config(path: str | Path) -> tuple[TokenizerConfig, TokenizerTrainConfig]:
    d = load_json(path)
    return (config_from_dict(TokenizerConfig, d.get("model", {})),
            config_from_dict(TokenizerTrainConfig, d.get("train", {})))
