"""Training the feature network (`autonat featnet train`) on the shared skeleton (`autonat.trainer`):
SGD + Nesterov with warm-up and cosine decay to 0, crop + flip augmentation, exact resume,
crash-safe checkpoints. On data other than Fashion-MNIST the result defines its own metric
(`fid_<name>`): a user's images are then scored by a network that knows them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import save_checkpoint
from ..config import config_to_dict, opt, validate
from ..data import ArrayDataset, has_split, load_dataset, parse_background, to_float
from ..io import AutonatError
from ..jobs import autocast, pick_device
from ..rng import epoch_indices, step_generator
from ..trainer import RunOptions, TrainingRun, lr_at
from .features import FeatureNet, FeatureNetConfig, with_unit_feature_variance


def _check_metric(name: str) -> None:
    if name and not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise AutonatError(f"metric (--metric) {name!r}: ASCII letters, digits and _ only")


@dataclass(frozen=True)
class FeatureNetTrainConfig(RunOptions):
    """How a feature network is trained (saved as train_config.json)."""
    data: str = opt("fashion-mnist", "'fashion-mnist', a directory of IDX files, or an image folder")
    resolution: int | None = opt(None, "resize/center-crop images to this size (default: native)", min=4, max=4096)
    channels: int | None = opt(None, "1 = grayscale, 3 = RGB (default: what the data is)", choices=(1, 3))
    skip_bad: bool = opt(False, "skip unreadable image files instead of failing")
    background: str = opt("white", "colour transparent pixels of image files are composited on: white, black, "
                                   "gray, #RRGGBB or R,G,B", check=parse_background)
    epochs: int = opt(12, "passes over the training images", min=1)
    batch_size: int = opt(128, "images per step", min=1)
    lr: float = opt(0.1, "peak learning rate (SGD, Nesterov momentum 0.9)", min=0.0, max=10.0)
    weight_decay: float = opt(5e-4, "weight decay", min=0.0)
    log_every: int = opt(100, "log every N steps", min=1)
    metric: str = opt("", "name of the distance this network defines (results say fid_<metric>; default: "
                          "derived from the data folder's name)", check=_check_metric)

    def __post_init__(self):
        validate(self)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random 2-pixel-padded crop + horizontal flip (per image, from generator g)."""
    b, _, h, w = x.shape
    xp = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (b,), generator=g)
    dy = torch.randint(0, 5, (b,), generator=g)
    rows = (dy.view(b, 1) + torch.arange(h).view(1, h))
    cols = (dx.view(b, 1) + torch.arange(w).view(1, w))
    out = xp[torch.arange(b).view(b, 1, 1), :, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)
    flip = torch.rand(b, generator=g) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), out.flip(-1), out)


@torch.no_grad()
def accuracy(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor, bf16: bool = False) -> float:
    net.eval()
    device = next(net.parameters()).device
    correct = 0
    for s in range(0, len(images), 1000):
        with autocast(device, bf16):
            pred = net(to_float(images[s:s + 1000]).to(device)).argmax(-1).cpu()
        correct += int((pred == labels[s:s + 1000]).sum())
    return correct / len(images)


