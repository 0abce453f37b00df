"""Sample the diffusion baseline and score it with autonat's own FID code (comparable with every
NAT number: `fid_fmnist`, 10k class-balanced samples vs the 60k training images by default).

    python bench/diffusion/evaluate.py --model runs/diffusion/unet-lr1e-3/model \
        --scheduler dpmpp2m --steps 20 --guidance 2 --n 10000 --seed 0 \
        --out runs/frontier/diffusion-dpmpp2m.jsonl
    python bench/diffusion/evaluate.py --smoke --model runs/diffusion/smoke-a/model --out /tmp/x.jsonl

One JSON line per evaluated point is appended (a single write) to --out; it carries the keys
`autonat plot frontier` reads (fid, flops_per_image, steps) and the file's stem is the plotted
series, so keep one scheduler (and one guidance) per file. Several --steps / --guidance values
evaluate the grid of them, one line each.

Measured per point: FID (+ IS) at n / seed; FLOPs of sampling ONE image, counted with
FlopCounterMode over the whole solver loop (both guidance passes; autonat's count_flops, which
adds the CPU attention kernel to torch's table); images/s at batch 256 (median of
--speed-repeats runs, sampling only) and batch-1 latency (median of --latency-repeats runs);
sample_seconds = wall-clock of generating the n images. Labels are
`autonat.evaluation.class_balanced_labels(n, 10, seed)`, the same as the NAT evaluations.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_runtime_args, NUM_CLASSES, ThreadGuard, append_jsonl, count_parameters, load_model_dir  # noqa: E402
from sampling import SCHEDULERS, generate, inference_model, initial_noise, sample  # noqa: E402


def sampling_flops(model, cfg, scheduler: str, steps: int, w: float) -> int:
    """FLOPs of sampling one image (label 0, fp32 model; FLOPs do not depend on the dtype)."""
    from autonat.metrics.cost import count_flops
    lab, x = torch.tensor([0]), initial_noise(0, [0], cfg.model.sample_size)
    return count_flops(lambda: sample(model, cfg, scheduler, steps, w, lab, x, "fp32"), (model,))


def timed(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(net, cfg, scheduler: str, steps: int, w: float, precision: str, repeats_b256: int,
          repeats_b1: int, guard: ThreadGuard | None = None) -> dict:
    """images/s at batch 256 and batch-1 latency, sampling only (no decoding/scoring needed).
    With a guard, the thread count is re-chosen first and recorded with others' CPU use."""
    res = {}
    if guard is not None and (repeats_b256 or repeats_b1):
        guard.check()
        time.sleep(2.0)                           # measure what others use right now
        res["speed_threads"] = guard.check()
        res["speed_others_cpu"] = round(guard.others_cpu, 3)
    if repeats_b256 > 0:
        lab = torch.arange(256) % NUM_CLASSES
        x = initial_noise(1, range(256), cfg.model.sample_size)
        sec = timed(lambda: sample(net, cfg, scheduler, steps, w, lab, x, precision), repeats_b256)
        res["images_per_second_b256"] = round(256 / sec, 2)
    if repeats_b1 > 0:
        lab, x = torch.tensor([3]), initial_noise(1, [0], cfg.model.sample_size)
        sec = timed(lambda: sample(net, cfg, scheduler, steps, w, lab, x, precision), repeats_b1, 2)
        res["latency_ms_b1"] = round(1000 * sec, 2)
    return res


