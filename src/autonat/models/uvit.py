"""The AutoNAT backbone: a U-ViT style bidirectional Transformer over token ids.

Sequence = [context ; N image tokens]. Image tokens are ids in [0, K) or the [MASK] id K (outside
the codebook). The context is what the model is conditioned on (`condition`):
  class  one token embedding a `ClassCondition`'s id in [0, C) or its null id C (the
         unconditional pass of classifier-free guidance);
  text   the L states of a text encoder (`TextCondition`), each projected Linear(D -> d), as
         U-ViT and AutoNAT's MS-COCO model take CLIP's 77 token states; the prompt's padding
         tokens are hidden from every attention by a key mask (the null = the empty prompt).
Learned absolute position embeddings over context + image tokens, LayerNorm + dropout on the
input, pre-LN blocks: (depth-1)/2 in-blocks whose outputs are kept, a mid-block, and out-blocks that
fuse each kept output through Linear(2d -> d) (long skips). The output head is tied to the token
embedding matrix (rows [0, K) only, so [MASK] can never be predicted).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..conditioning import ClassCondition, TextCondition, expect_condition
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
    condition: str = opt("class", "what the model is conditioned on", choices=("class", "text"))
    num_classes: int = opt(10, "C; the null (unconditional) class id is C (class models)", min=1, max=1 << 20)
    text_dim: int = opt(0, "D, width of the text encoder's states (text models)", min=0, max=1 << 16)
    text_len: int = opt(0, "L, the text encoder's context tokens (text models)", min=0, max=1 << 12)
    context_pool: int = opt(1, "text models: the NAT sees the masked mean of each k consecutive text states "
                               "(ceil(L/k) context tokens; for byte-level encoders)", min=1, max=1 << 12)
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
        if self.condition == "text" and (self.text_dim < 1 or self.text_len < 1):
            raise AutonatError("a text-conditional U-ViT needs text_dim and text_len (the text encoder's "
                               f"width and context length), got {self.text_dim} and {self.text_len}")
        if self.condition == "text" and self.class_norm:
            raise AutonatError("class_norm applies to class-conditional models only")

    @property
    def context_len(self) -> int:
        """Tokens in front of the image tokens: 1 class token, or the text encoder's L states
        (ceil(L / context_pool) of them)."""
        return -(-self.text_len // self.context_pool) if self.condition == "text" else 1


class UViT(nn.Module):
    """U-ViT masked-token predictor. `forward(ids, cond, query)` -> logits over the codebook."""
    arch = "uvit"
    trains_all_parameters = True    # every parameter gets a gradient at every training step

    def __init__(self, config: UViTConfig):
        super().__init__()
        self.config = c = config
        self.token_emb = nn.Embedding(c.codebook_size + 1, c.dim)
        if c.condition == "text":
            self.context_proj = nn.Linear(c.text_dim, c.dim)
        else:
            self.class_emb = nn.Embedding(c.num_classes + 1, c.dim)
        # rows [0, context_len): the context tokens, then the image tokens
        self.pos_emb = nn.Parameter(torch.zeros(1, c.context_len + c.seq_len, c.dim))
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
    def context(self, cond: ClassCondition | TextCondition, batch: int
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The context tokens [B, P, d] of `cond` and the attention key mask [B, P + N] (None:
        every token is attended to)."""
        c = self.config
        if c.condition == "class":
            expect_condition(cond, ClassCondition, "this U-ViT")
            return self.class_emb(cond.labels).unsqueeze(1), None
        expect_condition(cond, TextCondition, "this U-ViT")
        if cond.length != c.text_len or cond.dim != c.text_dim:
            raise AutonatError(f"this U-ViT takes text states of {c.text_len} tokens x {c.text_dim}, got "
                               f"{cond.length} x {cond.dim} (another text encoder?)")
        states, mask = cond.pooled(c.context_pool)
        ctx = self.context_proj(states.to(self.context_proj.weight.dtype))
        image = torch.ones(batch, c.seq_len, dtype=torch.bool, device=mask.device)
        return ctx, torch.cat([mask, image], dim=1)

    def features(self, ids: torch.Tensor, cond: ClassCondition | TextCondition) -> torch.Tensor:
        """Final hidden states of the image tokens [B, N, d]."""
        ctx, key_mask = self.context(cond, ids.shape[0])
        p = ctx.shape[1]
        x = torch.cat([ctx, self.token_emb(ids)], dim=1) + self.pos_emb
        if self.class_norm is None:
            x = self.dropout(self.in_norm(x))
        else:   # the authors' layout: separate LayerNorms, dropout on the image tokens only
            x = torch.cat([self.class_norm(x[:, :1]), self.dropout(self.in_norm(x[:, 1:]))], dim=1)
        skips = []
        for blk in self.in_blocks:
            x = blk(x, key_mask=key_mask)
            skips.append(x)
        x = self.mid_block(x, key_mask=key_mask)
        for blk in self.out_blocks:
            x = blk(x, skips.pop(), key_mask=key_mask)
        return self.out_norm(x[:, p:])

    def forward(self, ids: torch.Tensor, cond: ClassCondition | TextCondition,
                query: torch.Tensor | None = None,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, N] (with [MASK] = K), cond (B conditions) -> logits [B, N, K];
        [B, M, K] at the positions `query` [B, M]; or [S, K] at the True entries of the bool
        mask `select` [B, N] (training: the head only runs on masked rows)."""
        h = self.features(ids, cond)
        if query is not None:
            h = gather_positions(h, query)
        elif select is not None:
            h = h[select]
        return self.head(h, self.token_emb.weight)

    # -- the model contract (autonat.models.contract) ---------------------------------------
    def decode_step(self, ids: torch.Tensor, cond: ClassCondition | TextCondition, query: torch.Tensor,
                    cache=None):
        """(ids, cond, query, cache) -> (logits [B, M, K], None): every step is computed from
        scratch, so there is no cache."""
        return self(ids, cond, query), None

    def training_mask(self, dist, batch: int, generator: torch.Generator, rounding: str = "ceil"
                      ) -> torch.Tensor:
        """One ratio r ~ p(r) per example, exactly `rounding`(r N) masked positions each."""
        return sample_training_mask(dist, batch, self.seq_len, generator, rounding)[0]

    def training_loss(self, ids: torch.Tensor, cond: ClassCondition | TextCondition, mask: torch.Tensor,
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
