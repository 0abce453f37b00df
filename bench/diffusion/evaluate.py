"""Sample the pixel-space diffusion peer and score it with autonat's own FID code (comparable with
every NAT number: `fid_fmnist`, 10k class-balanced samples vs the 60k training images by default).

    python bench/diffusion/evaluate.py --model runs/diffusion/unet-v-lr1e-3/model \
        --scheduler dpmpp2m --steps 20 --guidance 2 --n 10000 --seed 0 \
        --out runs/frontier/diffusion-dpmpp2m.jsonl
    python bench/diffusion/evaluate.py --smoke --model runs/diffusion/smoke/model --out /tmp/x.jsonl

One JSON line per evaluated point is appended to --out; it carries the keys `autonat plot
frontier` reads (fid, flops_per_image, steps) and the file's stem is the plotted series, so keep
one scheduler (and one guidance) per file. Several --steps / --guidance values evaluate the grid.

Measured per point: FID (+ IS) at n / seed; FLOPs of sampling ONE image (FlopCounterMode over the
whole solver loop, both guidance passes); images/s at batch 256 and batch-1 latency (median of
repeats, sampling only); sample_seconds = wall-clock of generating the n images;
seconds_per_image = the batch-256 speed run's time per image when there is one (else the FID run's).
For the NATs' engineering (32-row model calls, guidance pair included) pass --chunk 16
(and --batch-size 16 for the FID run). The labels are
those of every NAT evaluation (`ClassConditioner.for_evaluation(n, seed)`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threads import ThreadGuard, add_runtime_args  # noqa: E402

from autonat.baselines.pixel_diffusion import (SCHEDULERS, generate, inference_copy, initial_noise,  # noqa: E402
                                               load_unet, passes_per_step, sample)
from autonat.conditioning import ClassConditioner  # noqa: E402
from autonat.jobs import JsonlLog  # noqa: E402
from autonat.metrics.cost import count_flops, time_call  # noqa: E402
from autonat.models.registry import count_parameters  # noqa: E402


def sampling_flops(model, schedule, scheduler: str, steps: int, w: float) -> int:
    """FLOPs of sampling one image (label 0, fp32 model; FLOPs do not depend on the dtype)."""
    lab, x = torch.tensor([0]), initial_noise(0, [0], model.config.sample_size)
    null = model.config.num_class_embeds - 1
    return count_flops(lambda: sample(model, schedule, scheduler, steps, w, lab, x, null), (model,))


def speed(net, schedule, scheduler: str, steps: int, w: float, autocast: bool, repeats_b256: int,
          repeats_b1: int, guard: ThreadGuard | None = None, chunk: int = 256) -> dict:
    """images/s at batch 256 and batch-1 latency, sampling only; with a guard, the thread count is
    re-chosen first and recorded with the other processes' CPU use. The 256 images are sampled in
    calls of `chunk` images (256 = one call: 512-row forwards with guidance; the NATs' model calls
    run 32 rows, guidance pair included, i.e. chunk 16 here)."""
    res = {"speed_chunk": chunk}
    null, size = net.config.num_class_embeds - 1, net.config.sample_size
    if guard is not None and (repeats_b256 or repeats_b1):
        guard.check()
        time.sleep(2.0)                           # measure what others use right now
        res["speed_threads"] = guard.check()
        res["speed_others_cpu"] = round(guard.others_cpu, 3)
    if repeats_b256 > 0:
        lab, x = torch.arange(256) % null, initial_noise(1, range(256), size)

        def batch256():
            for lo in range(0, 256, chunk):
                sample(net, schedule, scheduler, steps, w, lab[lo:lo + chunk], x[lo:lo + chunk], null, autocast)
        sec = time_call(batch256, repeats_b256, warmup=1)["median_s"]
        res["images_per_second_b256"] = round(256 / sec, 2)
    if repeats_b1 > 0:
        lab, x = torch.tensor([3]), initial_noise(1, [0], size)
        sec = time_call(lambda: sample(net, schedule, scheduler, steps, w, lab, x, null, autocast),
                        repeats_b1, warmup=2)["median_s"]
        res["latency_ms_b1"] = round(1000 * sec, 2)
    return res


def evaluate_point(model, net, schedule, meta: dict, a, scheduler: str, steps: int, w: float,
                   extractor, ref, guard: ThreadGuard) -> dict:
    from autonat.evaluation import EvalConfig, score
    from autonat.images import grid_image
    from autonat.metrics.reference import extract
    from autonat.pipeline import to_pil
    null = model.config.num_class_embeds - 1
    labels = ClassConditioner(null).for_evaluation(a.n, a.seed).labels
    threads, others = [], []

    def before_batch():
        threads.append(guard.check())
        others.append(guard.others_cpu)
    guard.check()
    t0 = time.perf_counter()
    images = generate(net, schedule, scheduler, steps, w, labels, a.seed, null, batch_size=a.batch_size,
                      autocast=a.precision == "autocast", show_progress=not a.quiet, before_batch=before_batch)
    sample_seconds = time.perf_counter() - t0
    if a.grid:
        g = Path(a.grid)
        if len(a.steps) * len(a.guidance) > 1:          # one PNG per point
            g = g.with_name(f"{g.stem}_T{steps}_w{w:g}{g.suffix}")
        first = [int(i) for c in range(null) for i in (labels == c).nonzero().flatten()[:10]]
        g.parent.mkdir(parents=True, exist_ok=True)
        grid_image(to_pil(images[first]), labels[first].tolist(), [str(c) for c in range(null)],
                   ncol=10).save(g)
    feats, probs = extract(extractor, images)
    res = score(feats, probs, ref, extractor.metric_name, EvalConfig(n=a.n, seed=a.seed))
    flops = sampling_flops(model, schedule, scheduler, steps, w)
    res.update({"series": f"diffusion-{scheduler}", "scheduler": scheduler, "steps": steps,
                "guidance": w, "guidance_autonat_s": w - 1, "n": a.n, "seed": a.seed,
                "flops_per_image": flops, "gflops_per_image": round(flops / 1e9, 4),
                "nfe": steps * passes_per_step(w),
                "sample_seconds": round(sample_seconds, 2), "images_per_second": round(a.n / sample_seconds, 2),
                "dtype": a.precision, "batch_size": a.batch_size, "model": str(a.model),
                "parameters": count_parameters(model), "train_images_seen": meta.get("images_seen"),
                "lr": meta.get("train", {}).get("lr"), "train_seed": meta.get("train", {}).get("seed"),
                "loadavg_1m": round(os.getloadavg()[0], 2),
                "sample_threads": threads, "sample_others_cpu": round(sum(others[1:]) / max(1, len(others) - 1), 3)})
    res.update(speed(net, schedule, scheduler, steps, w, a.precision == "autocast", a.speed_repeats,
                     a.latency_repeats, guard, a.chunk))
    res.update(time_per_image(res))
    return res


def time_per_image(res: dict) -> dict:
    """The point's `seconds_per_image`: the dedicated speed run (sampling only, taken after checking
    that nothing else uses the CPU) when there was one, else the FID run's wall-clock, whose batches
    may have shared the CPU (its `sample_threads` shows where the guard dropped to fewer threads)."""
    if "images_per_second_b256" in res:
        return {"seconds_per_image": 1 / res["images_per_second_b256"],
                "seconds_per_image_from": f"speed run: 256 images in calls of {res['speed_chunk']}"}
    return {"seconds_per_image": res["sample_seconds"] / res["n"],
            "seconds_per_image_from": f"FID run: {res['n']} images in calls of {res['batch_size']}"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="a train.py OUT/model directory")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="dpmpp2m")
    p.add_argument("--steps", type=int, nargs="+", default=[20])
    p.add_argument("--guidance", type=float, nargs="+", default=[2.0],
                   help="w in out_u + w (out_c - out_u); 1 = no guidance")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--precision", choices=["bf16", "autocast", "fp32"], default="bf16")
    p.add_argument("--speed-repeats", type=int, default=3, help="batch-256 runs (0 = skip)")
    p.add_argument("--latency-repeats", type=int, default=10, help="batch-1 runs (0 = skip)")
    p.add_argument("--grid", default=None, help="also save a PNG of 10 samples per class")
    p.add_argument("--out", required=True, type=Path, help="JSONL file to append to")
    p.add_argument("--chunk", type=int, default=256,
                   help="images per sampling call in the batch-256 speed runs (2 rows each with guidance; "
                        "the NATs' model calls run 32 rows: --chunk 16)")
    p.add_argument("--speed-only", action="store_true",
                   help="only FLOPs, batch-256 img/s and batch-1 latency (no FID); JSON lines without fid")
    p.add_argument("--smoke", action="store_true", help="n = 20, 3 steps, one speed run")
    add_runtime_args(p)
    a = p.parse_args(argv)
    if not 1 <= a.chunk <= 256:
        p.error(f"--chunk must be between 1 and 256 images, got {a.chunk}")
    return a


def main(argv=None) -> None:
    a = parse_args(argv)
    if a.smoke:
        a.n, a.steps, a.speed_repeats, a.latency_repeats = 20, [3], 1, 2
    from autonat.metrics.reference import load_extractor, reference_features
    guard = ThreadGuard(a.threads)
    model, schedule, meta = load_unet(a.model)
    net = inference_copy(model, a.precision)
    log = JsonlLog(a.out)
    if not a.speed_only:
        extractor = load_extractor("fmnist")
        ref = reference_features(extractor, "fashion-mnist", "train", show_progress=not a.quiet)
    for steps in a.steps:
        for w in a.guidance:
            if a.speed_only:
                flops = sampling_flops(model, schedule, a.scheduler, steps, w)
                res = {"what": "speed", "scheduler": a.scheduler, "steps": steps, "guidance": w,
                       "dtype": a.precision, "gflops_per_image": round(flops / 1e9, 4),
                       "model": str(a.model), "loadavg_1m": round(os.getloadavg()[0], 2),
                       **speed(net, schedule, a.scheduler, steps, w, a.precision == "autocast",
                               a.speed_repeats, a.latency_repeats, guard, a.chunk)}
            else:
                res = evaluate_point(model, net, schedule, meta, a, a.scheduler, steps, w, extractor, ref, guard)
            log.write(res)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
