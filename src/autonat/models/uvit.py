"""The AutoNAT backbone: a U-ViT style bidirectional Transformer over token ids.

Sequence = [class token ; N image tokens]. Image tokens are ids in [0, K) or the [MASK] id K
(outside the codebook); the class token is an id in [0, C) or the null id C (unconditional pass
for classifier-free guidance). Learned absolute position embeddings, LayerNorm + dropout on the
input, pre-LN blocks: (depth-1)/2 in-blocks whose outputs are kept, a mid-block, and out-blocks that
fuse each kept output through Linear(2d -> d) (long skips). The output head is tied to the token
embedding matrix (rows [0, K) only, so [MASK] can never be predicted).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..io import AutonatError
from .layers import Block, TiedHead, gather_positions, init_weights


@dataclass(frozen=True)
class UViTConfig:
    """U-ViT NAT architecture (saved in the model's config.json)."""
    codebook_size: int = 1024       # K; [MASK] id = K
    seq_len: int = 49               # N = h * w image tokens
    num_classes: int = 10           # C; null (unconditional) class id = C
    dim: int = 256
    depth: int = 9                  # odd: in-blocks + mid-block + out-blocks
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1            # on the input embeddings, as released
    qkv_bias: bool = False

    def __post_init__(self):
        if self.depth < 1 or self.depth % 2 == 0:
            raise AutonatError(f"U-ViT depth must be odd (in + mid + out blocks), got {self.depth}")
        if self.dim % self.heads:
            raise AutonatError(f"dim {self.dim} must be divisible by heads {self.heads}")


class UViT(nn.Module):
    """U-ViT masked-token predictor. `forward(ids, labels, query)` -> logits over the codebook."""
    arch = "uvit"

    def __init__(self, config: UViTConfig):
        super().__init__()
        self.config = c = config
        self.token_emb = nn.Embedding(c.codebook_size + 1, c.dim)
        self.class_emb = nn.Embedding(c.num_classes + 1, c.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, c.seq_len + 1, c.dim))
        self.in_norm = nn.LayerNorm(c.dim)
        self.dropout = nn.Dropout(c.dropout)
        half = (c.depth - 1) // 2
        self.in_blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias) for _ in range(half)])
        self.mid_block = Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias)
        self.out_blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, skip=True)
                                         for _ in range(half)])
        self.out_norm = nn.LayerNorm(c.dim)
        self.head = TiedHead(c.dim, c.codebook_size)
        init_weights(self)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    # -- constants the sampler needs ------------------------------------------------------
    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    # -- forward ----------------------------------------------------------------------------
    def features(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Final hidden states of the image tokens [B, N, d]."""
        x = torch.cat([self.class_emb(labels).unsqueeze(1), self.token_emb(ids)], dim=1)
        x = self.dropout(self.in_norm(x + self.pos_emb))
        skips = []
        for blk in self.in_blocks:
            x = blk(x)
            skips.append(x)
        x = self.mid_block(x)
        for blk in self.out_blocks:
            x = blk(x, skips.pop())
        return self.out_norm(x[:, 1:])

    def forward(self, ids: torch.Tensor, labels: torch.Tensor, query: torch.Tensor | None = None,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, N] (with [MASK] = K), labels [B] (null = C) -> logits [B, N, K];
        [B, M, K] at the positions `query` [B, M]; or [S, K] at the True entries of the bool
        mask `select` [B, N] (training: the head only runs on masked rows)."""
        h = self.features(ids, labels)
        if query is not None:
            h = gather_positions(h, query)
        elif select is not None:
            h = h[select]
        return self.head(h, self.token_emb.weight)

    def decode_step(self, ids: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, cache=None):
        """Sampler protocol: (ids, labels, query, cache) -> (logits [B, M, K], cache). Stateless."""
        return self(ids, labels, query), None