def evaluate_point(model, net, cfg, meta: dict, a, scheduler: str, steps: int, w: float,
                   extractor, ref, guard: ThreadGuard) -> dict:
    from autonat.evaluation import EvalConfig, class_balanced_labels, score
    from autonat.metrics.reference import extract
    labels = class_balanced_labels(a.n, NUM_CLASSES, a.seed)
    threads, others = [], []

    def before_batch():
        threads.append(guard.check())
        others.append(guard.others_cpu)
    guard.check()
    t0 = time.perf_counter()
    images = generate(net, cfg, scheduler, steps, w, labels, a.seed, batch_size=a.batch_size,
                      precision=a.precision, show_progress=not a.quiet, before_batch=before_batch)
    sample_seconds = time.perf_counter() - t0
    if a.grid:
        g = Path(a.grid)
        if len(a.steps) * len(a.guidance) > 1:          # one PNG per point
            g = g.with_name(f"{g.stem}_T{steps}_w{w:g}{g.suffix}")
        save_grid(images, labels, str(g))
    feats, probs = extract(extractor, images)
    res = score(feats, probs, ref, extractor.metric_name,
                EvalConfig(n=a.n, seed=a.seed, precision_recall=False))
    flops = sampling_flops(model, cfg, scheduler, steps, w)
    res.update({"series": f"diffusion-{scheduler}", "scheduler": scheduler, "steps": steps,
                "guidance": w, "guidance_autonat_s": w - 1, "n": a.n, "seed": a.seed,
                "flops_per_image": flops, "gflops_per_image": round(flops / 1e9, 4),
                "forwards_per_image": steps * (1 if w in (0.0, 1.0) else 2),
                "sample_seconds": round(sample_seconds, 2),
                "images_per_second": round(a.n / sample_seconds, 2),
                "precision": a.precision, "batch_size": a.batch_size,
                "model": str(a.model), "parameters": count_parameters(model),
                "train_images_seen": meta.get("images_seen"), "lr": cfg.lr,
                "loadavg_1m": round(os.getloadavg()[0], 2), "sample_threads": threads,
                "sample_others_cpu": round(sum(others[1:]) / max(1, len(others) - 1), 3),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    res.update(speed(net, cfg, scheduler, steps, w, a.precision, a.speed_repeats, a.latency_repeats,
                     guard))
    return res


def save_grid(images: torch.Tensor, labels: torch.Tensor, path: str, per_class: int = 10) -> None:
    """A PNG with one column per label 0..max(labels) (the first `per_class` samples of each),
    2x upscaled."""
    from PIL import Image
    cols = [[i for i in range(len(labels)) if int(labels[i]) == c][:per_class] for c in range(int(labels.max()) + 1)]
    rows = max(len(c) for c in cols)
    h, w, pad = images.shape[-2] * 2, images.shape[-1] * 2, 2
    grid = Image.new("L", (len(cols) * (w + pad) + pad, rows * (h + pad) + pad), color=255)
    for c, idx in enumerate(cols):
        for r, i in enumerate(idx):
            im = Image.fromarray(images[i, 0].numpy(), mode="L").resize((w, h), Image.NEAREST)
            grid.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp.png")
    grid.save(tmp)
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="a train.py OUT/model directory")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="dpmpp2m")
    p.add_argument("--steps", type=int, nargs="+", default=[20])
    p.add_argument("--guidance", type=float, nargs="+", default=[2.0],
                   help="w in eps_u + w (eps_c - eps_u); 1 = no guidance")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--precision", choices=["bf16", "autocast", "fp32"], default="bf16")
    p.add_argument("--speed-repeats", type=int, default=3, help="batch-256 runs (0 = skip)")
    p.add_argument("--latency-repeats", type=int, default=10, help="batch-1 runs (0 = skip)")
    p.add_argument("--grid", default=None, help="also save a 10x10 PNG of the samples")
    p.add_argument("--out", required=True, type=Path, help="JSONL file to append to")
    p.add_argument("--speed-only", action="store_true",
                   help="only FLOPs, batch-256 img/s and batch-1 latency (no FID); JSON lines without fid")
    p.add_argument("--smoke", action="store_true", help="n = 20, 3 steps, one speed run")
    add_runtime_args(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse_args(argv)
    if a.smoke:
        a.n, a.steps, a.speed_repeats, a.latency_repeats = 20, [3], 1, 2
    from autonat.metrics.reference import load_extractor, reference_features
    guard = ThreadGuard(a.threads)
    model, cfg, meta = load_model_dir(a.model)
    net = inference_model(model, a.precision)
    if not a.speed_only:
        extractor = load_extractor("fmnist")
        ref = reference_features(extractor, "fashion-mnist", "train", show_progress=not a.quiet)
    for steps in a.steps:
        for w in a.guidance:
            if a.speed_only:
                flops = sampling_flops(model, cfg, a.scheduler, steps, w)
                res = {"what": "speed", "scheduler": a.scheduler, "steps": steps, "guidance": w,
                       "precision": a.precision, "gflops_per_image": round(flops / 1e9, 4),
                       "model": str(a.model), "loadavg_1m": round(os.getloadavg()[0], 2),
                       **speed(net, cfg, a.scheduler, steps, w, a.precision, a.speed_repeats,
                               a.latency_repeats, guard)}
                append_jsonl(a.out, res)
                print(json.dumps(res), flush=True)
                continue
            res = evaluate_point(model, net, cfg, meta, a, a.scheduler, steps, w, extractor, ref,
                                 guard)
            append_jsonl(a.out, res)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