def _splits(cfg: FeatureNetTrainConfig) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, held-out): the test split if the data has one, else 10 % of the train images."""
    kw = dict(resolution=cfg.resolution, channels=cfg.channels, skip_bad=cfg.skip_bad, background=cfg.background)
    train = load_dataset(cfg.data, "train", **kw)
    if has_split(cfg.data, "test"):
        return train, load_dataset(cfg.data, "test", **kw)
    perm = torch.randperm(len(train), generator=step_generator(cfg.seed, 0, 9))
    k = max(1, len(train) // 10)
    if len(train) - k < cfg.batch_size:
        raise AutonatError(f"{cfg.data}: {len(train)} images are too few for batch size {cfg.batch_size} "
                           f"after holding out {k} for evaluation")
    pick = lambda idx: ArrayDataset(train.images[idx], train.labels[idx], train.class_names,  # noqa: E731
                                    f"{train.identity}:{len(idx)}")
    return pick(perm[k:]), pick(perm[:k])


def metric_name(data: str) -> str:
    """`fmnist` for Fashion-MNIST, else a name derived from the data folder (fid_<name>)."""
    if data in ("fashion-mnist", "fmnist"):
        return "fmnist"
    name = "".join(c if c.isalnum() else "_" for c in Path(data).resolve().name.lower()).strip("_")
    return name or "custom"


def train_featnet(cfg: FeatureNetTrainConfig, out: str | Path, resume: bool = False,
                  show_progress: bool = True) -> dict:
    """Train a feature network; saves it to `out` and returns {test_accuracy, seconds, ...}."""
    out = Path(out)
    device = pick_device(cfg.device)
    train, test = _splits(cfg)
    if bool((train.images == train.images[:1]).all()):
        raise AutonatError(f"{cfg.data}: every training image is identical; a feature network cannot learn "
                           f"features (and FID would be undefined) from one image")
    if train.num_classes < 2:
        raise AutonatError(f"{cfg.data}: a feature network learns to tell classes apart and this data has one "
                           f"({train.class_names[0]!r}); give it class folders, or, for a captioned folder, a "
                           f"'label' on every line of metadata.jsonl")
    steps_per_epoch = len(train) // cfg.batch_size
    if steps_per_epoch < 1:
        raise AutonatError(f"batch_size (--batch-size) {cfg.batch_size} exceeds the {len(train)} training images")
    steps = cfg.epochs * steps_per_epoch
    mcfg = FeatureNetConfig(in_channels=train.image_shape[0], image_size=train.image_shape[1],
                            num_classes=train.num_classes, metric=cfg.metric or metric_name(cfg.data))
    run = TrainingRun(out, {"model": config_to_dict(mcfg), "train": config_to_dict(cfg)}, cfg, steps=steps,
                      resume=resume, desc="featnet", show_progress=show_progress)
    torch.manual_seed(cfg.seed)
    net = FeatureNet(mcfg).to(device).to(memory_format=torch.channels_last)
    opt_ = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    step = run.restore(run.start(), net, opt_)
    t0 = time.time()
    with run.loop(step):
        net.train()
        while step < steps:
            idx = epoch_indices(len(train), cfg.batch_size, step, cfg.seed)
            x = _augment(to_float(train.images[idx]), step_generator(cfg.seed, step, 2))
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            y = train.labels[idx].to(device)
            for g in opt_.param_groups:
                g["lr"] = lr_at(step, lr=cfg.lr, warmup=steps // 10, steps=steps, min_ratio=0.0)
            with autocast(device, cfg.bf16):
                loss = F.cross_entropy(net(x).float(), y, label_smoothing=0.1)
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            opt_.step()
            step += 1
            if run.log_due(step):
                run.log.write({"step": step, "loss": float(loss.detach()), "lr": opt_.param_groups[0]["lr"]})
                run.advance(1, loss=f"{float(loss.detach()):.3f}")
            else:
                run.advance(1)
            if step % steps_per_epoch == 0:
                run.log.write({"step": step, "epoch": step // steps_per_epoch,
                               "test_accuracy": accuracy(net, test.images, test.labels, cfg.bf16)})
                net.train()
            run.end_step(step, lambda: save_checkpoint(out, model=net.state_dict(), ema=None,
                                                       optimizer=opt_, step=step))
    net = net.to(memory_format=torch.contiguous_format).cpu().eval()
    net = with_unit_feature_variance(net, train.images)
    metrics = {"test_accuracy": accuracy(net, test.images, test.labels), "epochs": cfg.epochs,
               "train_seconds": round(time.time() - t0, 1), "feature_dim": net.config.feature_dim,
               "metric": net.config.metric, "parameters": sum(p.numel() for p in net.parameters()),
               "train_config": config_to_dict(cfg)}
    if not math.isfinite(metrics["test_accuracy"]):
        raise AutonatError("feature network training diverged")
    net.save_pretrained(out, metrics)
    return metrics
