"""A noise mode that draws the way diffusers' `AmusedScheduler` does, so that autonat's sampler
with the `amused` preset gives the pipeline's tokens for the same `torch.Generator`.

Per step the scheduler draws (i) a token at *every* position with `torch.multinomial(probs, 1)`,
which for one sample is the exponential race argmax(p / q), q ~ Exp(1) of shape [B*N, K]
(checked: same tokens, same generator state afterwards), then (ii) before the last step, Gumbel
noise -log(-log(u)) from u ~ U(0, 1) of shape [B, N] for re-masking, scaled by the step's
temperature; its confidence is log(max(p[x], 1e-20)). `AmusedNoise` draws the same numbers in
the same order from the same generator and hands the sampler tokens, confidences and Gumbel
noise at the masked positions (the sampler's hooks `draw_tokens` / `gumbel`).
"""
from __future__ import annotations

import torch

from ..models.layers import gather_positions


class AmusedNoise:
    """Wraps a `torch.Generator`; see module docstring. Not common random numbers: the draws of a
    sample depend on the batch it is in, as in the pipeline."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def draw_tokens(self, logits: torch.Tensor, temperature: float, query: torch.Tensor, num_tokens: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens [B, M], confidence [B, M]) at the masked positions `query` from logits [B, M, K]."""
        b, _, k = logits.shape
        lg = logits.float() if temperature == 1 else logits.float() / temperature
        probs = lg.softmax(dim=-1)
        q = torch.empty(b, num_tokens, k, device=self.generator.device).exponential_(generator=self.generator)
        x = (probs / gather_positions(q.to(probs.device), query)).argmax(-1)
        conf = torch.log(probs.gather(-1, x.unsqueeze(-1)).squeeze(-1).clamp(1e-20))
        return x, conf

    def gumbel(self, batch: int, num_tokens: int) -> torch.Tensor:
        """Gumbel noise [B, N] (every position, as the scheduler draws it)."""
        u = torch.zeros(batch, num_tokens, device=self.generator.device).uniform_(0, 1, generator=self.generator)
        return -torch.log((-torch.log(u.clamp(1e-20))).clamp(1e-20))

    def rows(self, lo: int, hi: int) -> "AmusedNoise":
        return self
