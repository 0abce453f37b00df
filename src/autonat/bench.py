"""Benchmarks run from the CLI (`autonat bench ...`): the machine's matmul peak on
transformer-shaped matmuls, and a model's sampling throughput, latency and achieved FLOP/s, so
efficiency ratios can be taken within one run (machines are noisy; compare ratios, not absolutes).
"""
from __future__ import annotations

import time

import torch

from .models.registry import for_inference, inference_chunk
from .metrics.cost import count_flops, time_call
from .sampling import IndexedNoise, sample
from .strategy import Strategy


def matmul_peak(dim: int = 256, tokens: int = 50 * 256, dtype: str = "bf16", seconds: float = 2.0) -> dict:
    """Best FLOP/s of [tokens, dim] x [dim, 4 dim] and [tokens, 4 dim] x [4 dim, dim] matmuls (the
    MLP shapes of a width-`dim` transformer over a batch of sequences), in `dtype`."""
    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    best = 0.0
    shapes = [(tokens, dim, 4 * dim), (tokens, 4 * dim, dim), (tokens, dim, 3 * dim)]
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
        for _ in range(3):
            a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / len(shapes):
            a @ b
            reps += 1
        rate = 2 * m * k * n * reps / (time.perf_counter() - t0)
        best = max(best, rate)
    return {"dtype": dtype, "dim": dim, "tokens": tokens, "peak_flops_per_s": best,
            "peak_tflops": round(best / 1e12, 3), "threads": torch.get_num_threads()}


@torch.inference_mode()
def sampling_speed(model, strategy: Strategy, batch: int, bf16: bool = True, repeats: int = 3,
                   warmup: int = 1) -> dict:
    """Images/s and seconds per batch of `sample` (token decoding only, no VQ decoding), plus
    achieved FLOP/s (counted FLOPs of one batch / median time)."""
    device = next(model.parameters()).device
    labels = (torch.arange(batch) % model.null_label).to(device)
    noise = IndexedNoise(0, tuple(range(batch)))
    net = for_inference(model, bf16)

    def run():
        sample(net, strategy, labels, noise, chunk=inference_chunk(device))

    flops = count_flops(run, (model,))
    t = time_call(run, repeats=repeats, warmup=warmup)
    return {"batch": batch, "steps": strategy.steps, "seconds_per_batch": round(t["median_s"], 5),
            "images_per_second": round(batch / t["median_s"], 2), "latency_ms": round(1000 * t["median_s"], 2),
            "flops_per_batch": flops, "achieved_flops_per_s": flops / t["median_s"], "bf16": bf16}
