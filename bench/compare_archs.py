"""ENAT vs U-ViT side by side in one run: FID (n samples, fresh seed),
forward GFLOPs per image (both guidance passes), images/s at batch 256 and batch-1 latency, for
each model given, with the same strategy. ENAT models are also measured without feature reuse.

    python bench/compare_archs.py --models runs/uvit-small runs/enat-small --steps 8 --n 10000
"""
from __future__ import annotations

import argparse
import json

from autonat.bench import matmul_peak, sampling_speed
from autonat.bundle import Bundle
from autonat.evaluation import EvalConfig, evaluate_model
from autonat.metrics.cost import sampling_flops
from autonat.metrics.reference import load_extractor, reference_features


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
        bundle = Bundle.load(name, tokenizer=args.tokenizer)
        st = bundle.strategy(args.strategy, args.steps)
        one = bundle.conditioner.condition([0])
        plain = bundle.model.without_reuse()
        variants = [("-", True)] if plain is bundle.model else [("reuse", True), ("no reuse", False)]
        for label, reuse in variants:
            model = bundle.model if reuse else plain
            row = {"model": name, "arch": bundle.model.arch, "variant": label, "steps": args.steps,
                   "strategy": st.name, "gflops_per_image": sampling_flops(model, st, one) / 1e9}
            if not args.skip_fid:
                r = evaluate_model(bundle, st, net, EvalConfig(n=args.n, seed=args.seed, precision_recall=False,
                                                               count_flops=False), ref, show_progress=False, reuse=reuse)
                row["fid"] = r["fid"]
            b256 = sampling_speed(bundle, st, 256, repeats=3, reuse=reuse)
            b1 = sampling_speed(bundle, st, 1, repeats=20, warmup=3, reuse=reuse)
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
