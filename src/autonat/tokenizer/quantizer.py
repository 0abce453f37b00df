"""Vector quantizer with an EMA (online k-means) codebook on the unit sphere and dead-code restarts.

Why this design: a learned codebook trained by gradients alone tends to collapse to a few codes on
small data. Here (as in ViT-VQGAN / improved VQGAN) lookups are by cosine similarity in a
low-dimensional space (`dim`, e.g. 16): encoder outputs and codes are l2-normalised, which keeps
distances well scaled. The codebook is not trained by gradients; it is an exponential moving
average of the (normalised) encoder vectors assigned to each code, and a code whose EMA usage
falls below `dead_threshold` times the mean usage per code is restarted at a random encoder
vector of the current batch (the first batch restarts every code: a data-dependent init).
The encoder is pulled towards its code by the commitment loss beta * ||z - sg(q)||^2 and gets
gradients from the decoder through the straight-through estimator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor      # [B, D, h, w], straight-through (gradients flow to z)
    indices: torch.Tensor        # [B, h, w] int64
    commit_loss: torch.Tensor    # scalar
    perplexity: torch.Tensor     # scalar, exp(entropy of code usage in this batch)
    usage: torch.Tensor          # scalar, fraction of codes used in this batch


class VectorQuantizer(nn.Module):
    """Cosine-similarity VQ with EMA codebook updates and dead-code restarts."""

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, decay: float = 0.99,
                 dead_threshold: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.num_codes, self.dim, self.beta, self.decay = num_codes, dim, beta, decay
        self.dead_threshold, self.eps = dead_threshold, eps
        init = F.normalize(torch.randn(num_codes, dim), dim=1)
        self.register_buffer("codebook", init)
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_sum", init.clone())

    # -- lookup ---------------------------------------------------------------------------
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Code index of each row of `flat` ([M, D], already normalised): max cosine similarity."""
        return (flat @ self.codebook.t()).argmax(dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [B, h, w] -> code vectors [B, D, h, w]."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    # -- forward --------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z.shape
        z = F.normalize(z.float(), dim=1)
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        with torch.no_grad():
            idx = self.nearest(flat)
        onehot_counts = torch.bincount(idx, minlength=self.num_codes).float()
        if self.training:
            self._ema_update(flat.detach(), idx, onehot_counts)
        q = F.embedding(idx, self.codebook).view(b, h, w, d).permute(0, 3, 1, 2)
        commit = self.beta * F.mse_loss(z, q.detach())
        quantized = z + (q - z).detach()
        probs = onehot_counts / onehot_counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        usage = (onehot_counts > 0).float().mean()
        return QuantizerOutput(quantized, idx.view(b, h, w), commit, perplexity, usage)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.codebook.copy_(F.normalize(self.ema_sum, dim=1))
        # Restart dead codes at random encoder outputs of this batch (same draw on every rank:
        # the candidates are broadcast from rank 0 so codebooks stay identical under DDP).
        mean_count = float(counts.sum()) / self.num_codes
        dead = self.ema_count < self.dead_threshold * mean_count
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
            fresh = flat[pick]
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.broadcast(fresh, 0)
            self.codebook[dead] = fresh
            self.ema_sum[dead] = fresh * mean_count
            self.ema_count[dead] = mean_count
