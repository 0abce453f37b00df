"""Training autonat's own text encoder (`autonat text-encoder train`): the dual encoder of
`dual_encoder.py`, contrastively on a captioned image folder, on the shared training skeleton
(AdamW + warm-up + cosine, exact resume, crash-safe checkpoints, JSONL log, progress bar).

Each step takes a batch of distinct images and one of each image's captions (drawn from a keyed
stream, so a resumed run draws the same ones). Held-out retrieval accuracy (image -> its caption
among the batch's, and R-precision among 100) is measured on the test split if the folder has one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import save_checkpoint
from ..config import config_to_dict, opt, validate
from ..data import ArrayDataset, has_split, load_dataset, parse_background, to_float
from ..io import AutonatError
from ..jobs import autocast, pick_device
from ..rng import epoch_indices, step_generator
from ..trainer import RunOptions, TrainingRun, lr_at
from ..captions import pick
from .alignment import embed, r_precision
from .dual_encoder import DualEncoder, DualEncoderConfig


@dataclass(frozen=True)
class DualTrainConfig(RunOptions):
    """How the dual encoder is trained (saved as train_config.json)."""
    data: str = opt("", "a captioned image folder (metadata.jsonl; train/ and test/ splits optional)")
    resolution: int | None = opt(None, "resize/center-crop images to this size (default: native)", min=4, max=4096)
    channels: int | None = opt(None, "1 = grayscale, 3 = RGB (default: what the data is)", choices=(1, 3))
    skip_bad: bool = opt(False, "skip unreadable images and bad caption lines instead of failing")
    background: str = opt("white", "colour transparent pixels are composited on: white, black, gray, #RRGGBB "
                                   "or R,G,B", check=parse_background)
    steps: int = opt(3000, "optimizer steps", min=1)
    batch_size: int = opt(256, "images (and captions) per contrastive batch", min=2)
    lr: float = opt(1e-3, "peak learning rate (AdamW)", min=0.0, max=10.0)
    warmup: int = opt(200, "linear warm-up steps", min=0)
    weight_decay: float = opt(0.05, "AdamW weight decay", min=0.0)
    model: DualEncoderConfig = opt(default_factory=DualEncoderConfig, help="architecture")
    bf16: bool = opt(False, "bf16 autocast (attention stays fp32 on CPU)")

    def __post_init__(self):
        validate(self)


def _captions_pick(ds: ArrayDataset, idx: torch.Tensor, g: torch.Generator) -> list[str]:
    u = torch.rand(len(idx), generator=g)
    return [pick(ds.captions[i], x) for i, x in zip(idx.tolist(), u.tolist())]


@torch.no_grad()
def retrieval(model: DualEncoder, ds: ArrayDataset, distractors: int = 99, seed: int = 0,
              limit: int = 2000) -> dict:
    """Image -> text retrieval on the first `limit` images of `ds` (first caption of each):
    top-1 accuracy among all their captions, and R-precision (top-1 among the true caption and
    `distractors` random others)."""
    model.eval()
    if len(ds) > limit:
        ds = ArrayDataset(ds.images[:limit], ds.labels[:limit], ds.class_names, captions=ds.captions[:limit])
    zi, zt = embed(model, ds.images, [c[0] for c in ds.captions])
    sims = zi @ zt.T
    top1 = float((sims.argmax(1) == torch.arange(len(ds))).float().mean())
    return {"top1_all": top1, "r_precision": r_precision(sims, None, distractors, seed), "n": len(ds)}


def train_dual_encoder(cfg: DualTrainConfig, out: str | Path, resume: bool = False,
                       show_progress: bool = True) -> dict:
    """Train the dual encoder on `cfg.data`; saves it to `out`; returns its held-out retrieval."""
    out = Path(out)
    device = pick_device(cfg.device)
    kw = dict(resolution=cfg.resolution, channels=cfg.channels, skip_bad=cfg.skip_bad, background=cfg.background)
    train = load_dataset(cfg.data, "train", **kw)
    if train.captions is None:
        raise AutonatError(f"{cfg.data} has no captions (metadata.jsonl beside the images)")
    test = load_dataset(cfg.data, "test", **kw) if has_split(cfg.data, "test") else None
    if test is not None and test.captions is None:
        raise AutonatError(f"{cfg.data}/test has no captions (metadata.jsonl)")
    if cfg.batch_size > len(train):
        raise AutonatError(f"batch_size (--batch-size) {cfg.batch_size} exceeds the {len(train)} captioned images")
    mcfg = DualEncoderConfig(**{**config_to_dict(cfg.model), "channels": train.image_shape[0]})
    DualEncoder(mcfg).tokenize([c for caps in train.captions for c in caps])   # too-long captions: refused now
    run = TrainingRun(out, {"train": config_to_dict(cfg), "model": config_to_dict(mcfg),
                            "data_identity": train.identity}, cfg, steps=cfg.steps, resume=resume,
                      desc="text encoder", show_progress=show_progress)
    run.check()
    torch.manual_seed(cfg.seed)
    model = DualEncoder(mcfg).to(device)
    opt_ = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    step = run.restore(run.start(), model, opt_)
    t0 = time.time()
    with run.loop(step):
        model.train()
        while step < cfg.steps:
            idx = epoch_indices(len(train), cfg.batch_size, step, cfg.seed)
            ids, mask = model.tokenize(_captions_pick(train, idx, step_generator(cfg.seed, step, 2)))
            images = to_float(train.images[idx]).to(device)
            for g in opt_.param_groups:
                g["lr"] = lr_at(step, lr=cfg.lr, warmup=cfg.warmup, steps=cfg.steps)
            with autocast(device, cfg.bf16):
                loss, acc = model.loss(images, ids.to(device), mask.to(device))
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt_.step()
            step += 1
            if run.log_due(step):
                run.log.write({"step": step, "loss": float(loss.detach()), "batch_top1": float(acc),
                               "lr": opt_.param_groups[0]["lr"]})
                run.advance(1, loss=f"{float(loss.detach()):.3f}", acc=f"{float(acc):.2f}")
            else:
                run.advance(1)
            run.end_step(step, lambda: save_checkpoint(out, model=model.state_dict(), ema=None,
                                                       optimizer=opt_, step=step))
    model = model.cpu().eval()
    metrics = {"train_seconds": round(time.time() - t0, 1), "parameters": sum(p.numel() for p in model.parameters()),
               "train_config": config_to_dict(cfg), "captions": sum(len(c) for c in train.captions),
               "images": len(train)}
    if test is not None:
        metrics["test_retrieval"] = retrieval(model, test, seed=cfg.seed)
    metrics["train_retrieval"] = retrieval(model, train, seed=cfg.seed)
    if not torch.isfinite(torch.tensor(metrics["train_retrieval"]["top1_all"])):
        raise AutonatError("text encoder training diverged")
    model.save_pretrained(out, {"metrics": metrics})
    run.log.write({"step": step, "done": True, **{k: v for k, v in metrics.items() if k.endswith("retrieval")}})
    return metrics
