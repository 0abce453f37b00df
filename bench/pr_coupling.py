"""How much of a p(r) comparison is the training realisation? (the training-strategy search)

Trains the search's proxy (U-ViT `tiny`, 800 steps) under each p(r) in --dists, each training seed
in --seeds, and two ways of turning the seed's uniforms u into ratios:

  increasing   r = F^-1(u)      (what `autonat train` does: every p(r) quantile-coupled)
  decreasing   r = F^-1(1 - u)  (the same p(r); MaskGIT writes arccos as r = cos(pi u / 2))

then evaluates every model with `maskgit` at T = 4 on fresh seeds. Two p(r) with the same seed and
draw share their batches, mask positions and dropout, and (if their shapes are close) nearly every
example's masked count: their FID difference is the effect of p(r). Different seeds or draws
measure what the training realisation alone does.

    python bench/pr_coupling.py --tokens runs/tokens/train --out runs/pr-coupling

A model directory that already holds weights is not retrained (its train_config.json must match).
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
from dataclasses import replace
from pathlib import Path

from autonat import masking, training
from autonat.bundle import Bundle
from autonat.checkpoint import has_checkpoint
from autonat.evaluation import EvalConfig, evaluate_model
from autonat.io import atomic_write_json, load_json
from autonat.metrics.reference import load_extractor, reference_features

PROXY = dict(model="tiny", batch_size=256, steps=800, lr=1e-3, warmup=80, ema=0.999,
             log_every=100)   # the full search's training template (--train-steps 800)


class Decreasing(masking.MaskRatioDistribution):
    """p(r) of `base`, drawn as r = F^-1(1 - u). Spec: `decreasing:<base spec>`."""

    def __init__(self, base: masking.MaskRatioDistribution):
        self.base = base

    def __eq__(self, other) -> bool:
        return isinstance(other, Decreasing) and other.base == self.base

    def __hash__(self) -> int:
        return hash(self.spec)

    def icdf(self, u):
        return self.base.icdf(1.0 - u)

    @property
    def spec(self) -> str:
        return f"decreasing:{self.base.spec}"


def train_proxy(tokens: str, dist: masking.MaskRatioDistribution, seed: int, out: Path) -> None:
    cfg = training.TrainConfig(tokens=tokens, mask_dist=dist, seed=seed, **PROXY)
    if (out / "model.safetensors").is_file():   # done: it must be this very training
        have = load_json(out / "train_config.json")           # (token path and device may differ)
        training.check_resume(out, replace(cfg, tokens=have["tokens"], device=have["device"]))
        return
    training.train(cfg, out, resume=has_checkpoint(out), show_progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--dists", nargs="+", default=["arccos", "beta:0.918277,0.524149"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--draws", nargs="+", choices=("increasing", "decreasing"), default=["increasing", "decreasing"])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--eval-seed", type=int, default=10**6)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    dists = {d: masking.parse_mask_dist(d) for d in args.dists}     # bad spec: fail before any training
    out = Path(args.out)
    net = load_extractor("fmnist")
    ref = reference_features(net, show_progress=False)
    rows = []
    for dist, seed, draw in itertools.product(args.dists, args.seeds, args.draws):
        p_r = dists[dist] if draw == "increasing" else Decreasing(dists[dist])
        run = out / f"{p_r.spec.replace(':', '_').replace(',', '_')}-seed{seed}"
        res_file = run / f"fid_maskgit_T4_n{args.n}_seed{args.eval_seed}.json"
        if not res_file.is_file():
            train_proxy(args.tokens, p_r, seed, run)
            bundle = Bundle.load(str(run))
            r = evaluate_model(bundle, bundle.strategy("maskgit", 4), net,
                               EvalConfig(n=args.n, seed=args.eval_seed, precision_recall=False,
                                          count_flops=False), ref, show_progress=False)
            atomic_write_json(res_file, {"fid": r["fid"]})
        row = {"p(r)": dist, "seed": seed, "draw": draw, "fid": load_json(res_file)["fid"], "dir": str(run)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    atomic_write_json(out / "summary.json", rows)
    print("\n| training seed | draw | " + " | ".join(args.dists) + " |\n|---|---|" + "---|" * len(args.dists))
    for seed, draw in itertools.product(args.seeds, args.draws):
        fids = [r["fid"] for r in rows if r["seed"] == seed and r["draw"] == draw]
        print(f"| {seed} | {draw} | " + " | ".join(f"{f:.2f}" for f in fids) + " |")
    by_dist = {d: [r["fid"] for r in rows if r["p(r)"] == d] for d in args.dists}
    if len(args.dists) == 2 and len(rows) > 2:
        a, b = by_dist[args.dists[0]], by_dist[args.dists[1]]
        diffs = [y - x for x, y in zip(a, b)]
        print(f"\ncoupled difference ({args.dists[1]} - {args.dists[0]}): mean {statistics.mean(diffs):+.2f}, "
              f"range {min(diffs):+.2f} .. {max(diffs):+.2f}; spread of one p(r) over realisations: "
              + ", ".join(f"{d} {min(v):.2f}..{max(v):.2f}" for d, v in by_dist.items()))


if __name__ == "__main__":
    main()
