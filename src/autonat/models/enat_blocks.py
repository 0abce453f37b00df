"""ENAT's pieces: the SC-Attention block, the feature cache threaded through sampling, and the
fold of a trained class model's conditioning into a per-label table (models/enat.py uses them).

The adaLN-Zero SC-Attention block. SC-Attention (paper Sec. 4.1): queries from the block's own tokens; keys/values from [context
tokens ; own tokens], where the context (visible-token features for the decoder, cached features
of earlier tokens for the encoder's reuse path) has its own K/V projection and its own non-affine
LayerNorm and shift/scale. Eight modulation chunks per block, in autonat's order
(shift, scale, gate for attention; shift, scale, gate for the MLP; shift, scale for the context);
`autonat.convert` permutes the authors' order into this one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from ..conditioning import ClassCondition, TextCondition
from ..io import AutonatError
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


@dataclass
class ENATCache:
    """Features of encoded tokens, threaded through the sampler (one per guidance pass).

    At inference the adaLN modulations (a function of the condition only) are cached too, so
    later steps skip the E + D + 1 conditioning Linears (a third of ENAT-small's weights; at batch
    1 reading them dominates a step). They are reused only without autograd and for the same condition."""
    features: torch.Tensor                  # [B, P + N, d] final encoder features (valid where `encoded`);
    encoded: torch.Tensor                   # [B, P + N] bool; P text positions first (text models), then N image
    condition: ClassCondition | TextCondition | None = None  # the condition the modulations belong to
    mod: torch.Tensor | None = None         # [B, E + D, 8d] every block's adaLN parameters
    out_mod: torch.Tensor | None = None     # [B, 2d] the output layer's shift/scale

    _TENSORS = ("features", "encoded", "mod", "out_mod")

    def rows(self, lo: int, hi: int) -> "ENATCache":
        kw = {f: None if getattr(self, f) is None else getattr(self, f)[lo:hi] for f in self._TENSORS}
        return ENATCache(condition=None if self.condition is None else self.condition.rows(lo, hi), **kw)

    @classmethod
    def cat(cls, parts: list["ENATCache"]) -> "ENATCache":
        def stacked(vs):
            return None if any(v is None for v in vs) else torch.cat(vs)
        conds = [p.condition for p in parts]
        return cls(condition=None if any(c is None for c in conds) else type(conds[0]).cat(conds),
                   **{f: stacked([getattr(p, f) for p in parts]) for f in cls._TENSORS})

    def same_state(self, other: "ENATCache") -> bool:
        return torch.equal(self.encoded, other.encoded)


@torch.no_grad()
def fold_class_conditioning(model: "ENAT") -> "ENAT":  # noqa: F821 (models/enat.py)
    """The same function with the adaLN Linears replaced by a per-label table of their outputs
    (computed for the C + 1 labels, null label included; fold the fp32 weights, before any fp16
    storage). For shipping: inference only
    needs the table; training a folded model trains the table directly."""
    if model.config.class_table:
        return model
    folded = type(model)(replace(model.config, class_table=True))
    kept = {k: v for k, v in model.state_dict().items() if k in folded.state_dict()}
    missing, _ = folded.load_state_dict(kept, strict=False)
    if missing != ["mod_table"]:
        raise AutonatError(f"fold_class_conditioning: unexpected missing weights {missing}")
    labels = torch.arange(model.config.num_classes + 1, device=model.pos_emb.device)
    mod, out_mod = model.modulations(ClassCondition(labels, model.config.num_classes))
    parts = [mod.flatten(1)] + ([out_mod] if out_mod is not None else [])
    folded.mod_table.copy_(torch.cat(parts, 1).float())
    return folded.to(model.pos_emb.device).train(model.training)
