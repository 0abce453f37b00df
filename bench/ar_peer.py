"""The autoregressive peer (`autonat.baselines.ar`) on the shipped tokens: train it, then score it
with autonat's own FID code and cost counters (comparable with every NAT point: `fid_fmnist`, the
class-balanced labels of `ClassConditioner.for_evaluation(n, seed)`, 10k samples vs the 60k
training images, bf16 sampling, the same threads).

    python bench/ar_peer.py train --tokens runs/reference/tokens-train --out runs/ar/seed0 [--seed 1]
    python bench/ar_peer.py evaluate --model runs/ar/seed0/model --tokenizer runs/reference/tokenizer \\
        --temperature 1.0 --top-k 0 --guidance 1.0 --n 10000 --seed 1000000 --out runs/frontier/ar.jsonl

Training resumes after a kill (`--resume`). One JSON line per evaluated point is appended to --out
(fid, is, precision, recall, flops_per_image, nfe = model calls per image, s / image at --batch-size,
batch-1 latency); several --temperature / --top-k / --guidance values evaluate the grid.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

import torch

from autonat.baselines.ar import ARSampling, sample_ar
from autonat.baselines.ar_train import ARTrainConfig, load_ar, train_ar
from autonat.conditioning import ClassConditioner
from autonat.data import to_uint8
from autonat.evaluation import EvalConfig, score
from autonat.jobs import JsonlLog, autocast
from autonat.metrics.cost import count_flops, time_call
from autonat.metrics.reference import extract, load_extractor, reference_features
from autonat.rng import keyed_generator
from autonat.tokenizer import load as load_tokenizer


def generate(model, tokenizer, labels: torch.Tensor, s: ARSampling, seed: int, batch: int = 256,
             bf16: bool = True) -> torch.Tensor:
    """uint8 images for `labels`; batch k draws from the generator keyed by (seed, k)."""
    out = []
    for k, lo in enumerate(range(0, len(labels), batch)):
        with autocast(torch.device("cpu"), bf16):
            ids = sample_ar(model, labels[lo:lo + batch], s, keyed_generator(seed, k))
            out.append(to_uint8(tokenizer.decode(ids).float()))
    return torch.cat(out)


def cmd_train(a) -> None:
    cfg = ARTrainConfig(tokens=a.tokens, steps=a.steps, batch_size=a.batch_size, seed=a.seed)
    print(train_ar(cfg, a.out, resume=a.resume))


def cmd_evaluate(a) -> None:
    model, meta = load_ar(a.model)
    tok = load_tokenizer(a.tokenizer)
    if tok.identity != meta["tokenizer"]:
        raise SystemExit(f"{a.model} was trained on tokens of tokenizer {meta['tokenizer']}, not {tok.identity}")
    net = load_extractor("fmnist", None)
    ref = reference_features(net, show_progress=False)
    labels = ClassConditioner(model.config.num_classes).for_evaluation(a.n, a.seed).labels
    model = model.to(torch.bfloat16)            # sampled in bf16, as the NATs
    log = JsonlLog(a.out)
    for t, k, w in itertools.product(a.temperature, a.top_k, a.guidance):
        s = ARSampling(temperature=t, top_k=k, guidance=w)
        t0 = time.perf_counter()
        images = generate(model, tok, labels, s, a.seed, batch=a.batch_size)
        seconds = time.perf_counter() - t0
        feats, probs = extract(net, images)
        res = score(feats, probs, ref, net.metric_name, EvalConfig(n=a.n, seed=a.seed))
        one = labels[:1]
        flops = count_flops(lambda: sample_ar(model, one, s, torch.Generator()), (model,))
        lat = time_call(lambda: generate(model, tok, one, s, 0), repeats=5)
        row = {"series": "ar", "temperature": t, "top_k": k, "guidance": w, "steps": model.config.seq_len,
               "nfe": model.config.seq_len * s.passes, "n": a.n, "seed": a.seed, **res,
               "train_seed": meta["train"]["seed"],
               "flops_per_image": flops, "gflops_per_image": round(flops / 1e9, 4),
               "seconds_per_image": seconds / a.n, "batch_size": a.batch_size, "latency_ms_b1": round(1000 * lat["median_s"], 2),
               "threads": torch.get_num_threads(), "loadavg_1m": round(os.getloadavg()[0], 2)}
        log.write(row)
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--tokens", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("--model", required=True)
    e.add_argument("--tokenizer", default="fashion-mnist")
    e.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    e.add_argument("--top-k", type=int, nargs="+", default=[0])
    e.add_argument("--guidance", type=float, nargs="+", default=[1.0])
    e.add_argument("--batch-size", type=int, default=256,
                   help="rows per sampling call (the NAT runs 32-row chunks; measure which suits the AR)")
    e.add_argument("--n", type=int, default=10000)
    e.add_argument("--seed", type=int, default=1_000_000)
    e.add_argument("--out", required=True)
    a = ap.parse_args()
    {"train": cmd_train, "evaluate": cmd_evaluate}[a.cmd](a)


if __name__ == "__main__":
    main()
