"""Inference cost: forward FLOPs (counted, not estimated) and wall-clock latency / throughput.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` while actually decoding one
image, so they include exactly what runs: both guidance passes where s(t) > 0, only the newly
decoded tokens in ENAT's encoder with reuse, etc. Numbers are FLOPs (a multiply-add = 2 FLOPs),
not MACs. Only matmuls, convolutions and attention are counted (elementwise ops are not), as
is standard. CPU attention (`_scaled_dot_product_flash_attention_for_cpu`) is not in torch's
table, so its formula (the same as for the CUDA kernels) is added here.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ..conditioning import Condition
from ..sampling import IndexedNoise, sample
from ..strategy import Strategy

aten = torch.ops.aten


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CUSTOM_FLOPS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def count_flops(fn: Callable[[], object], modules: tuple = ()) -> int:
    """Total FLOPs of the ops `fn()` runs. Parameters of `modules` are frozen meanwhile
    (FlopCounterMode's module tracker cannot hook trainable parameters under inference_mode)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
            fn()
    finally:
        for p in params:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def sampling_flops(model, strategy: Strategy, cond: Condition) -> int:
    """Forward FLOPs of decoding one image under the one-row condition `cond` with `strategy` (all
    T steps, both guidance passes; pass `model.without_reuse()` to count a model that recomputes
    every step)."""
    if len(cond) != 1:
        raise ValueError(f"sampling_flops counts one image; got {len(cond)} conditions")
    return count_flops(lambda: sample(model, strategy, cond, IndexedNoise(0, (0,))), (model,))


def function_evaluations(strategy: Strategy) -> int:
    """Network passes per image (NFE): one per step, two where the guidance pass runs (s(t) != 0,
    or every step for a strategy that says `always_uncond`). Comparable with a diffusion solver's
    NFE (steps x 2 under classifier-free guidance) and an AR model's (tokens x 2)."""
    return sum(1 + (s != 0 or strategy.always_uncond) for s in strategy.s)


def decode_flops(tokenizer) -> int:
    """FLOPs of the tokenizer decoder for one image (reported separately from the NAT's)."""
    g = tokenizer.config.grid_size
    ids = torch.zeros(1, g, g, dtype=torch.long, device=tokenizer.codebook_device)
    return count_flops(lambda: tokenizer.decode(ids), (tokenizer,))


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 2) -> dict:
    """Median / min wall-clock seconds of `fn()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}
