"""The AutoNAT backbone: a U-ViT style bidirectional Transformer over token ids.

Sequence = [class token ; N image tokens]. Image tokens are ids in [0, K) or the [MASK] id K
(outside the codebook); the class token embeds a `ClassCondition`'s id in [0, C) or its null id C
(the unconditional pass of classifier-free guidance). Learned absolute position embeddings, LayerNorm + dropout on the
input, pre-LN blocks: (depth-1)/2 in-blocks whose outputs are kept, a mid-block, and out-blocks that
fuse each kept output through Linear(2d -> d) (long skips). The output head is tied to the token
embedding matrix (rows [0, K) only, so [MASK] can never be predicted).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..conditioning import ClassCondition, expect_condition
from ..config import opt, validate
from ..io import AutonatError
from ..masking import sample_training_mask
from .contract import LossOutput, bf16_copy, mask_inputs, masked_token_loss
from .layers import Block, TiedHead, gather_positions, init_weights


@dataclass(frozen=True)
class UViTConfig:
    """U-ViT NAT architecture (saved in the model's config.json)."""
    codebook_size: int = opt(1024, "K; the [MASK] id is K", min=2, max=1 << 20)
    seq_len: int = opt(49, "N = h * w image tokens", min=1, max=1 << 16)
    num_classes: int = opt(10, "C; the null (unconditional) class id is C", min=1, max=1 << 20)
    dim: int = opt(256, "width", min=8, max=16384)
    depth: int = opt(9, "blocks; odd: in-blocks + mid-block + out-blocks", min=1, max=1024)
    heads: int = opt(4, "attention heads", min=1, max=1024)
    mlp_ratio: float = opt(4.0, "MLP hidden = mlp_ratio * dim", min=0.25, max=64)
    dropout: float = opt(0.1, "dropout on the input embeddings, as released", min=0.0, max=1.0)
    qkv_bias: bool = opt(False, "bias in the qkv projection")
    # The authors' released layout (AutoNAT-L) differs in three details, all off by default:
    class_norm: bool = opt(False, "the class token has its own LayerNorm (the authors' context_embed)")
    embed_eps: float = opt(1e-5, "eps of the embedding LayerNorm(s) (the authors: 1e-6)", min=0.0, max=1.0)
    head_detach: bool = opt(False, "no gradient into the token embeddings through the tied head (the authors)")

    def __post_init__(self):
        validate(self)
        if self.depth % 2 == 0:
            raise AutonatError(f"U-ViT depth must be odd (in + mid + out blocks), got {self.depth}")
        if self.dim % self.heads:
            raise AutonatError(f"dim {self.dim} must be divisible by heads {self.heads}")


class UViT(nn.Module):
    """U-ViT masked-token predictor. `forward(ids, cond, query)` -> logits over the codebook."""
    arch = "uvit"
    trains_all_parameters = True    # every parameter gets a gradient at every training step

    def __init__(self, config: UViTConfig):
        super().__init__()
        self.config = c = config
        self.token_emb = nn.Embedding(c.codebook_size + 1, c.dim)
        self.class_emb = nn.Embedding(c.num_classes + 1, c.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, c.seq_len + 1, c.dim))   # row 0: the class token
        self.in_norm = nn.LayerNorm(c.dim, eps=c.embed_eps)
        self.class_norm = nn.LayerNorm(c.dim, eps=c.embed_eps) if c.class_norm else None
        self.dropout = nn.Dropout(c.dropout)
        half = (c.depth - 1) // 2
        self.in_blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias) for _ in range(half)])
        self.mid_block = Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias)
        self.out_blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, skip=True)
                                         for _ in range(half)])
        self.out_norm = nn.LayerNorm(c.dim)
        self.head = TiedHead(c.dim, c.codebook_size, detach=c.head_detach)
        init_weights(self)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    # -- constants the sampler needs ------------------------------------------------------
    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    # -- forward ----------------------------------------------------------------------------
    def features(self, ids: torch.Tensor, cond: ClassCondition) -> torch.Tensor:
        """Final hidden states of the image tokens [B, N, d]."""
        expect_condition(cond, ClassCondition, "this U-ViT")
        x = torch.cat([self.class_emb(cond.labels).unsqueeze(1), self.token_emb(ids)], dim=1) + self.pos_emb
        if self.class_norm is None:
            x = self.dropout(self.in_norm(x))
        else:   # the authors' layout: separate LayerNorms, dropout on the image tokens only
            x = torch.cat([self.class_norm(x[:, :1]), self.dropout(self.in_norm(x[:, 1:]))], dim=1)
        skips = []
        for blk in self.in_blocks:
            x = blk(x)
            skips.append(x)
        x = self.mid_block(x)
        for blk in self.out_blocks:
            x = blk(x, skips.pop())
        return self.out_norm(x[:, 1:])

    def forward(self, ids: torch.Tensor, cond: ClassCondition, query: torch.Tensor | None = None,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, N] (with [MASK] = K), cond (B class ids, null = C) -> logits [B, N, K];
        [B, M, K] at the positions `query` [B, M]; or [S, K] at the True entries of the bool
        mask `select` [B, N] (training: the head only runs on masked rows)."""
        h = self.features(ids, cond)
        if query is not None:
            h = gather_positions(h, query)
        elif select is not None:
            h = h[select]
        return self.head(h, self.token_emb.weight)

    # -- the model contract (autonat.models.contract) ---------------------------------------
    def decode_step(self, ids: torch.Tensor, cond: ClassCondition, query: torch.Tensor, cache=None):
        """(ids, cond, query, cache) -> (logits [B, M, K], None): every step is computed from
        scratch, so there is no cache."""
        return self(ids, cond, query), None

    def training_mask(self, dist, batch: int, generator: torch.Generator, rounding: str = "ceil"
                      ) -> torch.Tensor:
        """One ratio r ~ p(r) per example, exactly `rounding`(r N) masked positions each."""
        return sample_training_mask(dist, batch, self.seq_len, generator, rounding)[0]

    def training_loss(self, ids: torch.Tensor, cond: ClassCondition, mask: torch.Tensor,
                      generator: torch.Generator | None = None, *, forward=None, teacher=None,
                      label_smoothing: float = 0.1, reuse_prob: float = 0.0,
                      rows: tuple[int, int, int] | None = None) -> LossOutput:
        """Replace the `mask` [B, N] positions by [MASK]; CE on those positions only (the head
        runs on masked rows only). No randomness and no reuse path of its own: `generator`,
        `teacher`, `reuse_prob` and `rows` are part of the contract for models that use them."""
        mask = mask.to(ids.device)
        logits = (forward or self)(mask_inputs(ids, mask, self.mask_id), cond, select=mask)
        return masked_token_loss(logits, ids[mask], label_smoothing)

    def without_reuse(self) -> "UViT":
        return self

    def for_inference(self, bf16: bool) -> "UViT":
        return bf16_copy(self) if bf16 else self

    def compact(self) -> "UViT":
        return self
