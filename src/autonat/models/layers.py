"""Transformer building blocks shared by the U-ViT NAT and ENAT.

Attention runs through `F.scaled_dot_product_attention`. On CPU under bf16 autocast it is run in
fp32: oneDNN's bf16 SDPA is slower than fp32 on this class of CPU, while the matmuls around it
(qkv, projection, MLP) gain ~4x from bf16 (AMX). On CUDA it stays in the autocast dtype.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
         ) -> torch.Tensor:
    """Scaled dot-product attention over [B, H, L, Dh]; `key_mask` [B, Lk] (True = attend) hides
    padding keys (a text prompt's padding tokens); None = every key.

    CPU training under autocast: fp32 (bf16 SDPA and its backward are slower here).
    CPU inference on a bf16 model (no grad): plain bf16 matmul-softmax-matmul, measured ~1.5x
    faster than bf16 SDPA and ~3x faster than casting to fp32 for SDPA at sampling shapes.
    """
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if q.device.type == "cpu":
        if q.dtype == torch.bfloat16 and not torch.is_grad_enabled():
            scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            return scores.softmax(dim=-1) @ v
        if torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Attention(nn.Module):
    """Multi-head self-attention (no qkv bias, as released)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = sdpa(qkv[0], qkv[1], qkv[2], key_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """fc2(GELU(fc1(x))); `gelu_tanh` = the tanh approximation (ENAT's released blocks)."""

    def __init__(self, dim: int, ratio: float = 4.0, gelu_tanh: bool = False):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.approximate = "tanh" if gelu_tanh else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


class Block(nn.Module):
    """Pre-LN Transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 skip: bool = False):
        super().__init__()
        # U-ViT long skip: the out-block first fuses [x ; skip] with Linear(2d -> d).
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class TiedHead(nn.Module):
    """Output head as released: Linear -> GELU -> LayerNorm -> dot with the token embeddings + bias.
    Only the first `codebook_size` embedding rows are used, so [MASK] is never predicted. `detach`:
    the embedding receives no gradient through the head (the authors' code)."""

    def __init__(self, dim: int, codebook_size: int, detach: bool = False):
        super().__init__()
        self.codebook_size, self.detach = codebook_size, detach
        self.fc = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.bias = nn.Parameter(torch.zeros(codebook_size))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.fc(h)))
        w = embedding[:self.codebook_size]
        return F.linear(h, w.detach() if self.detach else w, self.bias)


def gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], index [B, M] -> [B, M, D]."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def init_weights(module: nn.Module) -> None:
    """Truncated-normal(0.02) linear/embedding weights, zero biases, unit LayerNorm (U-ViT/ViT init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.trunc_normal_(m.weight, std=0.02)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
