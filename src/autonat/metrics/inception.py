"""The standard FID Inception network (InceptionV3 as used by pytorch-fid), without torchvision.

Published FID numbers are computed with TensorFlow's 2015-12-05 InceptionV3 graph. pytorch-fid
ported those weights to PyTorch (`pt_inception-2015-12-05-6726825d.pth`) together with a few
structural quirks of the TF graph that must be reproduced to get the same features:

* every conv is followed by BatchNorm with eps=0.001 and ReLU, convs have no bias;
* the 3x3 average pool in the Mixed_5*/6b-e/7b branches ignores padded zeros
  (`count_include_pad=False`, TF's behaviour);
* the pool branch of the last block (Mixed_7c) uses max pooling, not average pooling;
* the classifier has 1008 outputs (TF's label set), not 1000.

This module builds that network from scratch with exactly pytorch-fid's state_dict keys and shapes,
so users who bring the weights file (`--inception-weights PATH` or $AUTONAT_INCEPTION_WEIGHTS) get
the standard `fid_inception` / `is_inception`. Nothing here downloads anything. Reference
statistics in pytorch-fid's npz format are handled by `autonat.metrics.fid` / `.reference`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..io import AutonatError, sha256_file

DEFAULT_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_ENV = "AUTONAT_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
NUM_CLASSES = 1008
FEATURE_DIM = 2048

_HOW_TO_GET = (f"download the pytorch-fid InceptionV3 weights from {WEIGHTS_URL} "
               f"and pass --inception-weights PATH (or set ${WEIGHTS_ENV}=PATH)")


class _ConvBN(nn.Module):
    """Bias-free conv -> BatchNorm(eps=0.001) -> ReLU; submodules named `conv` and `bn` as in the weights."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3/stride 1 average pool that, like TF, averages only over real (unpadded) pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | TF avg-pool->1x1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class _BlockB(nn.Module):
    """Grid reduction 35->17 (Mixed_6a): stride-2 3x3 | 1x1->3x3->stride-2 3x3 | stride-2 max-pool."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class _BlockC(nn.Module):
    """17x17 block with factorised 7x7 convs (Mixed_6b..6e); `c7` is the inner width."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, **row)
        self.branch7x7_3 = _ConvBN(c7, 192, **col)
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, **col)
        self.branch7x7dbl_3 = _ConvBN(c7, c7, **row)
        self.branch7x7dbl_4 = _ConvBN(c7, c7, **col)
        self.branch7x7dbl_5 = _ConvBN(c7, 192, **row)
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class _BlockD(nn.Module):
    """Grid reduction 17->8 (Mixed_7a): 1x1->stride-2 3x3 | 1x1->1x7->7x1->stride-2 3x3 | max-pool."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = layer(b)
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class _BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs (Mixed_7b, Mixed_7c).

    `pool="avg"` is the TF average pool of Mixed_7b; `pool="max"` reproduces the FID graph's
    max pool in Mixed_7c (a quirk of that graph that pytorch-fid keeps for comparable numbers)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        t = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(t), self.branch3x3dbl_3b(t)], 1)
        if self.pool == "max":
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = _tf_avg_pool(x)
        d = self.branch_pool(p)
        return torch.cat([a, b, c, d], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID InceptionV3: pool3 features (2048-d) and 1008-way softmax.

    Built with random weights; `from_weights_file` / `load_inception` load the real ones. Always
    in eval mode with frozen parameters: it is a fixed measuring instrument, never trained."""

    metric_name = "inception"

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, c7=128)
        self.Mixed_6c = _BlockC(768, c7=160)
        self.Mixed_6d = _BlockC(768, c7=160)
        self.Mixed_6e = _BlockC(768, c7=192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, pool="avg")
        self.Mixed_7c = _BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.identity = ""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FIDInceptionV3":
        # BatchNorm must always use the stored statistics: batch statistics would make the
        # features depend on how samples happen to be batched.
        return super().train(False)

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise AutonatError(f"Inception expects images [B, 1 or 3, H, W], got {tuple(images.shape)}")
        x = images.to(device=self.fc.weight.device, dtype=torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed [B, 3, 299, 299] in [-1, 1] -> global-average-pooled Mixed_7c [B, 2048]."""
        for layer in (self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3):
            x = layer(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    @torch.no_grad()
    def features_and_probs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images float [B, C, H, W] in [0, 1], C = 1 (replicated) or 3 -> (pool3 features
        [B, 2048] float32, softmax of the 1008 fc logits [B, 1008] float32).

        Preprocessing as pytorch-fid: bilinear resize to 299x299 (align_corners=False), then
        scale to [-1, 1]. Works inside a bf16 autocast context (outputs are cast to float32)."""
        feats = self.pool3(self._preprocess(images)).float()
        logits = self.fc(feats).float()
        return feats, torch.softmax(logits, dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images in [0, 1] -> pool3 features [B, 2048] float32."""
        return self.features_and_probs(images)[0]

    @classmethod
    def from_weights_file(cls, path: str | os.PathLike) -> "FIDInceptionV3":
        """Load pytorch-fid's weights (strictly; CPU, eval mode) and set `identity` from the file's sha256."""
        path = Path(path)
        if not path.is_file():
            raise AutonatError(f"Inception weights file not found: {path}; {_HOW_TO_GET}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle, zip and weights_only errors come in many types
            raise AutonatError(f"cannot read Inception weights {path}: {e}") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise AutonatError(f"{path} is not a state dict of tensors "
                               f"(expected the pytorch-fid file {DEFAULT_WEIGHTS_NAME})")
        net = cls()
        problems = _state_mismatches(net.state_dict(), state)
        if problems:
            raise AutonatError(f"{path} does not match the pytorch-fid FID InceptionV3 "
                               f"({DEFAULT_WEIGHTS_NAME}): " + "; ".join(problems))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise AutonatError(f"cannot load Inception weights {path}: {e}") from None
        net.identity = sha256_file(path)[:16]
        return net.eval()


def _state_mismatches(expected: dict, given: dict, show: int = 5) -> list[str]:
    """Human-readable differences between two state dicts (first `show` keys of each kind).

    `*.num_batches_tracked` may be absent: files saved by old PyTorch lack it, and BatchNorm fills it in."""
    missing = [k for k in expected if k not in given and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {tuple(given[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in given and tuple(given[k].shape) != tuple(v.shape)]
    out = []
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if keys:
            more = f" (+{len(keys) - show} more)" if len(keys) > show else ""
            out.append(f"{what}: {', '.join(keys[:show])}{more}")
    return out


def load_inception(path: str | os.PathLike | None = None, device="cpu") -> FIDInceptionV3:
    """The FID Inception from `path`, else $AUTONAT_INCEPTION_WEIGHTS; AutonatError if neither is set,
    the file is missing, or it is not the pytorch-fid state dict. Never downloads."""
    if path is None or str(path) == "":
        path = os.environ.get(WEIGHTS_ENV) or None
    if path is None:
        raise AutonatError(f"the standard Inception FID needs weights that autonat does not ship: {_HOW_TO_GET}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise AutonatError(f"Inception weights file not found: {path}; {_HOW_TO_GET}")
    return FIDInceptionV3.from_weights_file(path).to(device)
