"""ENAT (arXiv 2411.06959): visible tokens and [MASK] tokens are processed by different networks.

* Visible-token encoder (depth E): attends among visible tokens only - [MASK] tokens never enter
  it, so visible representations are built from visible tokens alone (spatial disentangling).
* [MASK]-token decoder (depth D, 1-2): SC-Attention - queries from the [MASK] tokens; keys/values
  are [encoded visible features (own K/V projection, own non-affine LayerNorm + modulation) ;
  the [MASK] tokens themselves].
* Computation reuse across steps (temporal): a cache holds the features of every token that has
  been encoded. At each step only the *newly decoded* tokens are encoded; their attention context
  is the cached features passed through a residual projection P(f) = f + MLP(LN(f)). Two
  semantics (`reuse_mode`): `projected` (the authors' code, and autonat's named sizes since it
  trained slightly better here, docs/RESULTS.md) replaces the cache by P(cache) at every step, so
  a token decoded k steps ago carries P^k(f), for the encoder's context and the decoder alike;
  `raw` keeps each token's encoder output in the cache and gives the decoder those raw features
  (the shipped ENAT small; a config.json without the field means `raw`).
* The authors' released layout (the `-official` variant of the registry): LayerNorm'd embeddings, tanh-GELU, a
  4d-wide reuse projection, projected reuse, qkv biases and a plain LayerNorm output layer instead
  of autonat's modulated one; `autonat convert` loads their checkpoints into it.
* Text conditioning (autonat's design; the authors released no text-to-image code): the prompt's
  text-encoder states, projected (and optionally pooled, `context_pool`), are *visible tokens*
  of the encoder - known information, which by the paper's spatial finding is what the encoder is
  for: they are encoded together with the first visible image tokens, cached like any encoded
  token (so with reuse they are encoded once per image, at the first step), and every [MASK]
  token reads them through SC-Attention with the visible image features (padding hidden by a
  key mask). The adaLN-Zero modulations come from the masked mean of the projected states, so
  every block is conditioned even when the encoder sees few tokens.
* Class conditioning: adaLN-Zero (as released) from a class embedding of a `ClassCondition`
  (null id C for guidance). Chosen over an in-context token because the encoder may see very few tokens
  (1 at the first reuse steps) and modulation conditions every token directly.
  The modulations depend on the label only, so a trained model can be *folded*
  (`fold_class_conditioning`): every block's adaLN Linear (a third of ENAT-small's weights) is
  replaced by a table of the C + 1 labels' modulations - the same function, ~35 % fewer weights
  to ship. `class_table=True` in the config marks a folded model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..conditioning import ClassCondition, TextCondition, expect_condition
from ..config import opt, validate
from ..io import AutonatError
from ..masking import sample_training_mask
from .contract import LossOutput, bf16_copy, mask_inputs, masked_positions, masked_token_loss
from .enat_blocks import ENATCache, SCBlock, _modulate, fold_class_conditioning
from .layers import Mlp, TiedHead, gather_positions, init_weights


@dataclass(frozen=True)
class ENATConfig:
    """ENAT architecture (saved in the model's config.json)."""
    codebook_size: int = opt(1024, "K; the [MASK] id is K", min=2, max=1 << 20)
    seq_len: int = opt(49, "N = h * w image tokens", min=1, max=1 << 16)
    num_classes: int = opt(10, "C; the null (unconditional) class id is C", min=1, max=1 << 20)
    condition: str = opt("class", "what the model is conditioned on", choices=("class", "text"))
    text_dim: int = opt(0, "D, width of the text encoder's states (text models)", min=0, max=1 << 16)
    text_len: int = opt(0, "L, the text encoder's context tokens (text models)", min=0, max=1 << 12)
    context_pool: int = opt(1, "text models: the NAT sees the masked mean of each k consecutive text states",
                            min=1, max=1 << 12)
    dim: int = opt(256, "width", min=8, max=16384)
    encoder_depth: int = opt(8, "E: blocks over visible tokens", min=1, max=1024)
    decoder_depth: int = opt(1, "D: SC-Attention blocks over [MASK] tokens", min=1, max=1024)
    heads: int = opt(4, "attention heads", min=1, max=1024)
    mlp_ratio: float = opt(4.0, "MLP hidden = mlp_ratio * dim", min=0.25, max=64)
    dropout: float = opt(0.1, "dropout on the embeddings", min=0.0, max=1.0)
    qkv_bias: bool = opt(False, "bias in the qkv projections")
    class_table: bool = opt(False, "modulations stored per label (a folded model, see module doc)")
    # Reuse semantics (see module docstring): `raw` = the cache keeps encoder outputs, the
    # projection P is applied to make the encoder's context; `projected` = the authors': every
    # step replaces the cache by P(cache) and the decoder sees the projected features too.
    reuse_mode: str = opt("raw", "how cached features are reused (named sizes: projected)",
                          choices=("raw", "projected"))
    # The authors' released layout (ENAT-L) differs in these details, all off by default:
    embed_norm: bool = opt(False, "LayerNorm (eps 1e-6) on token + position embeddings")
    gelu_tanh: bool = opt(False, "tanh-approximate GELU in blocks and the reuse projection")
    reuse_hidden_ratio: float = opt(1.0, "hidden width of the reuse projection / dim (the authors: 4)", min=0.25, max=64)
    reuse_eps: float = opt(1e-5, "eps of the reuse projection's LayerNorm (the authors: 1e-6)", min=0.0, max=1.0)
    final_layer: str = opt("adaln", "adaln = LayerNorm'd encoder outputs and an adaLN-modulated output "
                                    "layer; layernorm = the authors' plain affine LayerNorm (eps 1e-5)",
                           choices=("adaln", "layernorm"))
    head_detach: bool = opt(False, "no gradient into the token embeddings through the tied head (the authors)")

    def __post_init__(self):
        validate(self)
        if self.dim % self.heads:
            raise AutonatError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.condition == "text":
            if self.text_dim < 1 or self.text_len < 1:
                raise AutonatError("a text-conditional ENAT needs text_dim and text_len (the text encoder's "
                                   f"width and context length), got {self.text_dim} and {self.text_len}")
            if self.class_table:
                raise AutonatError("class_table (a folded class model) does not apply to a text model")

    @property
    def context_len(self) -> int:
        """P, the text tokens in front of the image positions of the cache (0 for class models)."""
        return -(-self.text_len // self.context_pool) if self.condition == "text" else 0


class ENAT(nn.Module):
    """Disentangled NAT with feature reuse. See module docstring."""
    arch = "enat"
    trains_all_parameters = False   # the reuse projection is only used on reuse-path steps

    def __init__(self, config: ENATConfig):
        super().__init__()
        self.config = c = config
        self.reuse = True               # False: recompute every step (see without_reuse)
        ada = not c.class_table
        modulated_out = c.final_layer == "adaln"
        block = lambda: SCBlock(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, ada, c.gelu_tanh)  # noqa: E731
        self.token_emb = nn.Embedding(c.codebook_size + 1, c.dim)
        # (registration order = initialisation order: a seed builds the same weights whether or not
        # the model is later folded)
        text = c.condition == "text"
        self.class_emb = nn.Embedding(c.num_classes + 1, c.dim) if ada and not text else None
        self.context_proj = nn.Linear(c.text_dim, c.dim) if text else None
        self.text_pos = nn.Parameter(torch.zeros(1, c.context_len, c.dim)) if text else None
        self.pos_emb = nn.Parameter(torch.zeros(1, c.seq_len, c.dim))
        self.embed_norm = nn.LayerNorm(c.dim, eps=1e-6) if c.embed_norm else None
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList([block() for _ in range(c.encoder_depth)])
        self.enc_norm = nn.LayerNorm(c.dim) if modulated_out else nn.Identity()
        self.reuse_norm = nn.LayerNorm(c.dim, eps=c.reuse_eps)          # P(f) = f + MLP(LN(f))
        self.reuse_mlp = Mlp(c.dim, c.reuse_hidden_ratio, c.gelu_tanh)
        self.decoder = nn.ModuleList([block() for _ in range(c.decoder_depth)])
        self.out_norm = nn.LayerNorm(c.dim, elementwise_affine=False, eps=1e-6) if modulated_out \
            else nn.LayerNorm(c.dim, eps=1e-5)
        self.out_ada = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, 2 * c.dim)) if ada and modulated_out else None
        self.head = TiedHead(c.dim, c.codebook_size, detach=c.head_detach)
        if not ada:  # per label: every block's 8d modulations, then the output layer's 2d (zero: identity)
            blocks = c.encoder_depth + c.decoder_depth
            out = 2 * c.dim if modulated_out else 0
            self.mod_table = nn.Parameter(torch.zeros(c.num_classes + 1, blocks * 8 * c.dim + out))
        init_weights(self)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        if text:
            nn.init.trunc_normal_(self.text_pos, std=0.02)
        if ada:
            for blk in list(self.encoder) + list(self.decoder):   # adaLN-Zero: blocks start as identity
                nn.init.zeros_(blk.ada[-1].weight)
                nn.init.zeros_(blk.ada[-1].bias)
            if self.out_ada is not None:
                nn.init.zeros_(self.out_ada[-1].weight)
                nn.init.zeros_(self.out_ada[-1].bias)

    mask_id = property(lambda self: self.config.codebook_size)
    seq_len = property(lambda self: self.config.seq_len)
    codebook_size = property(lambda self: self.config.codebook_size)

    # -- pieces -----------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Embeddings of the tokens `ids` [B, n] at positions `pos` [B, n]."""
        p = self.pos_emb.expand(ids.shape[0], -1, -1)
        x = self.token_emb(ids) + gather_positions(p, pos)
        return self.dropout(x if self.embed_norm is None else self.embed_norm(x))

    def modulations(self, cond: ClassCondition) -> tuple[torch.Tensor, torch.Tensor | None]:
        """adaLN parameters of every block [B, E + D, 8d] and of the output layer [B, 2d] (None
        with the plain LayerNorm output layer)."""
        blocks = list(self.encoder) + list(self.decoder)
        if self.config.condition == "text":
            c = self.text_tokens(cond)[2]
            return torch.stack([blk.ada(c) for blk in blocks], 1), (self.out_ada(c) if self.out_ada is not None
                                                                      else None)
        expect_condition(cond, ClassCondition, "this ENAT")
        labels = cond.labels
        if self.config.class_table:
            row = self.mod_table[labels]
            split = len(blocks) * 8 * self.config.dim
            out = row[:, split:] if self.config.final_layer == "adaln" else None
            return row[:, :split].view(labels.shape[0], len(blocks), -1), out
        c = self.class_emb(labels)
        out = self.out_ada(c) if self.out_ada is not None else None
        return torch.stack([blk.ada(c) for blk in blocks], 1), out

    def text_tokens(self, cond: TextCondition) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeddings [B, P, d] of the prompt's text tokens, their mask [B, P], the conditioning
        vector [B, d] = masked mean of the projected states)."""
        expect_condition(cond, TextCondition, "this ENAT")
        c = self.config
        if cond.length != c.text_len or cond.dim != c.text_dim:
            raise AutonatError(f"this ENAT takes text states of {c.text_len} tokens x {c.text_dim}, got "
                               f"{cond.length} x {cond.dim} (another text encoder?)")
        states, mask = cond.pooled(c.context_pool)
        ctx = self.context_proj(states.to(self.context_proj.weight.dtype))
        w = mask.to(ctx.dtype).unsqueeze(-1)
        vec = (ctx * w).sum(1) / w.sum(1).clamp(min=1)
        x = ctx + self.text_pos
        return self.dropout(x if self.embed_norm is None else self.embed_norm(x)), mask, vec

    def _key_mask(self, cond, b: int, n: int, device) -> torch.Tensor | None:
        """[B, P + N]: which cache positions may be attended to (a prompt's padding may not);
        None for class models (every position)."""
        if self.config.condition != "text":
            return None
        text_mask = cond.pooled(self.config.context_pool)[1].to(device)
        return torch.cat([text_mask, torch.ones(b, n, dtype=torch.bool, device=device)], 1)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The reuse projection P(f) = f + MLP(LN(f)) of cached features."""
        return features + self.reuse_mlp(self.reuse_norm(features))

    def encode(self, ids: torch.Tensor, pos: torch.Tensor, mod: torch.Tensor,
               context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None,
               prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Features of visible tokens `ids` at `pos` (mod: [B, E(+D), 8d]); `context` = the
        (projected) features of previously encoded tokens they attend to (None: from scratch);
        `prefix` = text-token embeddings encoded in front of them; `key_mask` [B, context +
        prefix + tokens] hides padding (None: every key)."""
        x = self._embed(ids, pos)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], 1)
        if context is not None and context.shape[1] == 0:
            context = None
        for i, blk in enumerate(self.encoder):
            x = blk(x, mod[:, i], context, key_mask)
        return self.enc_norm(x)

    def decode(self, query: torch.Tensor, mod: torch.Tensor, out_mod: torch.Tensor | None,
               visible: torch.Tensor, visible_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, M, K] for the [MASK] positions `query` [B, M] given visible features
        (mod: the decoder blocks' modulations [B, D, 8d]; `visible_mask` hides padding)."""
        y = self._embed(torch.full_like(query, self.mask_id), query)
        key_mask = None if visible_mask is None else \
            torch.cat([visible_mask, torch.ones_like(query, dtype=torch.bool)], 1)
        for i, blk in enumerate(self.decoder):
            y = blk(y, mod[:, i], visible, key_mask)
        y = self.out_norm(y)
        if out_mod is not None:
            y = _modulate(y, *out_mod.chunk(2, dim=-1))
        return self.head(y, self.token_emb.weight)

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        """Positions of the True entries of `mask` [B, N], which must be equally many per row."""
        n = int(mask[0].sum())
        if mask.shape[0] > 1 and not bool((mask.sum(1) == n).all()):
            raise AutonatError("ENAT needs the same number of visible tokens in every row of a batch")
        return masked_positions(mask, n)

    def _mods(self, cond: ClassCondition, cache: ENATCache | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The adaLN modulations for `cond`: from the cache when it holds them for the same
        condition and no gradient is needed, else computed."""
        if (cache is not None and cache.mod is not None and not torch.is_grad_enabled()
                and cache.condition.same_as(cond)):
            return cache.mod, cache.out_mod
        return self.modulations(cond)

    # -- the step (sampling) and forward (training) ----------------------------------------
    def step(self, ids: torch.Tensor, cond: ClassCondition, query: torch.Tensor,
             cache: ENATCache | None) -> tuple[torch.Tensor, ENATCache]:
        """One decoding step: encode visible tokens not yet in `cache` (all of them if None),
        then decode the [MASK] positions `query`. Returns (logits [B, M, K], new cache)."""
        E = self.config.encoder_depth
        mod, out_mod = self._mods(cond, cache)
        cache = self.extend_cache(ids, cond, cache, mod)
        visible = cache.encoded
        keys = self._key_mask(cond, *ids.shape, ids.device)
        vis_mask = None
        if bool(visible.any()):
            pos = self._positions(visible)
            vis = gather_positions(cache.features, pos)
            vis_mask = None if keys is None else keys.gather(1, pos)
        else:
            vis = cache.features[:, :0]
        logits = self.decode(query, mod[:, E:], out_mod, vis, vis_mask)
        return logits, ENATCache(cache.features, visible, cond, mod, out_mod)

    def extend_cache(self, ids: torch.Tensor, cond: ClassCondition, cache: ENATCache | None,
                     mod: torch.Tensor | None = None) -> ENATCache:
        """The cache after encoding the visible tokens of `ids` that `cache` does not hold yet
        (every visible token when `cache` is None): only those are run through the encoder,
        with the cached features as their context (computation reuse)."""
        b, n = ids.shape
        P = self.config.context_len
        if mod is None:
            mod = self._mods(cond, cache)[0]
        visible = ids != self.mask_id
        if cache is None:
            features = torch.zeros(b, P + n, self.config.dim, device=ids.device, dtype=self.pos_emb.dtype)
            encoded = torch.zeros(b, P + n, dtype=torch.bool, device=ids.device)
        else:
            features, encoded = cache.features, cache.encoded
            if bool((encoded[:, P:] & ~visible).any()):
                raise AutonatError("ENAT cache holds a position that is masked again (decoded tokens "
                                   "must never be re-masked when reusing features)")
        # the text tokens (positions [0, P)) are visible from the start
        visible = torch.cat([torch.ones(b, P, dtype=torch.bool, device=ids.device), visible], 1)
        keys = self._key_mask(cond, b, n, ids.device)
        new = visible & ~encoded
        context = context_mask = None
        projected = self.config.reuse_mode == "projected"
        if bool(encoded.any()) and (projected or bool(new.any())):
            old_pos = self._positions(encoded)
            context = self.project(gather_positions(features, old_pos))
            context_mask = None if keys is None else keys.gather(1, old_pos)
            if projected:                                  # the cache now holds P(cache)
                features = features.scatter(1, old_pos.unsqueeze(-1).expand(-1, -1, context.shape[-1]),
                                            context.to(features.dtype))
        if bool(new.any()):
            new_pos = self._positions(new)
            prefix = None
            if P and not bool(encoded[:, :P].any()):      # first encode: the prompt's tokens come first
                prefix = self.text_tokens(cond)[0]
            img_pos = new_pos[:, P:] - P if prefix is not None else new_pos - P
            key_mask = None
            if keys is not None:
                parts = ([context_mask] if context is not None and context.shape[1] else []) + [keys.gather(1, new_pos)]
                key_mask = torch.cat(parts, 1)
            feats = self.encode(ids.gather(1, img_pos), img_pos, mod[:, :self.config.encoder_depth], context,
                                key_mask, prefix)
            features = features.scatter(1, new_pos.unsqueeze(-1).expand(-1, -1, feats.shape[-1]),
                                        feats.to(features.dtype))
        return ENATCache(features, visible)

    def forward(self, ids: torch.Tensor, cond: ClassCondition, query: torch.Tensor | None = None,
                cache: ENATCache | None = None) -> torch.Tensor:
        """Training / scoring: logits [B, M, K] at `query` (default: every [MASK] position).
        `cache` trains through the reuse path."""
        if query is None:
            query = self._positions(ids == self.mask_id)
        return self.step(ids, cond, query, cache)[0]

    # -- the model contract (autonat.models.contract) ---------------------------------------
    def decode_step(self, ids, cond, query, cache=None):
        """One step with feature reuse; a model from `without_reuse()` recomputes from scratch."""
        if not self.reuse:
            return self.step(ids, cond, query, None)[0], None
        return self.step(ids, cond, query, cache)

    def training_mask(self, dist, batch: int, generator: torch.Generator, rounding: str = "ceil"
                      ) -> torch.Tensor:
        """One ratio for the whole batch: the reuse path needs equal counts per row."""
        return sample_training_mask(dist, batch, self.seq_len, generator, rounding, per_batch=True)[0]

    def training_loss(self, ids: torch.Tensor, cond: ClassCondition, mask: torch.Tensor,
                      generator: torch.Generator, *, forward=None, teacher: "ENAT | None" = None,
                      label_smoothing: float = 0.1, reuse_prob: float = 0.5,
                      rows: tuple[int, int, int] | None = None) -> LossOutput:
        """ENAT objective. `mask` has the same count per row (`training_mask`). With probability
        `reuse_prob` (one coin per global batch) a previous step is simulated: a random number of
        the visible tokens count as "decoded at this step"; the features of the others ("visible
        at the previous step") are computed by `teacher` (the EMA model) without gradients, and
        the model is trained through the reuse path, encoding only the newly decoded tokens.
        `rows` = (start, stop, global batch): this rank's slice of the global batch whose noise
        `generator` draws (results do not depend on the number of processes)."""
        b, n = ids.shape
        lo, hi, total = rows if rows is not None else (0, b, b)
        mask = mask.to(ids.device)
        query = self._positions(mask)
        coin = float(torch.rand(1, generator=generator))
        frac = float(torch.rand(1, generator=generator))
        noise = torch.rand(total, n, generator=generator)[lo:hi].to(ids.device)
        cache = None
        visible = ~mask
        n_vis = n - query.shape[1]
        if coin < reuse_prob and n_vis > 0:
            newly = max(1, round(frac * n_vis))                 # tokens "decoded at this step"
            score = torch.where(visible, noise, torch.full_like(noise, 2.0))
            rank = score.argsort(dim=1).argsort(dim=1)
            prev_visible = visible & ~(rank < newly)           # a random `newly` of them are new
            with torch.no_grad():
                teacher = teacher if teacher is not None else self
                prev = mask_inputs(ids, ~prev_visible, self.mask_id)
                cache = teacher.extend_cache(prev, cond, None)
                cache = ENATCache(cache.features.float(), cache.encoded)
        logits = (forward or self)(mask_inputs(ids, mask, self.mask_id), cond, query=query, cache=cache)
        return masked_token_loss(logits.flatten(0, 1), ids.gather(1, query).flatten(), label_smoothing)

    def without_reuse(self) -> "ENAT":
        """The same weights, recomputing every step from scratch ('disentangled, no reuse')."""
        import copy
        twin = copy.copy(self)   # shallow: parameters and submodules are shared
        twin.reuse = False
        return twin

    def for_inference(self, bf16: bool) -> "ENAT":
        return bf16_copy(self) if bf16 else self

    def compact(self) -> "ENAT":
        """The class conditioning folded into a per-label table (`fold_class_conditioning`); a
        text model has no labels to fold and is returned as is."""
        return self if self.config.condition == "text" else fold_class_conditioning(self)
