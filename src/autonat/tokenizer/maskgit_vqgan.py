"""The MaskGIT-architecture VQGAN (f = 16, 1024 codes of dim 256) that AutoNAT-L and ENAT-L were
trained on, with the parameter names of the authors' checkpoint, so `autonat convert` loads it
as it is. Written from the architecture's description (docs/REFERENCE.md):

* ResBlock: GN -> swish -> conv3x3 (no bias) -> GN -> swish -> conv3x3 (no bias); when the width
  changes, a bias-free 1x1 `nin_shortcut` is applied to the *residual branch's output* h (this
  network's quirk) and the block returns h + nin(h); otherwise x + h.
* Encoder: conv_in 3x3 (no bias) -> 5 levels of `num_res_blocks` ResBlocks (widths ch * ch_mult),
  2x2 average pooling after each level but the last -> 2 mid ResBlocks -> GN -> swish -> 1x1 conv
  to `z_channels`. No attention blocks, no quant_conv.
* Quantiser: Euclidean nearest code (no normalisation); ids row-major over the h x w grid.
* Decoder: conv_in 3x3 -> 2 mid ResBlocks -> levels 4..0 of `num_res_blocks` ResBlocks with nearest
  x2 upsampling + conv3x3 after each level but the last -> GN -> swish -> conv_out 3x3 (no output
  activation). Images are in [0, 1] in and out (`decode` clamps; `decode_raw` does not).
GroupNorm: `groups` groups (32 in the released model), eps 1e-6.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import config_from_dict, opt, validate
from ..io import AutonatError, dir_identity, load_json
from .interface import TokenizerInterface

KIND = "maskgit-vqgan"


@dataclass(frozen=True)
class MaskGITVQGANConfig:
    image_size: int = opt(256, "side of the (square) images the pipeline makes", min=16, max=4096)
    channels: int = opt(3, "image channels", choices=(1, 3))
    ch: int = opt(128, "width of the first level", min=1, max=4096)
    ch_mult: tuple[int, ...] = opt((1, 1, 2, 2, 4), "width multiplier per level (f = 2^(levels-1))", min=1, max=64)
    num_res_blocks: int = opt(2, "ResBlocks per level", min=1, max=16)
    z_channels: int = opt(256, "code dimension", min=1, max=4096)
    codebook_size: int = opt(1024, "number of codes", min=2, max=1 << 20)
    groups: int = opt(32, "GroupNorm groups", min=1, max=1024)

    def __post_init__(self):
        validate(self)
        widths = [self.ch * m for m in self.ch_mult] + [self.z_channels]
        if any(w % self.groups for w in widths[:-1]):
            raise AutonatError(f"every width {widths[:-1]} must be divisible by groups={self.groups}")
        if self.image_size % self.factor:
            raise AutonatError(f"image_size {self.image_size} must be a multiple of the factor {self.factor}")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.factor


def _gn(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _gn(cin, groups), nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm2, self.conv2 = _gn(cout, groups), nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.nin_shortcut = nn.Conv2d(cout, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(h) if self.nin_shortcut is not None else x) + h


class _Level(nn.Module):
    """`block` (ResBlocks) and, in the decoder, `upsample.conv`."""

    def __init__(self, cin: int, cout: int, n: int, groups: int, upsample: bool = False):
        super().__init__()
        self.block = nn.ModuleList([ResBlock(cin if i == 0 else cout, cout, groups) for i in range(n)])
        if upsample:
            self.upsample = nn.Module()
            self.upsample.conv = nn.Conv2d(cout, cout, 3, padding=1)


def _mid(c: int, groups: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.block_2 = ResBlock(c, c, groups), ResBlock(c, c, groups)
    return mid


class Encoder(nn.Module):
    def __init__(self, c: MaskGITVQGANConfig):
        super().__init__()
        widths = [c.ch * m for m in c.ch_mult]
        self.conv_in = nn.Conv2d(c.channels, widths[0], 3, padding=1, bias=False)
        self.down = nn.ModuleList([_Level(widths[max(0, i - 1)], w, c.num_res_blocks, c.groups)
                                   for i, w in enumerate(widths)])
        self.mid = _mid(widths[-1], c.groups)
        self.norm_out = _gn(widths[-1], c.groups)
        self.conv_out = nn.Conv2d(widths[-1], c.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for blk in level.block:
                h = blk(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2, 2)
        h = self.mid.block_2(self.mid.block_1(h))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, c: MaskGITVQGANConfig):
        super().__init__()
        widths = [c.ch * m for m in c.ch_mult]
        self.conv_in = nn.Conv2d(c.z_channels, widths[-1], 3, padding=1)
        self.mid = _mid(widths[-1], c.groups)
        # up[i] holds level i; levels run from the last (widest) to the first
        self.up = nn.ModuleList([_Level(widths[min(i + 1, len(widths) - 1)], widths[i], c.num_res_blocks,
                                        c.groups, upsample=i > 0) for i in range(len(widths))])
        self.norm_out = _gn(widths[0], c.groups)
        self.conv_out = nn.Conv2d(widths[0], c.channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.block_1(self.conv_in(z)))
        for i in reversed(range(len(self.up))):
            for blk in self.up[i].block:
                h = blk(h)
            if i > 0:
                h = self.up[i].upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class MaskGITVQGAN(nn.Module, TokenizerInterface):
    """Images in [0, 1] <-> token ids, with the interface of `autonat.tokenizer.Tokenizer`."""
    KIND = KIND

    def __init__(self, config: MaskGITVQGANConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(config.codebook_size, config.z_channels)
        self.decoder = Decoder(config)
        self.identity = ""

    @property
    def codebook_device(self) -> torch.device:
        return self.quantize.embedding.weight.device

    @torch.no_grad()
    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h, w] of images [B, C, H, W] in [0, 1] (H, W multiples of the factor)."""
        z = self.encoder(images.to(self.codebook_device)).float()
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        e = self.quantize.embedding.weight.float()
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        return dist.argmin(1).view(b, h, w)

    @torch.no_grad()
    def decode_raw(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder output (not clamped) for ids [B, h, w]."""
        q = self.quantize.embedding(tokens.to(self.codebook_device).long()).permute(0, 3, 1, 2)
        return self.decoder(q.to(self.decoder.conv_in.weight.dtype))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return self.encode_raw(images)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decode_raw(self.checked_tokens(tokens)).float().clamp(0, 1)

    # -- persistence (save_pretrained, saved_identity: TokenizerInterface) --------------

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "MaskGITVQGAN":
        from ..weights import build_and_load
        path = Path(path)
        cfg = load_json(path / "config.json")
        if not isinstance(cfg, dict) or cfg.get("kind") != KIND:
            raise AutonatError(f"{path} is not a MaskGIT-VQGAN directory (config.json kind)")
        config = config_from_dict(MaskGITVQGANConfig, {k: v for k, v in cfg.items() if k != "kind"},
                                  what=f"{path}/config.json")
        model = build_and_load(cls, config, path / "model.safetensors", what=str(path))
        model.identity = dir_identity(path)
        return model.to(device).eval()
