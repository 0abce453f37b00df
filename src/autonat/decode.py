"""The one batched decode driver: conditions -> the pure sampler (in batches, model calls in
chunks) -> tokenizer.decode -> images. The pipeline, evaluation (and through it the search), the
demo and the benches all decode through `decode_images`, so batching, progress, precision and
trace handling exist once.

    decode_images(net, tokenizer, strategy, cond, noise, batch_size=256, bf16=True, trace=False)
        -> Decoded(ids [n, N], images uint8 [n, C, H, W], masked_counts, trace)

`net` is the model to sample with, as returned by `model.for_inference(bf16)` (callers that sample
repeatedly keep that copy). `noise` covers all n rows: a `torch.Generator` (drawn in call order, so
the batch size matters) or an `IndexedNoise` (sample i's numbers depend only on (seed, i), so
they do not).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .conditioning import Condition
from .data import to_uint8
from .jobs import autocast, progress
from .models.registry import inference_chunk
from .sampling import IndexedNoise, Noise, sample
from .strategy import Strategy


@dataclass
class Decoded:
    ids: torch.Tensor                     # [n, N] token ids (CPU)
    images: torch.Tensor                  # [n, C, H, W] uint8 (CPU)
    masked_counts: list[int]              # N, then the masked count after each step, ..., 0
    trace: list[dict] = field(default_factory=list)   # per step, rows of every batch concatenated


def model_device(net) -> torch.device:
    return next(iter(net.parameters())).device


@torch.inference_mode()
def decode_images(net, tokenizer, strategy: Strategy, cond: Condition, noise: Noise, *,
                  batch_size: int = 256, bf16: bool = True, trace: bool = False,
                  show_progress: bool = False) -> Decoded:
    """Sample len(cond) images in batches of `batch_size` and decode them (see module docstring)."""
    device = model_device(net)
    n = len(cond)
    batches = range(0, n, batch_size)
    bar = progress(total=len(batches) * strategy.steps, desc=f"sampling {n} images (decoding steps)",
                   disable=not show_progress)
    ids, images, traces, counts = [], [], [], strategy.masked_counts(net.seq_len)
    try:
        for lo in batches:
            hi = min(lo + batch_size, n)
            nz = noise.rows(lo, hi) if isinstance(noise, IndexedNoise) else noise
            out = sample(net, strategy, cond.rows(lo, hi), nz, trace=trace, chunk=inference_chunk(device),
                         on_step=lambda t: bar.update(1))
            with autocast(device, bf16):
                imgs = tokenizer.decode(out.ids)
            ids.append(out.ids.cpu())
            images.append(to_uint8(imgs.float().cpu()))
            traces.append(out.trace)
    finally:
        bar.close()
    steps = [{k: torch.cat([t[i][k] for t in traces]) for k in traces[0][i]} for i in range(strategy.steps)] \
        if trace and traces else []
    empty = torch.empty(0, dtype=torch.long)
    return Decoded(torch.cat(ids) if ids else empty, torch.cat(images) if images else torch.empty(0, dtype=torch.uint8),
                   counts, steps)
