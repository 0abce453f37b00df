"""The Fashion-MNIST feature network: a small ResNet classifier whose penultimate activations
(256-d, global-average-pooled after a 1x1 conv + BN + ReLU) define `fid_fmnist`, and whose softmax
defines `is_fmnist` (Inception Score computed with this classifier).

Why not Inception: no ImageNet Inception weights can be downloaded here, and an ImageNet network
is a poor judge of 28x28 grayscale clothing anyway. Numbers in this feature space are comparable
with each other (same network, same reference statistics), not with published FIDs. The
standard Inception FID is available when the user supplies the pytorch-fid weights
(`autonat.metrics.inception`).

The tokenizer is never trained against this network (it uses pixel + edge losses only).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import load_dataset, to_float
from ..io import (AutonatError, atomic_save_tensors, atomic_write_json, config_from_dict,
                  config_to_dict, dir_identity, load_json, load_tensors)
from ..jobs import JsonlLog, autocast, pick_device, progress, seed_everything


@dataclass(frozen=True)
class FeatureNetConfig:
    channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 256
    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 28
    # Features are multiplied by this constant, fixed after training so that the mean per-dimension
    # variance over the training set is 1 (FID values then have a readable scale; it does not change
    # any ranking). 1.0 = unscaled.
    feature_scale: float = 1.0


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.skip(x) + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class FeatureNet(nn.Module):
    """ResNet-style classifier: stem, 3 stages of 2 basic blocks, 1x1 conv to `feature_dim`, GAP."""

    def __init__(self, cfg: FeatureNetConfig):
        super().__init__()
        self.config = cfg
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(ch[0]), nn.ReLU()]
        cin = ch[0]
        for i, c in enumerate(ch):
            layers += [_Basic(cin, c, 1 if i == 0 else 2), _Basic(c, c, 1)]
            cin = c
        layers += [nn.Conv2d(cin, cfg.feature_dim, 1, bias=False), nn.BatchNorm2d(cfg.feature_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cfg.feature_dim, cfg.num_classes)
        self.identity = ""

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - 0.5) / 0.5).mean(dim=(2, 3)).float()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] in [0, 1] -> penultimate features [B, feature_dim] (float32),
        multiplied by `feature_scale`."""
        return self._pooled(images) * self.config.feature_scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (from the unscaled features the classifier was trained on)."""
        return self.fc(self._pooled(images))

    @torch.no_grad()
    def fit_input(self, images: torch.Tensor) -> torch.Tensor:
        """Bring float images [B, C, H, W] to the network's input: RGB -> luminance (or grey ->
        replicated) and a bilinear (antialiased) resize to `image_size`. Identity for 28x28 grey
        Fashion-MNIST; lets other image folders be scored (as a relative measure only)."""
        want, c = self.config.in_channels, images.shape[1]
        if c != want:
            if want == 1 and c == 3:
                w = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
                images = (images * w.view(1, 3, 1, 1)).sum(1, keepdim=True)
            elif want == 3 and c == 1:
                images = images.expand(-1, 3, -1, -1)
            else:
                raise AutonatError(f"feature network takes {want}-channel images, got {c} channels")
        size = self.config.image_size
        if tuple(images.shape[-2:]) != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                   antialias=True)
        return images

    def features_and_probs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self._pooled(self.fit_input(images))
        return pooled * self.config.feature_scale, torch.softmax(self.fc(pooled).float(), dim=-1)

    def save_pretrained(self, path: str | Path, metrics: dict | None = None) -> None:
        # File by file (weights first): `path` may also hold a training run worth keeping.
        path = Path(path)
        atomic_save_tensors(path / "model.safetensors", self.state_dict())
        atomic_write_json(path / "config.json", {"kind": "featnet", **config_to_dict(self.config),
                                                 "metrics": metrics or {}})

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "fashion-mnist", device="cpu") -> "FeatureNet":
        from ..assets import resolve
        path = resolve("featnet", name_or_path)
        d = dict(load_json(path / "config.json"))
        if d.pop("kind", None) != "featnet":
            raise AutonatError(f"{path} is not a feature-network directory")
        d.pop("metrics", None)
        net = cls(config_from_dict(FeatureNetConfig, d))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in load_tensors(path / "model.safetensors").items()})
        net.identity = dir_identity(path)
        return net.to(device).eval()


@torch.no_grad()
def with_unit_feature_variance(net: FeatureNet, images: torch.Tensor) -> FeatureNet:
    """Copy of `net` whose features have mean per-dimension variance 1 over `images` (uint8)."""
    from dataclasses import replace
    base = FeatureNet(replace(net.config, feature_scale=1.0))
    base.load_state_dict(net.state_dict())
    base.eval()
    feats = torch.cat([base.features(to_float(images[s:s + 1000])) for s in range(0, len(images), 1000)])
    scale = float(1.0 / feats.double().var(dim=0).mean().sqrt())
    out = FeatureNet(replace(net.config, feature_scale=round(scale, 6)))
    out.load_state_dict(net.state_dict())
    return out.eval()


# ----------------------------------------------------------------------------------------------
# Training (`autonat featnet train`)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureNetTrainConfig:
    data: str = "fashion-mnist"
    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    seed: int = 0
    bf16: bool = True
    device: str = "auto"


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


def train_featnet(cfg: FeatureNetTrainConfig, out: str | Path, show_progress: bool = True) -> dict:
    """Train the feature network (SGD + Nesterov, cosine LR, crop/flip augmentation); saves it
    to `out` and returns {test_accuracy, seconds, ...}."""
    out = Path(out)
    device = pick_device(cfg.device)
    train = load_dataset(cfg.data, "train")
    test = load_dataset(cfg.data, "test")
    seed_everything(cfg.seed)
    net = FeatureNet(FeatureNetConfig(in_channels=train.image_shape[0], image_size=train.image_shape[1],
                                      num_classes=train.num_classes)).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    log = JsonlLog(out / "log.jsonl")
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    bar = progress(total=total, desc="featnet", disable=not show_progress)
    step = 0
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(len(train), generator=g)
        for k in range(steps_per_epoch):
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            x = _augment(to_float(train.images[idx]), g).to(device).contiguous(memory_format=torch.channels_last)
            y = train.labels[idx].to(device)
            with autocast(device, cfg.bf16):
                loss = F.cross_entropy(net(x).float(), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                log.write({"step": step, "loss": float(loss.detach()), "lr": sched.get_last_lr()[0]})
        acc = accuracy(net, test.images, test.labels, cfg.bf16)
        log.write({"step": step, "epoch": epoch + 1, "test_accuracy": acc})
    bar.close()
    net = net.to(memory_format=torch.contiguous_format).cpu().eval()
    net = with_unit_feature_variance(net, train.images)
    metrics = {"test_accuracy": accuracy(net, test.images, test.labels), "epochs": cfg.epochs,
               "train_seconds": round(time.time() - t0, 1), "feature_dim": net.config.feature_dim,
               "parameters": sum(p.numel() for p in net.parameters()),
               "train_config": config_to_dict(cfg)}
    net.save_pretrained(out, metrics)
    if not math.isfinite(metrics["test_accuracy"]):
        raise AutonatError("feature network training diverged")
    return metrics
