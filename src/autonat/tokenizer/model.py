"""VQ tokenizer: convolutional encoder/decoder with residual blocks (MaskGIT / taming VQGAN family).

The downsampling factor is f = 2 ** (len(ch_mult) - 1): ch_mult=(1, 2, 2) gives f=4 (28x28 -> 7x7
tokens), ch_mult=(1, 1, 2, 2, 4) gives f=16 (256x256 -> 16x16 tokens, MaskGIT's setting).
Images whose side is not a multiple of f are padded (edge replication) inside `encode` and cropped
back inside `decode`, so callers always work at the dataset's native size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import config_from_dict, opt, validate
from ..io import AutonatError, dir_identity, load_json
from .interface import TokenizerInterface
from .quantizer import QuantizerOutput, VectorQuantizer


@dataclass(frozen=True)
class TokenizerConfig:
    """Architecture of a VQ tokenizer (saved as config.json beside model.safetensors)."""
    image_size: int = opt(28, "native side of the (square) images", min=4, max=4096, cli=False)
    channels: int = opt(1, "1 = grayscale, 3 = RGB", choices=(1, 3), cli=False)
    base_channels: int = opt(32, "channels of the first level", min=1, max=4096)
    ch_mult: tuple[int, ...] = opt((1, 2, 2), "channel multiplier per level; downsampling factor = "
                                              "2^(levels - 1)", min=1, max=64)
    num_res_blocks: int = opt(1, "residual blocks per level", min=1, max=16)
    codebook_size: int = opt(1024, "number of codes", min=2, max=1 << 20)
    codebook_dim: int = opt(16, "lookup space dimension (cosine similarity)", min=1, max=4096)
    beta: float = opt(0.25, "commitment weight", min=0.0)
    ema_decay: float = opt(0.99, "codebook EMA decay", min=0.0, max=1.0)
    dead_threshold: float = opt(0.1, "restart codes used < this fraction of the mean rate", min=0.0)

    def __post_init__(self):
        validate(self)
        if not 1 <= len(self.ch_mult) <= 8:
            raise AutonatError(f"ch_mult must have 1 to 8 levels, got {self.ch_mult}")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def padded_size(self) -> int:
        return math.ceil(self.image_size / self.factor) * self.factor

    @property
    def grid_size(self) -> int:
        return self.padded_size // self.factor


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, c // 4) if c >= 8 else 1, num_channels=c, eps=1e-6)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, twice, with a (1x1-projected) identity path."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch = [cfg.base_channels * m for m in cfg.ch_mult]
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, ch[0], 3, padding=1)]
        cin = ch[0]
        for level, c in enumerate(ch):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cin, c))
                cin = c
            if level < len(ch) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers += [ResBlock(cin, cin), _norm(cin), nn.SiLU(), nn.Conv2d(cin, cfg.codebook_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch = [cfg.base_channels * m for m in cfg.ch_mult][::-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.codebook_dim, ch[0], 3, padding=1), ResBlock(ch[0], ch[0])]
        cin = ch[0]
        for level, c in enumerate(ch):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cin, c))
                cin = c
            if level < len(ch) - 1:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        layers += [_norm(cin), nn.SiLU(), nn.Conv2d(cin, cfg.channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

class Tokenizer(nn.Module, TokenizerInterface):
    """Images in [0, 1] <-> token ids. `encode`/`decode` are inference helpers (no grad, eval
    semantics); `forward` is the training path returning reconstruction + quantizer statistics."""
    KIND = "tokenizer"

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.codebook_size, config.codebook_dim, config.beta,
                                         config.ema_decay, config.dead_threshold)
        self.decoder = Decoder(config)
        self.identity = ""

    # -- pixels <-> latent ----------------------------------------------------------------
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.padded_size - self.config.image_size
        if p == 0:
            return x
        return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), mode="replicate")

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.padded_size - self.config.image_size
        if p == 0:
            return x
        s = self.config.image_size
        return x[..., p // 2:p // 2 + s, p // 2:p // 2 + s]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """Training path: images [B, C, H, W] in [0, 1] -> (reconstruction logits-space in [~0, ~1],
        quantizer output)."""
        z = self.encoder(self._pad(images) * 2 - 1)
        q = self.quantizer(z)
        recon = self._crop(self.decoder(q.quantized.to(z.dtype)))
        return (recon + 1) / 2, q

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """float images [B, C, H, W] in [0, 1] -> token ids LongTensor [B, h, w]."""
        self.check_images(images)
        z = self.encoder(self._pad(images.to(self.codebook_device)) * 2 - 1)
        z = F.normalize(z.float(), dim=1)
        b, d, h, w = z.shape
        idx = self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d))
        return idx.view(b, h, w)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """token ids [B, h, w] (or [B, h*w]) -> float images [B, C, H, W] in [0, 1]."""
        tokens = self.checked_tokens(tokens)
        return self.decode_vectors(self.quantizer.lookup(tokens.to(self.codebook_device)))

    @torch.no_grad()
    def decode_vectors(self, q: torch.Tensor) -> torch.Tensor:
        """Code-space vectors [B, D, h, w] (codebook entries, or any unit vectors: a latent
        model's output) -> float images [B, C, H, W] in [0, 1]."""
        if q.dim() != 4 or q.shape[1] != self.config.codebook_dim:
            raise AutonatError(f"decode_vectors takes [B, {self.config.codebook_dim}, h, w] vectors, got {tuple(q.shape)}")
        return ((self._crop(self.decoder(q.to(self.codebook_device))) + 1) / 2).float().clamp(0, 1)

    @property
    def codebook_device(self) -> torch.device:
        return self.quantizer.codebook.device

    # -- persistence (save_pretrained, saved_identity: TokenizerInterface) --------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device = "cpu") -> "Tokenizer":
        from ..assets import resolve
        from ..weights import build_and_load
        path = resolve("tokenizer", name_or_path)
        cfg = load_json(path / "config.json")
        if not isinstance(cfg, dict) or cfg.get("kind", "tokenizer") != "tokenizer":
            raise AutonatError(f"{path} is not a tokenizer directory (config.json kind)")
        cfg = {k: v for k, v in cfg.items() if k != "kind"}
        config = config_from_dict(TokenizerConfig, cfg, what=f"{path}/config.json")
        model = build_and_load(cls, config, path / "model.safetensors", what=str(path))
        model.identity = dir_identity(path)
        return model.to(device).eval()
