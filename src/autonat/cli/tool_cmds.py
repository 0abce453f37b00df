"""`autonat bench`, `autonat plot`, `autonat reference`, `autonat strategy`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..io import AutonatError
from .common import add_runtime_args, info, print_json


def register(sub) -> None:
    b = sub.add_parser("bench", help="machine peak and model speed measurements")
    bsub = b.add_subparsers(dest="bench_command", metavar="ACTION")
    bsub.required = True
    p = bsub.add_parser("peak", help="matmul FLOP/s on transformer-shaped matmuls (bf16 and fp32)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--tokens", type=int, default=50 * 256, help="rows (batch x sequence length)")
    p.set_defaults(func=cmd_bench_peak)
    p = bsub.add_parser("sampling", help="images/s, latency and FLOP/s of a model (vs the measured peak)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="fashion-mnist")
    p.add_argument("--strategy", default="maskgit")
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 256])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-reuse", action="store_true")
    p.add_argument("--json", action="store_true")
    add_runtime_args(p)
    p.set_defaults(func=cmd_bench_sampling)

    p = sub.add_parser("plot", help="figures: strategy schedules, search curves, FID-vs-GFLOPs frontier, decoding strip")
    psub = p.add_subparsers(dest="plot_command", metavar="WHAT")
    psub.required = True
    q = psub.add_parser("strategy", help="the four schedules of one or more strategies")
    q.add_argument("strategies", nargs="+", help="preset names or files (e.g. maskgit autonat best.json)")
    q.add_argument("--steps", type=int, default=8)
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_strategy)
    q = psub.add_parser("search", help="best-FID-vs-evaluations curves of one or more search directories")
    q.add_argument("dirs", nargs="+")
    q.add_argument("--max-evals", type=int, default=None,
                   help="cut every curve at this many evaluations (same-budget comparisons)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_search)
    q = psub.add_parser("frontier", help="FID vs GFLOPs from `autonat evaluate --json` outputs (JSONL files)")
    q.add_argument("files", nargs="+", help="JSONL files, one evaluate result per line; group = file name")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_frontier)
    q = psub.add_parser("strip", help="decoding strip: the canvas after every step (paper Fig. 2)")
    q.add_argument("--model", default="fashion-mnist")
    q.add_argument("--tokenizer", default=None, help="default: the model's")
    q.add_argument("--strategy", default="maskgit")
    q.add_argument("--steps", type=int, default=8)
    q.add_argument("--classes", default="0,1,7,9")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_strip)

    p = sub.add_parser("reference", help="rebuild the shipped reference artefacts from scratch")
    rsub = p.add_subparsers(dest="reference_command", metavar="ACTION")
    rsub.required = True
    q = rsub.add_parser("build", help="tokenizer -> tokens -> feature net -> U-ViT/ENAT -> strategies -> assets")
    q.add_argument("--work", default="runs/reference", help="working directory (resumable)")
    q.add_argument("--install", action="store_true", help="copy the results into the package's assets")
    q.add_argument("--only", default=None, help="comma-separated stages to run (default: all)")
    q.set_defaults(func=cmd_reference_build)

    p = sub.add_parser("strategy", help="show or convert a strategy (JSON <-> official YAML keys)")
    p.add_argument("spec", help="preset name or file")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--to-yaml", default=None, help="write the official YAML keys to this file")
    p.add_argument("--to-json", default=None, help="write autonat JSON to this file")
    p.set_defaults(func=cmd_strategy)


def cmd_bench_peak(args) -> int:
    from ..bench import matmul_peak
    print_json({"bf16": matmul_peak(args.dim, args.tokens, "bf16"), "fp32": matmul_peak(args.dim, args.tokens, "fp32")})
    return 0


def cmd_bench_sampling(args) -> int:
    from ..bench import matmul_peak, sampling_speed
    from ..pipeline import Pipeline, WithoutReuse
    pipe = Pipeline.from_pretrained(args.model, device=args.device)
    model = WithoutReuse(pipe.model) if args.no_reuse and pipe.model.arch == "enat" else pipe.model
    dim = pipe.model.config.dim
    peak = matmul_peak(dim, 50 * 256, "bf16" if args.bf16 else "fp32")
    rows = []
    for T in args.steps:
        st = pipe.strategy(args.strategy, T)
        for bsz in args.batch:
            r = sampling_speed(model, st, bsz, args.bf16, repeats=args.repeats)
            r["fraction_of_peak"] = round(r["achieved_flops_per_s"] / peak["peak_flops_per_s"], 4)
            r["model"] = args.model
            rows.append(r)
            info(f"T={T} batch={bsz}: {r['images_per_second']} img/s, {r['latency_ms']} ms/batch, "
                 f"{r['achieved_flops_per_s'] / 1e9:.0f} GFLOP/s = {100 * r['fraction_of_peak']:.1f}% of peak")
    print_json({"peak": peak, "results": rows})
    return 0


def _load_strategies(specs, steps):
    from ..strategy import resolve_strategy
    out = {}
    for s in specs:
        try:
            out[Path(s).stem if Path(s).suffix else s] = resolve_strategy(s, None if Path(s).suffix else steps)
        except AutonatError as e:
            raise AutonatError(f"{s}: {e}") from None
    return out


def cmd_plot_strategy(args) -> int:
    from ..plots import plot_strategies
    plot_strategies(_load_strategies(args.strategies, args.steps), args.out)
    info(f"wrote {args.out}")
    return 0


def cmd_plot_search(args) -> int:
    from ..plots import plot_curves
    from ..search.store import TrialStore
    series = {}
    for d in args.dirs:
        db = Path(d) / "trials.sqlite"
        if not db.is_file():
            raise AutonatError(f"{d}: no trials.sqlite (not a search directory)")
        store = TrialStore(db)
        for ev in store.events("generation_search"):
            h = [x for x in ev["history"] if args.max_evals is None or x["eval"] <= args.max_evals]
            series[f"{Path(d).name}:{ev['tag']}"] = ([x["eval"] for x in h], [x["best_value"] for x in h])
        store.close()
    plot_curves(series, args.out, xlabel="FID evaluations", ylabel="best FID so far")
    info(f"wrote {args.out}")
    return 0


def cmd_plot_frontier(args) -> int:
    from ..plots import plot_frontier
    pts = []
    for f in args.files:
        for line in Path(f).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                pts.append({"gflops": r["flops_per_image"] / 1e9, "fid": r["fid"], "group": Path(f).stem,
                            "label": f"T={r['steps']}"})
    if not pts:
        raise AutonatError("no evaluate results found in the given files")
    plot_frontier(pts, args.out)
    info(f"wrote {args.out}")
    return 0


def cmd_plot_strip(args) -> int:
    import torch

    from ..pipeline import Pipeline
    from ..plots import save_strip
    from .model_cmds import parse_classes
    pipe = Pipeline.from_pretrained(args.model, tokenizer=args.tokenizer)
    labels = parse_classes(args.classes, pipe.class_names, pipe.num_classes, len(args.classes.split(",")))
    out = pipe(labels, num_steps=args.steps, strategy=args.strategy, return_trace=True,
               generator=torch.Generator().manual_seed(args.seed), progress=False)
    save_strip(pipe, out, args.out, rows=len(labels))
    info(f"wrote {args.out}")
    return 0


def cmd_reference_build(args) -> int:
    from ..reference import build_reference
    stages = args.only.split(",") if args.only else None
    print_json(build_reference(args.work, install=args.install, stages=stages))
    return 0


def cmd_strategy(args) -> int:
    from ..strategy import resolve_strategy, save_official_yaml
    st = resolve_strategy(args.spec, args.steps)
    if args.to_yaml:
        save_official_yaml(st, args.to_yaml)
    if args.to_json:
        st.save(args.to_json)
    print_json(st.to_dict())
    return 0
