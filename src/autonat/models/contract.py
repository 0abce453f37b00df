"""The contract every NAT model fulfils, so that nothing outside `autonat.models` branches on the
architecture: the trainer, the sampler, the pipeline, the CLI and the demo only call these.

    model.decode_step(ids, cond, query, cache) -> (logits [B, M, K], cache)
        One decoding step: logits at the [MASK] positions `query` [B, M] of the canvas `ids`
        [B, N] ([MASK] = `mask_id`) under the condition `cond` (an `autonat.conditioning`
        Condition of B rows; `cond.null()` = unconditional). A model refuses a kind of condition
        it was not trained on. `cache` is whatever the previous step returned (None at the first
        step); a stateless model returns None. A cache holds one row per sequence and supports
        the three operations of `DecodeCache` so the sampler can batch guidance passes and chunk
        model calls.
    model.training_mask(dist, batch, generator, rounding) -> bool mask [B, N]
        The masks a training batch uses (a model may need equal counts per row).
    model.training_loss(ids, cond, mask, generator, *, forward, teacher, label_smoothing,
                        reuse_prob, rows) -> LossOutput
        Masked-token cross-entropy on the masked positions only. `forward` is the callable that
        runs this model with gradients (the model itself, or its DistributedDataParallel
        wrapper); `teacher` is a frozen copy (the EMA) for objectives that need one; `rows` =
        (start, stop, global batch) of this rank's slice. Every model takes every argument and
        ignores what does not apply to it.
    model.trains_all_parameters: bool  (False if some steps leave parameters without gradient;
        DDP then looks for unused parameters)
    model.without_reuse() -> model that recomputes every step from scratch (itself if stateless)
    model.for_inference(bf16) -> a new eval-mode model to sample with (a bf16 copy, or itself)
    model.compact() -> the same function in its smallest stored form (what is shipped)

`masked_positions` and `masked_token_loss` are the shared pieces of that contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from ..conditioning import Condition
from ..masking import MaskRatioDistribution


@runtime_checkable
class DecodeCache(Protocol):
    """A model's per-sequence state between decoding steps."""

    def rows(self, lo: int, hi: int) -> "DecodeCache":
        """The cache of sequences lo:hi."""

    @classmethod
    def cat(cls, parts: list["DecodeCache"]) -> "DecodeCache":
        """The caches of several row blocks, stacked in order."""

    def same_state(self, other: "DecodeCache") -> bool:
        """True if both caches describe the same canvas state (so their passes can be batched)."""


@runtime_checkable
class NATModel(Protocol):
    """What the sampler, trainer, pipeline and CLI may use of a model (see module docstring)."""
    arch: str
    trains_all_parameters: bool
    seq_len: int
    codebook_size: int
    mask_id: int

    def decode_step(self, ids: torch.Tensor, cond: Condition, query: torch.Tensor,
                    cache: Any) -> tuple[torch.Tensor, Any]: ...

    def training_mask(self, dist: MaskRatioDistribution, batch: int, generator: torch.Generator,
                      rounding: str = "ceil") -> torch.Tensor: ...

    def training_loss(self, ids: torch.Tensor, cond: Condition, mask: torch.Tensor,
                      generator: torch.Generator, **kwargs: Any) -> "LossOutput": ...

    def without_reuse(self) -> "NATModel": ...

    def for_inference(self, bf16: bool) -> "NATModel": ...

    def compact(self) -> "NATModel": ...


# ----------------------------------------------------------------------------------------------
# Cache helpers for callers that hold an optional cache (None = stateless model / first step)
# ----------------------------------------------------------------------------------------------

def cache_rows(cache: DecodeCache | None, lo: int, hi: int) -> DecodeCache | None:
    return None if cache is None else cache.rows(lo, hi)


def cache_cat(parts: list[DecodeCache | None]) -> DecodeCache | None:
    if any(p is None for p in parts):
        return None
    return type(parts[0]).cat(parts)


def caches_aligned(a: DecodeCache | None, b: DecodeCache | None) -> bool:
    """Whether the conditional and unconditional passes can run as one batch."""
    if a is None or b is None:
        return a is None and b is None
    return a.same_state(b)


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------

def masked_positions(mask: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """Positions [B, M] of the True entries of `mask` [B, N], ascending; M = `count` or the
    (equal) number of True entries per row."""
    m = int(mask[0].sum()) if count is None else count
    return mask.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :m]


@dataclass
class LossOutput:
    loss: torch.Tensor          # scalar, mean CE over masked positions
    correct: torch.Tensor       # scalar, # masked positions predicted right (argmax)
    count: torch.Tensor         # scalar, # masked positions


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> LossOutput:
    """Cross-entropy of logits [S, K] against targets [S], both at the masked positions only."""
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    with torch.no_grad():
        correct = (logits.argmax(-1) == targets).sum()
    return LossOutput(loss, correct, torch.tensor(targets.numel()))


def mask_inputs(ids: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The canvas a model sees in training: `ids` with the `mask` positions set to [MASK]."""
    return torch.where(mask, torch.full_like(ids, mask_id), ids)


def bf16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode, gradient-free bf16 copy of `model` (attributes such as `meta` and `identity`
    are copied along). A whole-bf16 model beats autocast for inference on CPU: autocast keeps
    LayerNorm and residuals in fp32 and pays a cast (memory-bound) at every matmul."""
    import copy
    return copy.deepcopy(model).to(torch.bfloat16).eval().requires_grad_(False)
