"""Training objectives: masked token modeling (cross-entropy on masked positions only).

`nat_loss` is the U-ViT objective; ENAT's objective with feature reuse is `enat_loss`. Both take
the batch's randomness from an explicit `torch.Generator` (mask positions, ratios, label dropout).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .masking import MaskRatioDistribution, masked_count, random_mask


@dataclass
class LossOutput:
    loss: torch.Tensor          # scalar, mean CE over masked positions
    correct: torch.Tensor       # scalar, # masked positions predicted right (argmax)
    count: torch.Tensor         # scalar, # masked positions


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> LossOutput:
    """logits [S, K] and targets [S] at the masked positions only."""
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    with torch.no_grad():
        correct = (logits.argmax(-1) == targets).sum()
    return LossOutput(loss, correct, torch.tensor(targets.numel()))


def drop_labels(labels: torch.Tensor, null_label: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the null class with probability p (classifier-free guidance training)."""
    drop = torch.rand(labels.shape[0], generator=generator) < p
    return torch.where(drop.to(labels.device), torch.full_like(labels, null_label), labels)


def nat_loss(model, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, *, mask_id: int,
             label_smoothing: float = 0.1) -> LossOutput:
    """Replace the `mask` [B, N] positions by [MASK]; CE on those positions only."""
    mask = mask.to(ids.device)
    inputs = torch.where(mask, torch.full_like(ids, mask_id), ids)
    logits = model(inputs, labels, select=mask)
    return masked_token_loss(logits, ids[mask], label_smoothing)


def batch_mask(dist: MaskRatioDistribution, batch: int, num_tokens: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, int]:
    """One ratio for the whole batch (ENAT: the reuse path needs equal counts per row)."""
    r = dist.sample(1, generator)
    k = int(masked_count(r, num_tokens)[0])
    return random_mask(torch.full((batch,), k), num_tokens, generator), k


def enat_loss(model, ema_model, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
              generator: torch.Generator, *, mask_id: int, label_smoothing: float = 0.1,
              reuse_prob: float = 0.5, rows: tuple[int, int, int] | None = None) -> LossOutput:
    """ENAT objective. `mask` has the same count per row (see `batch_mask`). With probability
    `reuse_prob` (one coin per global batch) a previous step is simulated: an extra random
    fraction of the visible tokens is re-masked, their features are computed by the EMA model
    without gradients, and the model is trained through the reuse path (encoding only the
    tokens visible now but not then). `rows` = (start, stop, global batch): this rank's slice of
    the global batch whose noise `generator` draws (results do not depend on the process count)."""
    from .models.enat import ENATCache
    b, n = ids.shape
    lo, hi, total = rows if rows is not None else (0, b, b)
    mask = mask.to(ids.device)
    inputs = torch.where(mask, torch.full_like(ids, mask_id), ids)
    query = mask.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :int(mask[0].sum())]
    coin = float(torch.rand(1, generator=generator))
    frac = float(torch.rand(1, generator=generator))
    noise = torch.rand(total, n, generator=generator)[lo:hi].to(ids.device)
    cache = None
    n_vis = n - int(mask[0].sum())
    if coin < reuse_prob and n_vis > 0:
        extra = max(1, round(frac * n_vis))         # tokens "decoded at this step"
        visible = ~mask
        score = torch.where(visible, noise, torch.full_like(noise, 2.0))
        rank = score.argsort(dim=1).argsort(dim=1)
        newly = rank < extra                        # random `extra` visible tokens per row
        prev_visible = visible & ~newly
        with torch.no_grad():
            mod, _ = ema_model.modulations(labels)
            features = torch.zeros(b, n, ema_model.config.dim, device=ids.device)
            if bool(prev_visible.any()):
                pos = ema_model._positions(prev_visible)
                f = ema_model.encode(ids.gather(1, pos), pos, mod).float()
                features = features.scatter(1, pos.unsqueeze(-1).expand(-1, -1, f.shape[-1]), f)
        cache = ENATCache(features, prev_visible)
    logits = model(inputs, labels, query=query, cache=cache)
    return masked_token_loss(logits.flatten(0, 1), ids.gather(1, query).flatten(), label_smoothing)
