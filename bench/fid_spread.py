"""FID spread over seeds (sizes the search's noise): for each n in --ns and each seed, evaluate the
model with a strategy; prints one JSON line per evaluation and a summary (mean, std, min, max).

    python bench/fid_spread.py --model fashion-mnist --strategy maskgit --steps 4 --ns 2000 10000 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics

from autonat.evaluation import EvalConfig, evaluate_model
from autonat.metrics.reference import load_extractor, reference_features
from autonat.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fashion-mnist")
    ap.add_argument("--strategy", default="maskgit")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--ns", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    args = ap.parse_args()
    pipe = Pipeline.from_pretrained(args.model)
    net = load_extractor("fmnist")
    ref = reference_features(net)
    st = pipe.strategy(args.strategy, args.steps)
    summary = {}
    for n in args.ns:
        fids = []
        for seed in args.seeds:
            r = evaluate_model(pipe.bundle, st, net,
                               EvalConfig(n=n, seed=seed, precision_recall=False, count_flops=False), ref,
                               show_progress=False)
            fids.append(r["fid"])
            print(json.dumps({"n": n, "seed": seed, "fid": r["fid"], "seconds": r["seconds"]}), flush=True)
        summary[n] = {"mean": statistics.mean(fids), "std": statistics.stdev(fids) if len(fids) > 1 else 0.0,
                      "min": min(fids), "max": max(fids), "seeds": args.seeds}
    print(json.dumps({"model": args.model, "strategy": args.strategy, "steps": args.steps, "spread": summary}))


if __name__ == "__main__":
    main()
