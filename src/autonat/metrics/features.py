"""The Fashion-MNIST feature network: a small ResNet classifier whose penultimate activations
(256-d, global-average-pooled after a 1x1 conv + BN + ReLU) define `fid_fmnist`, and whose softmax
defines `is_fmnist` (Inception Score computed with this classifier).

Why not Inception: no ImageNet Inception weights can be downloaded here, and an ImageNet network
is a poor judge of 28x28 grayscale clothing anyway. Numbers in this feature space are comparable
with each other (same network, same reference statistics), not with published FIDs. The
standard Inception FID is available when the user supplies the pytorch-fid weights
(`autonat.metrics.inception`).

The tokenizer is never trained against the network that scores FID; its optional perceptual
loss uses a separately trained one (`autonat.tokenizer.losses`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import to_float
from ..config import config_from_dict, config_to_dict, opt, validate
from ..io import AutonatError, atomic_save_tensors, atomic_write_json, dir_identity, load_json


@dataclass(frozen=True)
class FeatureNetConfig:
    channels: tuple[int, ...] = opt((32, 64, 128), "channels of the three stages", min=1, max=4096)
    feature_dim: int = opt(256, "feature dimension", min=2, max=65536)
    in_channels: int = opt(1, "image channels", choices=(1, 3))
    num_classes: int = opt(10, "classes", min=1, max=1 << 20)
    image_size: int = opt(28, "input side", min=4, max=4096)
    # Features are multiplied by this constant, fixed after training so that the mean per-dimension
    # variance over the training set is 1 (FID values then have a readable scale; it does not change
    # any ranking). 1.0 = unscaled.
    feature_scale: float = opt(1.0, "feature multiplier (unit variance on the training set)", min=0.0)
    # The name of the distance in this feature space: `fmnist` for the shipped Fashion-MNIST
    # network (fid_fmnist); a network trained on other data gets its own name (fid_<metric>).
    metric: str = opt("fmnist", "metric name (results say fid_<metric>)")

    def __post_init__(self):
        validate(self)


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

    def stage_activations(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B, C, H, W] in [0, 1] -> the activations after each of the three stages (what a
        perceptual loss compares; see `autonat.tokenizer.losses.PerceptualLoss`)."""
        out, h = [], (images - 0.5) / 0.5
        blocks = 0
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, _Basic):
                blocks += 1
                if blocks % 2 == 0:
                    out.append(h)
        return out

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
        from ..weights import build_and_load
        path = resolve("featnet", name_or_path)
        d = load_json(path / "config.json")
        if not isinstance(d, dict) or d.get("kind") != "featnet":
            raise AutonatError(f"{path} is not a feature-network directory (config.json kind)")
        d = {k: v for k, v in d.items() if k not in ("kind", "metrics")}
        net = build_and_load(cls, config_from_dict(FeatureNetConfig, d, what=f"{path}/config.json"),
                             path / "model.safetensors", what=str(path))
        net.identity = dir_identity(path)
        net.metric_name = net.config.metric
        return net.to(device).eval()


@torch.no_grad()
def with_unit_feature_variance(net: FeatureNet, images: torch.Tensor) -> FeatureNet:
    """Copy of `net` whose features have mean per-dimension variance 1 over `images` (uint8)."""
    from dataclasses import replace
    base = FeatureNet(replace(net.config, feature_scale=1.0))
    base.load_state_dict(net.state_dict())
    base.eval()
    feats = torch.cat([base.features(to_float(images[s:s + 1000])) for s in range(0, len(images), 1000)])
    var = float(feats.double().var(dim=0).mean())
    if not var > 0:
        raise AutonatError("the feature network's features do not vary over its training images (all equal); "
                           "it cannot define a FID")
    scale = float(1.0 / var ** 0.5)
    out = FeatureNet(replace(net.config, feature_scale=round(scale, 6)))
    out.load_state_dict(net.state_dict())
    return out.eval()
