"""Training and evaluation of the VQ tokenizer (`autonat tokenizer train|eval`).

Loss = MSE + grad_weight * |image-gradient difference| + commitment loss
       [+ perceptual_weight * perceptual distance in a separately trained feature network]
       [+ adv_weight * lambda * adversarial loss, from step adv_start on]
with lambda VQGAN's adaptive weight; the patch discriminator trains on the hinge loss in the same
steps (`autonat.tokenizer.losses`). The feature network that scores FID is never used here.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import save_checkpoint
from ..config import config_to_dict, opt, validate
from ..data import ArrayDataset, has_split, load_dataset, parse_background, to_float
from ..jobs import Throughput, autocast, pick_device, progress
from ..io import AutonatError
from ..rng import epoch_indices, mix64, step_generator
from ..trainer import RunOptions, TrainingRun, lr_at, short_run_warning
from .losses import (PatchDiscriminator, PerceptualLoss, adaptive_weight, discriminator_hinge_loss,
                     generator_adversarial_loss)
from .model import Tokenizer, TokenizerConfig


@dataclass(frozen=True)
class TokenizerTrainConfig(RunOptions):
    """How a tokenizer is trained (saved with the model config as train_config.json)."""
    data: str = opt("fashion-mnist", "'fashion-mnist', a directory of IDX files, or an image folder "
                                     "root/<class>/*.png (or flat)")
    resolution: int | None = opt(None, "resize/center-crop images to this size (default: native)", min=4, max=4096)
    channels: int | None = opt(None, "1 = grayscale, 3 = RGB (default: what the data is)", choices=(1, 3))
    skip_bad: bool = opt(False, "skip unreadable image files (counted and reported) instead of failing")
    background: str = opt("white", "colour transparent pixels of image files are composited on: white, black, "
                                   "gray, #RRGGBB or R,G,B", check=parse_background)
    batch_size: int = opt(128, "images per step", min=1)
    steps: int = opt(3200, "optimizer steps", min=1)
    lr: float = opt(2e-3, "peak learning rate", min=0.0, max=10.0)
    min_lr_ratio: float = opt(0.05, "cosine decay to lr * min_lr_ratio", min=0.0, max=1.0)
    warmup: int = opt(200, "linear warm-up steps (capped at 10% of the run)", min=0)
    grad_clip: float = opt(1.0, "gradient-norm clipping", min=0.0)
    grad_weight: float = opt(0.5, "weight of the image-gradient (edge) loss", min=0.0)
    perceptual_weight: float = opt(0.0, "weight of the perceptual loss (needs --perceptual-net)", min=0.0)
    perceptual_net: str = opt("", "feature-network directory for the perceptual loss; never the one "
                                  "that scores FID (train another: autonat featnet train --seed 1)")
    adv_weight: float = opt(0.0, "weight of the adversarial loss (times VQGAN's adaptive weight; 0 = off)",
                            min=0.0)
    adv_start: int = opt(0, "step at which the adversarial loss starts", min=0)
    disc_channels: int = opt(64, "discriminator width (first layer)", min=1, max=4096)
    disc_layers: int = opt(2, "discriminator stride-2 layers", min=1, max=8)
    disc_lr: float = opt(4e-4, "discriminator peak learning rate (same schedule)", min=0.0, max=10.0)
    hflip: bool = opt(True, "horizontal-flip augmentation")
    eval_every: int = opt(800, "evaluate on held-out images every N steps", min=1)
    eval_samples: int = opt(2000, "images of the periodic evaluation", min=1)
    ckpt_every: int = opt(500, "checkpoint every N steps", min=1)

    def __post_init__(self):
        validate(self)
        if self.perceptual_weight > 0 and not self.perceptual_net:
            raise AutonatError("--perceptual-weight needs --perceptual-net (a feature-network directory)")


def load_training_data(cfg: TokenizerTrainConfig) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, held-out) images: the data's test split if it has one, else the train images."""
    kw = dict(resolution=cfg.resolution, channels=cfg.channels, skip_bad=cfg.skip_bad, background=cfg.background)
    train = load_dataset(cfg.data, "train", **kw)
    test = load_dataset(cfg.data, "test", **kw) if has_split(cfg.data, "test") else train
    return train, test


