"""The controlled peer (`autonat.baselines.latent_diffusion`): diffusion on the NATs' own latent
grid with a U-ViT of the NAT's size, trained on the same token cache for the same budget, decoded
by the same tokenizer. Train it, then score it with autonat's FID code and cost counters
(comparable with every NAT point: `fid_fmnist`, the class-balanced labels of
`ClassConditioner.for_evaluation(n, seed)`, 10k samples vs the 60k training images, bf16 sampling
in calls of 32 images by default (--batch-size 16 gives the NAT's 32-row calls, guidance pair
included), the same threads).

    python bench/latent_peer.py train --tokens runs/reference/tokens-train --out runs/latent/seed0 [--seed 1]
    python bench/latent_peer.py evaluate --model runs/latent/seed0/model --steps 2 4 8 16 \\
        --guidance 1 2 3 --n 10000 --seed 1000000 --out runs/frontier/latent.jsonl [--snap]

Training resumes after a kill (`--resume`). One JSON line per evaluated point is appended to --out
(fid, is, precision, recall, flops_per_image, nfe = model calls per image, s / image, batch-1
latency). Guidance w follows diffusers (w = 1: conditional only, one pass per step; autonat's s = w - 1).
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

import torch

from autonat.baselines.latent_train import LatentTrainConfig, load_latent, train_latent
from autonat.baselines.pixel_diffusion import (ScheduleConfig, inference_copy, initial_noise, passes_per_step,
                                               sample)
from autonat.conditioning import ClassConditioner
from autonat.data import to_uint8
from autonat.evaluation import EvalConfig, score
from autonat.jobs import JsonlLog
from autonat.metrics.cost import count_flops, time_call
from autonat.metrics.reference import extract, load_extractor, reference_features

BATCH = 32      # images per sampling call (64 rows with guidance)


def generate(model, schedule: ScheduleConfig, codec, solver: str, steps: int, w: float, labels: torch.Tensor,
             seed: int, snap: bool = False, batch: int = BATCH) -> torch.Tensor:
    """uint8 images for `labels`; x_T of sample i is keyed by (seed, i), whatever the batching."""
    c = model.config
    h = int(round(c.seq_len ** 0.5))
    out = []
    for lo in range(0, len(labels), batch):
        ids = range(lo, min(lo + batch, len(labels)))
        noise = initial_noise(seed, ids, shape=(c.latent_dim, h, c.seq_len // h))
        z = sample(model, schedule, solver, steps, w, labels[lo:lo + batch], noise, c.num_classes, clip=False)
        out.append(to_uint8(codec.decode(z, snap=snap)))
    return torch.cat(out)


def cmd_train(a) -> None:
    cfg = LatentTrainConfig(tokens=a.tokens, tokenizer=a.tokenizer, steps=a.steps, batch_size=a.batch_size,
                            seed=a.seed)
    print(train_latent(cfg, a.out, resume=a.resume))


def cmd_evaluate(a) -> None:
    model, schedule, codec, meta = load_latent(a.model, a.tokenizer or None)
    net = load_extractor("fmnist", None)
    ref = reference_features(net, show_progress=False)
    labels = ClassConditioner(model.config.num_classes).for_evaluation(a.n, a.seed).labels
    fast = inference_copy(model, "bf16")             # sampled in bf16, as the NATs
    log = JsonlLog(a.out)
    for steps, w in itertools.product(a.steps, a.guidance):
        t0 = time.perf_counter()
        images = generate(fast, schedule, codec, a.solver, steps, w, labels, a.seed, a.snap, a.batch_size)
        seconds = time.perf_counter() - t0
        feats, probs = extract(net, images)
        res = score(feats, probs, ref, net.metric_name, EvalConfig(n=a.n, seed=a.seed))
        one = labels[:1]
        noise = initial_noise(0, [0], shape=(model.config.latent_dim, 7, 7))
        flops = count_flops(lambda: sample(fast, schedule, a.solver, steps, w, one, noise, model.config.num_classes,
                                           clip=False), (fast,))
        lat = time_call(lambda: generate(fast, schedule, codec, a.solver, steps, w, one, 0, a.snap), repeats=5)
        row = {"series": f"latent-{a.solver}" + ("-snap" if a.snap else ""), "solver": a.solver, "steps": steps,
               "guidance": w, "snap": a.snap, "nfe": steps * passes_per_step(w), "n": a.n,
               "seed": a.seed, **res, "train_seed": meta["train"]["seed"], "flops_per_image": flops,
               "gflops_per_image": round(flops / 1e9, 4), "seconds_per_image": seconds / a.n, "batch_size": a.batch_size,
               "latency_ms_b1": round(1000 * lat["median_s"], 2), "threads": torch.get_num_threads(),
               "loadavg_1m": round(os.getloadavg()[0], 2)}
        log.write(row)
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--tokens", required=True)
    t.add_argument("--tokenizer", default="", help="default: the one the cache records")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("--model", required=True)
    e.add_argument("--tokenizer", default="", help="default: the one recorded at training")
    e.add_argument("--solver", default="dpmpp2m", choices=("dpmpp2m", "ddim"))
    e.add_argument("--steps", type=int, nargs="+", default=[8])
    e.add_argument("--guidance", type=float, nargs="+", default=[2.0])
    e.add_argument("--snap", action="store_true", help="decode the nearest codes instead of the vectors")
    e.add_argument("--n", type=int, default=10000)
    e.add_argument("--seed", type=int, default=1_000_000)
    e.add_argument("--batch-size", type=int, default=BATCH,
                   help="images per sampling call (the noise of image i does not depend on it)")
    e.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "evaluate" and a.batch_size < 1:
        ap.error(f"--batch-size must be >= 1, got {a.batch_size}")
    {"train": cmd_train, "evaluate": cmd_evaluate}[a.cmd](a)


if __name__ == "__main__":
    main()
