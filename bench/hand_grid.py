"""The hand grid on fresh seeds: the bar a searched strategy must clear.

Evaluates every hand setting of `autonat.presets.HAND_GRID` (both token orders; or --specs) and,
for comparison, the heuristic and the searched strategy (`autonat`), for each model and T, on one
fresh seed set (never used by a search: the searches use seeds 0 and 500000, their final
evaluations 1000000). One JSON line per evaluation is appended to --out; re-running skips the rows
already there (resumable), then prints a table per (model, T): FID, and the searched strategy's
ratio to the heuristic (maskgit) and to the best hand setting.

    python bench/hand_grid.py --model fashion-mnist fashion-mnist-enat --steps 4 8 --n 10000 \
        --seed 2000000 --out runs/hand_grid.jsonl
    # screen the grid cheaply first, then only the best few at n = 10k:
    python bench/hand_grid.py ... --n 2000 --out runs/hand_grid_2k.jsonl
    python bench/hand_grid.py ... --n 10000 --top 2 --from runs/hand_grid_2k.jsonl --out runs/hand_grid.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from autonat.bundle import Bundle
from autonat.evaluation import EvalConfig, evaluate_model
from autonat.metrics.reference import load_extractor, reference_features
from autonat.presets import HAND_GRID


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _top_specs(rows: list[dict], model: str, steps: int, k: int) -> list[str]:
    """The k best hand settings of a cheaper screening file for (model, steps)."""
    hand = sorted((r for r in rows if r["model"] == model and r["steps"] == steps and r["spec"] in HAND_GRID),
                  key=lambda r: r["fid"])
    return [r["spec"] for r in hand[:k]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=["fashion-mnist", "fashion-mnist-enat"])
    ap.add_argument("--tokenizer", default="", help="tokenizer (default: the model's)")
    ap.add_argument("--featnet", default="", help="feature network of the FID (default: the shipped one)")
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--specs", nargs="+", default=None, help="strategies (default: HAND_GRID + autonat)")
    ap.add_argument("--top", type=int, default=0, help="with --from: only the best TOP hand settings of that file")
    ap.add_argument("--from", dest="from_", default="", help="a cheaper run of this script (for --top)")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=2_000_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    net = load_extractor("fmnist", args.featnet or None)
    ref = reference_features(net, show_progress=False)
    screened = _rows(Path(args.from_)) if args.from_ else []
    for model in args.model:
        bundle = Bundle.load(model, tokenizer=args.tokenizer or None)
        for T in args.steps:
            specs = list(args.specs or HAND_GRID)
            if args.top and screened:
                specs = _top_specs(screened, model, T, args.top)
            specs += [s for s in ("maskgit", "autonat") if s not in specs]
            for spec in specs:
                done = {(r["model"], r["steps"], r["spec"], r["n"], r["seed"]) for r in _rows(out)}
                if (model, T, spec, args.n, args.seed) in done:
                    continue
                st = bundle.strategy(spec, T)
                r = evaluate_model(bundle, st, net, EvalConfig(n=args.n, seed=args.seed, precision_recall=False,
                                                               count_flops=False), ref, show_progress=False)
                row = {"model": model, "steps": T, "spec": spec, "order": st.order, "n": args.n, "seed": args.seed,
                       "fid": r["fid"], "seconds": r["seconds"]}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
            rows = [r for r in _rows(out) if r["model"] == model and r["steps"] == T and r["n"] == args.n
                    and r["seed"] == args.seed]
            by = {r["spec"]: r["fid"] for r in rows}
            hand = min((r for r in rows if r["spec"] in HAND_GRID), key=lambda r: r["fid"])
            print(f"\n{model}, T = {T}, n = {args.n}, seed {args.seed}")
            for r in sorted(rows, key=lambda r: r["fid"]):
                print(f"  {r['spec']:<18} {r['order']:<10} FID {r['fid']:.3f}")
            if "autonat" in by:
                print(f"  searched / maskgit = {by['autonat'] / by['maskgit']:.3f}; searched / best hand "
                      f"({hand['spec']}) = {by['autonat'] / hand['fid']:.3f}")


if __name__ == "__main__":
    main()
