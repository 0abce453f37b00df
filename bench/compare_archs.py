"""ENAT vs U-ViT side by side in one run (issue: ENAT measured bars): FID (n samples, fresh seed),
forward GFLOPs per image (both guidance passes), images/s at batch 256 and batch-1 latency, for
each model given, with the same strategy. ENAT models are also measured without feature reuse.

    python bench/compare_archs.py --models runs/uvit-small runs/enat-small --steps 8 --n 10000
"""
from __future__ import annotations

import argparse
import json

from autonat.bench import matmul_peak, sampling_speed
from autonat.evaluation import EvalConfig, evaluate_model
from autonat.metrics.cost import sampling_flops
from autonat.metrics.reference import load_extractor, reference_features
from autonat.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--strategy", default="maskgit")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-fid", action="store_true")
    args = ap.parse_args()
    net = load_extractor("fmnist")
    ref = None if args.skip_fid else reference_features(net, show_progress=False)
    rows = []
    for name in args.models:
        pipe = Pipeline.from_pretrained(name, tokenizer=args.tokenizer)
        st = pipe.strategy(args.strategy, args.steps)
        plain = pipe.model.without_reuse()
        variants = [("-", pipe.model)] if plain is pipe.model else [("reuse", pipe.model), ("no reuse", plain)]
        for label, model in variants:
            row = {"model": name, "arch": pipe.model.arch, "variant": label, "steps": args.steps,
                   "strategy": st.name, "gflops_per_image": sampling_flops(model, st) / 1e9}
            if not args.skip_fid:
                r = evaluate_model(model, pipe.tokenizer, st, net,
                                   EvalConfig(n=args.n, seed=args.seed, precision_recall=False, count_flops=False),
                                   ref, show_progress=False)
                row["fid"] = r["fid"]
            b256 = sampling_speed(model, st, 256, repeats=3)
            b1 = sampling_speed(model, st, 1, repeats=20, warmup=3)
            row.update({"images_per_s_b256": b256["images_per_second"], "latency_ms_b1": b1["latency_ms"],
                        "achieved_gflops_per_s_b256": b256["achieved_flops_per_s"] / 1e9})
            rows.append(row)
            print(json.dumps(row), flush=True)
    peak = matmul_peak(256)
    print(json.dumps({"peak_bf16_tflops": peak["peak_tflops"], "rows": rows}))
    print("\n| model | variant | FID | GFLOPs/img | img/s @256 | latency @1 (ms) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['variant']} | {r.get('fid', float('nan')):.2f} | {r['gflops_per_image']:.3f} | "
              f"{r['images_per_s_b256']:.1f} | {r['latency_ms_b1']:.1f} |")


if __name__ == "__main__":
    main()
