"""Benchmarks run from the CLI (`autonat bench ...`): the machine's matmul peak on
transformer-shaped matmuls, and a model's sampling throughput, latency and achieved FLOP/s, so
efficiency ratios can be taken within one run (machines are noisy; compare ratios, not absolutes).
"""
from __future__ import annotations

import time

import torch

from .bundle import Bundle
from .models.registry import inference_chunk
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
def sampling_speed(bundle: Bundle, strategy: Strategy, batch: int, bf16: bool = True, repeats: int = 3,
                   warmup: int = 1, reuse: bool = True) -> dict:
    """Images/s and seconds per batch of `sample` (token decoding only, no VQ decoding), plus
    achieved FLOP/s (counted FLOPs of one batch / median time)."""
    device = bundle.device
    cond = bundle.conditioner.for_evaluation(batch, 0)
    noise = IndexedNoise(0, tuple(range(batch)))
    net = bundle.inference_model(bf16, reuse)

    def run():
        sample(net, strategy, cond, noise, chunk=inference_chunk(device))

    flops = count_flops(run, (net,))
    t = time_call(run, repeats=repeats, warmup=warmup)
    return {"batch": batch, "steps": strategy.steps, "seconds_per_batch": round(t["median_s"], 5),
            "images_per_second": round(batch / t["median_s"], 2), "latency_ms": round(1000 * t["median_s"], 2),
            "flops_per_batch": flops, "achieved_flops_per_s": flops / t["median_s"], "bf16": bf16}


def bench_sampling(model_name: str, strategy: str, steps: list[int], batches: list[int], repeats: int = 5,
                   reuse: bool = True, bf16: bool = True, device: str = "auto", log=None) -> dict:
    """`autonat bench sampling`: the bf16 (or fp32) matmul peak of this machine, then images/s,
    latency and achieved FLOP/s of `model_name` for every (T, batch), as fractions of that peak
    measured in the same run."""
    from .io import AutonatError
    if repeats < 1 or any(b < 1 for b in batches) or any(t < 1 for t in steps):
        raise AutonatError("--repeats, --batch and --steps must all be >= 1")
    bundle = Bundle.load(model_name, device=device)
    peak = matmul_peak(bundle.model.config.dim, 50 * 256, "bf16" if bf16 else "fp32")
    rows = []
    for T in steps:
        st = bundle.strategy(strategy, T)
        for bsz in batches:
            r = sampling_speed(bundle, st, bsz, bf16, repeats=repeats, reuse=reuse)
            r["fraction_of_peak"] = round(r["achieved_flops_per_s"] / peak["peak_flops_per_s"], 4)
            r["model"] = model_name
            rows.append(r)
            if log:
                log(f"T={T} batch={bsz}: {r['images_per_second']} img/s, {r['latency_ms']} ms/batch, "
                    f"{r['achieved_flops_per_s'] / 1e9:.0f} GFLOP/s = {100 * r['fraction_of_peak']:.1f}% of peak")
    return {"peak": peak, "results": rows}
