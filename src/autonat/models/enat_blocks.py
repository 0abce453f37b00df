"""ENAT's building block.

The adaLN-Zero SC-Attention block. SC-Attention (paper Sec. 4.1): queries from the block's own tokens; keys/values from [context
tokens ; own tokens], where the context (visible-token features for the decoder, cached features
of earlier tokens for the encoder's reuse path) has its own K/V projection and its own non-affine
LayerNorm and shift/scale. Eight modulation chunks per block, in autonat's order
(shift, scale, gate for attention; shift, scale, gate for the MLP; shift, scale for the context);
`autonat.convert` permutes the authors' order into this one.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Mlp, sdpa


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class SCBlock(nn.Module):
    """adaLN-Zero Transformer block with SC-Attention: queries from its own tokens, keys/values
    from [context tokens ; own tokens]. Without context it is plain self-attention."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool, ada: bool = True,
                 gelu_tanh: bool = False):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm_ctx = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.kv_ctx = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.mlp = Mlp(dim, mlp_ratio, gelu_tanh)
        # shift/scale/gate (attn), shift/scale/gate (mlp), shift/scale (context)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 8 * dim)) if ada else None

    def forward(self, x: torch.Tensor, mod: torch.Tensor, ctx: torch.Tensor | None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, n, d]; mod = self.ada(condition vector) [B, 8d]; ctx [B, m, d] or None;
        key_mask [B, m + n] (True = attend; hides a prompt's padding) or None."""
        b, n, d = x.shape
        h = self.heads
        sh1, sc1, g1, sh2, sc2, g2, shc, scc = mod.chunk(8, dim=-1)
        q, k, v = self.qkv(_modulate(self.norm1(x), sh1, sc1)).view(b, n, 3, h, d // h).unbind(2)
        if ctx is not None and ctx.shape[1] > 0:
            kc, vc = self.kv_ctx(_modulate(self.norm_ctx(ctx), shc, scc)).view(
                b, ctx.shape[1], 2, h, d // h).unbind(2)
            k, v = torch.cat([kc, k], 1), torch.cat([vc, v], 1)
        out = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), key_mask)
        x = x + g1.unsqueeze(1) * self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + g2.unsqueeze(1) * self.mlp(_modulate(self.norm2(x), sh2, sc2))
