"""The third family: an autoregressive transformer over the same tokens the NATs generate.

A decoder-only transformer reads [class, t_0, ..., t_{N-2}] and predicts t_0 ... t_{N-1} in raster
order (causal attention, learned positions), the way VQGAN's and LlamaGen's class-conditional
transformers do. The class is the first input (the null class `num_classes` for classifier-free
guidance, dropped during training). Sampling generates one token per forward with a KV cache (N
model calls per image, each over one new position), with guidance in autonat's notation
(logits = c + s (c - u), s = 0: conditional only), temperature and top-k.

    model = ARTransformer(ARConfig(codebook_size=1024, seq_len=49, num_classes=10))
    tokens = sample_ar(model, labels, ARSampling(temperature=1.0, top_k=0, guidance=1.0), generator)

The sampler is a pure function of (model, labels, settings, generator); `tokens` [B, N] decode
with the same tokenizer as the NATs' (`tokenizer.decode_tokens`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import opt, validate
from ..io import AutonatError


@dataclass(frozen=True)
class ARConfig:
    """Architecture of the AR peer (defaults: the width and depth of the U-ViT `small`)."""
    codebook_size: int = opt(1024, "token ids 0..K-1", min=2)
    seq_len: int = opt(49, "tokens per image (raster order)", min=1)
    num_classes: int = opt(10, "classes (id num_classes = the null class)", min=1)
    dim: int = opt(256, "width", min=8)
    depth: int = opt(7, "transformer blocks", min=1)
    heads: int = opt(4, "attention heads", min=1)
    mlp_ratio: float = opt(4.0, "MLP hidden width / dim", min=1.0)

    def __post_init__(self):
        validate(self)
        if self.dim % self.heads:
            raise AutonatError(f"dim {self.dim} is not divisible by heads {self.heads}")


@dataclass(frozen=True)
class ARSampling:
    """How the AR peer samples (the knobs a fair comparison tunes)."""
    temperature: float = opt(1.0, "sampling temperature (0 = argmax)", min=0.0)
    top_k: int = opt(0, "keep the k most likely tokens (0 = all)", min=0)
    guidance: float = opt(1.0, "s: logits = c + s (c - u) (0 = no unconditional pass)", min=0.0)

    def __post_init__(self):
        validate(self)

    @property
    def passes(self) -> int:
        """Network passes per token: 2 with the unconditional pass (guidance > 0), else 1."""
        return 2 if self.guidance > 0 else 1


class Block(nn.Module):
    def __init__(self, cfg: ARConfig):
        super().__init__()
        d, self.heads = cfg.dim, cfg.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x [B, L, d] are the next L positions; `cache` = (k, v) [B, h, P, dh] of the P before
        them (None: none). Returns (output, the cache extended by these L positions)."""
        B, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        # Causal within the new positions; every new position sees all cached ones.
        P = k.shape[2] - L
        mask = None if L == 1 else torch.ones(L, P + L, dtype=torch.bool, device=x.device).tril(P)
        a = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask).to(x.dtype)
        x = x + self.proj(a.transpose(1, 2).reshape(B, L, d))
        return x + self.mlp(self.ln2(x)), (k, v)


class ARTransformer(nn.Module):
    """Class-conditional raster-order transformer over token ids (see module docstring)."""

    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.codebook_size, cfg.dim)
        self.cls_emb = nn.Embedding(cfg.num_classes + 1, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.seq_len, cfg.dim))
        nn.init.normal_(self.pos_emb, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.codebook_size)

    def forward(self, labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits [B, N, K] of every token given the class and the tokens before it."""
        if ids.shape[1] != self.config.seq_len:
            raise AutonatError(f"expected {self.config.seq_len} tokens per image, got {ids.shape[1]}")
        x = torch.cat([self.cls_emb(labels)[:, None], self.tok_emb(ids[:, :-1])], 1) + self.pos_emb
        for blk in self.blocks:
            x, _ = blk(x)
        return self.head(self.ln(x))

    def step(self, x: torch.Tensor, pos: int, caches: list | None) -> tuple[torch.Tensor, list]:
        """One sampling step: embeddings `x` [B, 1, d] at position `pos` -> (logits [B, K], caches)."""
        x = x + self.pos_emb[pos]
        new = []
        for i, blk in enumerate(self.blocks):
            x, c = blk(x, None if caches is None else caches[i])
            new.append(c)
        return self.head(self.ln(x))[:, 0], new

    def loss(self, labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy over all N positions."""
        logits = self(labels, ids)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids.reshape(-1))


def _pick(logits: torch.Tensor, s: ARSampling, generator: torch.Generator) -> torch.Tensor:
    """One token per row from logits [B, K] (temperature, top-k; uniforms from `generator`)."""
    if s.temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / s.temperature
    if 0 < s.top_k < logits.shape[-1]:
        kth = logits.topk(s.top_k, -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    u = torch.rand(logits.shape, generator=generator, device="cpu").to(logits.device)
    gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
    return (logits + gumbel).argmax(-1)


@torch.no_grad()
def sample_ar(model: ARTransformer, labels: torch.Tensor, s: ARSampling, generator: torch.Generator) -> torch.Tensor:
    """Token ids [B, N] for class `labels` [B], one token per step with a KV cache; with guidance
    the conditional and unconditional rows run as one batch of 2B."""
    cfg = model.config
    B, dev = labels.shape[0], model.pos_emb.device
    guided = s.passes == 2
    cls = torch.cat([labels, torch.full_like(labels, cfg.num_classes)]) if guided else labels
    x = model.cls_emb(cls.to(dev))[:, None]
    out = torch.empty(B, cfg.seq_len, dtype=torch.long, device=dev)
    caches = None
    for pos in range(cfg.seq_len):
        logits, caches = model.step(x, pos, caches)
        if guided:
            c, u = logits[:B].float(), logits[B:].float()
            logits = c + s.guidance * (c - u)
        tok = _pick(logits, s, generator)
        out[:, pos] = tok
        x = model.tok_emb(torch.cat([tok, tok]) if guided else tok)[:, None]
    return out