def _gradient_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(x) - dx(y)).abs().mean() + (dy(x) - dy(y)).abs().mean()


def _perceptual_net(path: str, channels: int, device) -> torch.nn.Module:
    from ..metrics.features import FeatureNet
    net = FeatureNet.from_pretrained(path, device)
    if net.config.in_channels != channels:
        raise AutonatError(f"--perceptual-net {path} takes {net.config.in_channels}-channel images; "
                           f"the data has {channels}")
    return net


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
                    resume: bool = False, show_progress: bool = True,
                    data: tuple[ArrayDataset, ArrayDataset] | None = None) -> Tokenizer:
    """Train a tokenizer, writing `out/{config.json, model.safetensors, train_config.json, log.jsonl,
    checkpoint/}`. With `resume`, continue exactly from `out/checkpoint/` (same configs required).
    The image size and channels come from the data. `data` = already loaded (train, held-out)."""
    out = Path(out)
    device = pick_device(cfg.device)
    train, test = data if data is not None else load_training_data(cfg)
    c, h, w = train.image_shape
    if h != w:
        raise AutonatError(f"images are {h}x{w}; the tokenizer needs square images (set --resolution)")
    if h < 4:
        raise AutonatError(f"images are {h}x{w} pixels; the tokenizer needs at least 4x4 (upscale them with "
                           f"--resolution)")
    model_cfg = replace(model_cfg, channels=c, image_size=h)
    run = TrainingRun(out, {"model": config_to_dict(model_cfg), "train": config_to_dict(cfg)}, cfg,
                      steps=cfg.steps, resume=resume, desc="tokenizer", show_progress=show_progress)
    torch.manual_seed(cfg.seed)
    tok = Tokenizer(model_cfg).to(device).to(memory_format=torch.channels_last)
    disc = PatchDiscriminator(c, cfg.disc_channels, cfg.disc_layers).to(device) if cfg.adv_weight > 0 else None
    perceptual = PerceptualLoss(_perceptual_net(cfg.perceptual_net, c, device)) if cfg.perceptual_weight > 0 else None
    # One optimizer, two parameter groups (tokenizer, discriminator): each phase of a step leaves the
    # other group's gradients unset, so AdamW skips it. The checkpoint holds both.
    trained = tok if disc is None else torch.nn.ModuleDict({"tokenizer": tok, "discriminator": disc})
    groups = [{"params": list(tok.parameters()), "peak": cfg.lr}]
    if disc is not None:
        groups.append({"params": list(disc.parameters()), "peak": cfg.disc_lr, "betas": (0.5, 0.9)})
    opt_ = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    note = short_run_warning(cfg.steps, TokenizerTrainConfig().steps, "tokenizer train")
    if note:
        if show_progress:
            tqdm.write(f"warning: {note}", file=sys.stderr)
    step = run.restore(run.start(), trained, opt_)
    tput = Throughput()
    t0 = time.time()
    trained.train()
    last_layer = tok.decoder.net[-1].weight
    with run.loop(step):
        while step < cfg.steps:
            # 1. the batch (epoch-wise permutation) and its flips, keyed by (seed, step)
            idx = epoch_indices(len(train), cfg.batch_size, step, cfg.seed)
            x = to_float(train.images[idx]).to(device, non_blocking=True)
            if cfg.hflip:
                flip = torch.rand(x.shape[0], generator=step_generator(cfg.seed, step, 2)) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1).to(device), x.flip(-1), x)
            x = x.contiguous(memory_format=torch.channels_last)
            torch.manual_seed(mix64(cfg.seed, step, 4))     # dead-code restarts draw from the global RNG
            for g in opt_.param_groups:
                g["lr"] = lr_at(step, lr=g["peak"], warmup=cfg.warmup, steps=cfg.steps, min_ratio=cfg.min_lr_ratio)
            adversarial = disc is not None and step >= cfg.adv_start
            # 2. the tokenizer: reconstruction (+ perceptual) + commitment (+ adversarial) losses
            with autocast(device, cfg.bf16):
                rec, q = tok(x)
            rec = rec.float()
            mse = F.mse_loss(rec, x)
            rec_loss = mse + (cfg.grad_weight * _gradient_loss(rec, x) if cfg.grad_weight else 0)
            terms = {}
            if perceptual is not None:
                with autocast(device, cfg.bf16):
                    terms["perceptual"] = perceptual(rec, x)
                rec_loss = rec_loss + cfg.perceptual_weight * terms["perceptual"]
            loss = rec_loss + q.commit_loss
            if adversarial:
                disc.requires_grad_(False)
                with autocast(device, cfg.bf16):
                    g_adv = generator_adversarial_loss(disc(rec))
                terms["adv_lambda"] = adaptive_weight(rec_loss, g_adv, last_layer)
                terms["g_adv"] = g_adv
                loss = loss + cfg.adv_weight * terms["adv_lambda"] * g_adv
                disc.requires_grad_(True)
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tok.parameters(), cfg.grad_clip)
            opt_.step()
            # 3. the discriminator: real images vs these reconstructions (hinge loss)
            if adversarial:
                with autocast(device, cfg.bf16):
                    terms["d_loss"] = discriminator_hinge_loss(disc(x), disc(rec.detach()))
                opt_.zero_grad(set_to_none=True)
                terms["d_loss"].backward()
                torch.nn.utils.clip_grad_norm_(disc.parameters(), cfg.grad_clip)
                opt_.step()
            step += 1
            tput.add(x.shape[0])
            if run.log_due(step):
                rec_psnr = -10 * math.log10(max(float(mse.detach()), 1e-12))
                run.log.write({"step": step, "loss": float(loss.detach()), "mse": float(mse.detach()),
                               "train_psnr": rec_psnr, "batch_perplexity": float(q.perplexity),
                               "batch_usage": float(q.usage), "images_per_s": tput.rate(),
                               **{k: float(v) for k, v in terms.items()},
                               "lr": lr_at(step - 1, lr=cfg.lr, warmup=cfg.warmup, steps=cfg.steps,
                                           min_ratio=cfg.min_lr_ratio)})
                run.advance(1, psnr=f"{rec_psnr:.2f}", ppl=f"{float(q.perplexity):.0f}")
            else:
                run.advance(1)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                run.log.write({"step": step, "eval": evaluate_tokenizer(tok, test, cfg.eval_samples, bf16=cfg.bf16)})
                trained.train()
            run.end_step(step, lambda: save_checkpoint(out, model=trained.state_dict(), ema=None,
                                                       optimizer=opt_, step=step))
    tok.eval()
    tok.save_pretrained(out)
    run.log.write({"step": step, "done": True, "wall_seconds": time.time() - t0})
    return Tokenizer.from_pretrained(out, device)


def train_and_evaluate(model_cfg: TokenizerConfig, cfg: TokenizerTrainConfig, out: str | Path,
                       resume: bool = False, download: bool = False, show_progress: bool = True,
                       log=None) -> dict:
    """`autonat tokenizer train`: load the images once (honouring skip_bad), train, then report
    reconstruction metrics on the held-out images."""
    if download:
        load_dataset(cfg.data, "train", download=True)
    train, test = load_training_data(cfg)
    for ds in {id(train): train, id(test): test}.values():
        if ds.skipped and log:
            log(f"skipped {len(ds.skipped)} unreadable file(s), e.g. {ds.skipped[0]}")
    t0 = time.time()
    tok = train_tokenizer(model_cfg, cfg, out, resume=resume, show_progress=show_progress, data=(train, test))
    metrics = evaluate_tokenizer(tok, test, bf16=cfg.bf16, show_progress=show_progress)
    metrics["train_seconds"] = round(time.time() - t0, 1)
    metrics["held_out"] = "test split" if test is not train else "the training images (no test split)"
    return metrics
