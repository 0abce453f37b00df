"""Prompts -> `TextCondition`: what `ClassConditioner` is for class labels, for text.

    conditioner.parse(spec, n)        prompts from one prompt or a list, repeated round-robin to n
    conditioner.condition(prompts)    their TextCondition (encoded once each; an in-memory cache
                                      keeps the states of prompts seen before, since a search
                                      encodes the same evaluation prompts at every evaluation)
    conditioner.for_evaluation(n, s)  the MS-COCO protocol: n prompts drawn from the held-out
                                      captions in a seeded order; prompt i depends only on
                                      (captions, n, seed, i) - the basis of common random numbers

The null condition (classifier-free guidance's unconditional pass, training's condition dropout)
is the encoding of the empty prompt, as in U-ViT and Muse.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch

from ..conditioning import TextCondition
from ..io import AutonatError
from .encoders import TextEncoder


class TextConditioner:
    """Text conditioning through `encoder`; `eval_prompts` are the held-out captions evaluations
    draw from."""
    kind = TextCondition

    def __init__(self, encoder: TextEncoder, eval_prompts: Sequence[str] = (), cache_size: int = 65536):
        self.encoder = encoder
        self.eval_prompts = tuple(eval_prompts)
        self.eval_source = None
        self._cache: dict[str, tuple[torch.Tensor, ...]] = {}
        self._cache_size = cache_size
        # an encoder with a pooled embedding (`encode_pooled`, e.g. aMUSEd's CLIP) gives it too
        self._pooled = hasattr(encoder, "encode_pooled")
        null = self._encode([""])
        self.null_states, self.null_mask = null[0][0], null[1][0]
        self.null_pooled = null[2][0] if self._pooled else None

    def _encode(self, prompts: list[str]) -> tuple:
        return self.encoder.encode_pooled(prompts) if self._pooled else self.encoder.encode(prompts)

    def with_eval_prompts(self, prompts: Sequence[str], source=None) -> "TextConditioner":
        """The same conditioner (encoder, cache, null) drawing evaluations from `prompts`."""
        c = copy.copy(self)
        c.eval_prompts, c.eval_source = tuple(prompts), source
        return c

    def parse(self, spec: str | Sequence[str] | None, n: int | None = None) -> list[str]:
        """Prompts from one prompt or a list (`n`: repeated round-robin to n entries)."""
        if spec is None:
            raise AutonatError("a text-conditional model needs a prompt (--prompt TEXT or --prompts FILE)")
        items = [spec] if isinstance(spec, str) else list(spec)
        bad = [p for p in items if not isinstance(p, str)]
        if bad:
            raise AutonatError(f"prompts must be text, got {bad[0]!r}")
        if not items:
            raise AutonatError("no prompts given")
        return items if n is None else [items[i % len(items)] for i in range(n)]

    def condition(self, prompts: Sequence[str]) -> TextCondition:
        """The prompts' TextCondition (each distinct prompt encoded once; too long: refused)."""
        prompts = list(prompts)
        if not prompts:
            raise AutonatError("no prompts given")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            out = self._encode(missing)
            if len(self._cache) + len(missing) > self._cache_size:
                self._cache.clear()
            self._cache.update({p: tuple(x[i] for x in out) for i, p in enumerate(missing)})
        states = torch.stack([self._cache[p][0] for p in prompts])
        mask = torch.stack([self._cache[p][1] for p in prompts])
        pooled = torch.stack([self._cache[p][2] for p in prompts]) if self._pooled else None
        return TextCondition(states, mask, self.null_states, self.null_mask, tuple(prompts), pooled,
                             self.null_pooled)

    def for_evaluation(self, n: int, seed: int) -> TextCondition:
        """n held-out captions in a seeded order (each caption once before any repeats)."""
        if not self.eval_prompts:
            raise AutonatError("evaluating a text-conditional model needs held-out captions "
                               "(--prompts FILE, or a captioned folder's test split)")
        m = len(self.eval_prompts)
        order = torch.randperm(m, generator=torch.Generator().manual_seed(seed))
        return self.condition([self.eval_prompts[int(order[i % m])] for i in range(n)])
