"""The controlled peer: diffusion on the NATs' own latent grid with the NATs' own backbone.

It answers "is it the masking or the latent space": the model is a U-ViT of the NAT's size (same
width, depth, heads, long skips; `UViTConfig` defaults of `small`), the data are the same token
cache the NATs train on, and images come out of the same tokenizer decoder. Only the generative
process differs: each of the N = 49 positions holds the *continuous* code vector of its token
(the tokenizer's codebook embeddings: unit vectors, cosine VQ), standardised by one scalar, and
a class-conditional DDPM (the pixel peer's forward process: 1000-step cosine schedule,
v-prediction) learns them; DPM-Solver++(2M) or DDIM with classifier-free guidance samples them.

Decoding: each sampled vector is projected back onto the unit sphere (where the encoder puts its
outputs before quantisation) and fed to the decoder as it is (`snap=False`, what a latent diffusion
model does), or replaced by its nearest code first (`snap=True`: the image of a token grid).

The denoiser takes diffusers' UNet calling convention, `model(x, t, class_labels=...).sample`,
so the pixel peer's solver loop (`pixel_diffusion.sample`) drives both families unchanged.
Latents are [B, D, h, w] (D = codebook_dim), tokens in raster order inside the model.

    model = LatentUViT(LatentUViTConfig(latent_dim=16, seq_len=49))
    z = pixel_diffusion.sample(model, schedule, "dpmpp2m", 8, w, labels, noise, 10, clip=False)
    images = LatentCodec(tokenizer, scale).decode(z)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import opt, validate
from ..io import AutonatError
from ..models.layers import Block, init_weights


@dataclass(frozen=True)
class LatentUViTConfig:
    """Architecture of the latent denoiser (defaults: the U-ViT `small`'s width, depth and heads)."""
    latent_dim: int = opt(16, "channels of one latent position (the tokenizer's codebook_dim)", min=1)
    seq_len: int = opt(49, "latent positions (h * w)", min=1)
    num_classes: int = opt(10, "classes (id num_classes = the null class of guidance)", min=1)
    dim: int = opt(256, "width", min=8)
    depth: int = opt(7, "transformer blocks (odd: in-blocks, a mid block, out-blocks with long skips)", min=1)
    heads: int = opt(4, "attention heads", min=1)
    mlp_ratio: float = opt(4.0, "MLP hidden width / dim", min=1.0)

    def __post_init__(self):
        validate(self)
        if self.depth % 2 != 1:
            raise AutonatError(f"depth must be odd (in-blocks, mid block, out-blocks), got {self.depth}")
        if self.dim % self.heads:
            raise AutonatError(f"dim {self.dim} is not divisible by heads {self.heads}")


@dataclass
class DenoiserOutput:
    sample: torch.Tensor       # [B, D, h, w]: the predicted v (or eps)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [B, dim] of (possibly fractional) timesteps t [B]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class LatentUViT(nn.Module):
    """U-ViT denoiser over a latent grid: [time token, class token, N latent tokens] + positions,
    in-blocks / mid block / out-blocks with long skips (as the NAT's U-ViT), a zero-initialised
    linear read-out per latent position."""

    def __init__(self, config: LatentUViTConfig):
        super().__init__()
        self.config = c = config
        self.in_proj = nn.Linear(c.latent_dim, c.dim)
        self.time_mlp = nn.Sequential(nn.Linear(c.dim, 4 * c.dim), nn.SiLU(), nn.Linear(4 * c.dim, c.dim))
        self.class_emb = nn.Embedding(c.num_classes + 1, c.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, 2 + c.seq_len, c.dim))
        half = (c.depth - 1) // 2
        self.in_blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio) for _ in range(half)])
        self.mid_block = Block(c.dim, c.heads, c.mlp_ratio)
        self.out_blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio, skip=True) for _ in range(half)])
        self.out_norm = nn.LayerNorm(c.dim)
        self.out_proj = nn.Linear(c.dim, c.latent_dim)
        init_weights(self)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor) -> DenoiserOutput:
        """x [B, D, h, w] noisy latents, t [B] timesteps, class_labels [B] (num_classes = null)."""
        c = self.config
        b, d, h, w = x.shape
        if d != c.latent_dim or h * w != c.seq_len:
            raise AutonatError(f"this denoiser takes latents of {c.latent_dim} channels x {c.seq_len} positions, "
                               f"got {d} x {h * w}")
        tokens = self.in_proj(x.flatten(2).transpose(1, 2))
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        temb = self.time_mlp(timestep_embedding(t, c.dim).to(tokens.dtype))
        ctx = torch.stack([temb, self.class_emb(class_labels)], dim=1)
        z = torch.cat([ctx, tokens], dim=1) + self.pos_emb
        skips = []
        for blk in self.in_blocks:
            z = blk(z)
            skips.append(z)
        z = self.mid_block(z)
        for blk in self.out_blocks:
            z = blk(z, skips.pop())
        out = self.out_proj(self.out_norm(z[:, 2:]))
        return DenoiserOutput(out.transpose(1, 2).reshape(b, d, h, w))


class LatentCodec:
    """Token ids <-> the denoiser's latent space, through one tokenizer's codebook.

    encode: ids [B, h, w] -> code vectors [B, D, h, w] / scale (scale: their std over the data, so
    the latents have unit variance, as in latent diffusion). decode: latents -> images in [0, 1]
    by the tokenizer's decoder, after putting each vector back on the unit sphere (snap: the
    nearest code instead)."""

    def __init__(self, tokenizer, scale: float):
        if not (scale > 0 and math.isfinite(scale)):
            raise AutonatError(f"the latent scale must be a positive number, got {scale!r}")
        quantizer = getattr(tokenizer, "quantizer", None)
        if quantizer is None or not hasattr(quantizer, "codebook"):
            raise AutonatError("the latent peer needs autonat's own tokenizer (a cosine-VQ codebook)")
        self.tokenizer, self.scale = tokenizer, float(scale)
        self.codebook = quantizer.codebook.float()

    @staticmethod
    def data_scale(tokenizer, ids: torch.Tensor) -> float:
        """The std of the code vectors of `ids` (all channels pooled): the standardising scale."""
        return float(tokenizer.quantizer.lookup(ids.long()).float().std())

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.quantizer.lookup(ids.long()).float() / self.scale

    def nearest_ids(self, z: torch.Tensor) -> torch.Tensor:
        """The token grid [B, h, w] nearest (cosine) to latents [B, D, h, w]."""
        b, d, h, w = z.shape
        flat = F.normalize(z.float().permute(0, 2, 3, 1).reshape(-1, d), dim=1)
        return (flat @ self.codebook.t()).argmax(dim=1).view(b, h, w)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, snap: bool = False) -> torch.Tensor:
        """latents [B, D, h, w] -> float images [B, C, H, W] in [0, 1]."""
        if snap:
            return self.tokenizer.decode(self.nearest_ids(z))
        return self.tokenizer.decode_vectors(F.normalize(z.float(), dim=1))
