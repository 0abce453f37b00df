"""`autonat bench`, `autonat plot`, `autonat reference`, `autonat strategy`."""
from __future__ import annotations

from .common import info, print_json


def register(sub, common) -> None:
    b = sub.add_parser("bench", help="machine peak and model speed measurements")
    bsub = b.add_subparsers(dest="bench_command", metavar="ACTION")
    bsub.required = True
    p = bsub.add_parser("peak", parents=[common], help="matmul FLOP/s on transformer-shaped matmuls (bf16 and fp32)")
    p.add_argument("--dim", type=int, default=256, help="(default: %(default)s)")
    p.add_argument("--tokens", type=int, default=50 * 256, help="rows (batch x sequence length) (default: %(default)s)")
    p.set_defaults(func=cmd_bench_peak)
    p = bsub.add_parser("sampling", parents=[common],
                        help="images/s, latency and FLOP/s of a model (vs the measured peak)")
    p.add_argument("--model", default="fashion-mnist", help="(default: %(default)s)")
    p.add_argument("--strategy", default="maskgit", help="(default: %(default)s)")
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8], help="(default: 4 8)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 256], help="(default: 1 256)")
    p.add_argument("--repeats", type=int, default=5, help="(default: %(default)s)")
    p.add_argument("--no-reuse", dest="reuse", action="store_false", default=True,
                   help="ENAT: recompute every step")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", default=True, help="measure fp32")
    p.add_argument("--device", default="auto", help="(default: %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_sampling)

    p = sub.add_parser("plot", help="figures: strategy schedules, search curves, FID-vs-cost frontier, decoding strip")
    psub = p.add_subparsers(dest="plot_command", metavar="WHAT")
    psub.required = True
    q = psub.add_parser("strategy", parents=[common], help="the four schedules of one or more strategies")
    q.add_argument("strategies", nargs="+", help="presets or files (e.g. maskgit halton autonat best.json)")
    q.add_argument("--steps", type=int, default=8, help="(default: %(default)s)")
    q.add_argument("--model", default="fashion-mnist", help="whose searched strategy `autonat` means "
                                                            "(default: %(default)s)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_strategy)
    q = psub.add_parser("search", parents=[common], help="best-FID-vs-evaluations curves of search directories")
    q.add_argument("dirs", nargs="+")
    q.add_argument("--max-evals", type=int, default=None,
                   help="cut every curve at this many evaluations (same-budget comparisons)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_search)
    q = psub.add_parser("frontier", parents=[common],
                        help="FID vs GFLOPs (and vs seconds/image) from `evaluate --json` / bench JSONL files")
    q.add_argument("files", nargs="+", help="JSONL files, one result per line; series = `series` or the file name")
    q.add_argument("--metric", default="fid_fmnist", help="the FID's name on the y-axis (default: %(default)s)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_frontier)
    q = psub.add_parser("strip", parents=[common], help="decoding strip: the canvas after every step (paper Fig. 2)")
    q.add_argument("--model", default="fashion-mnist", help="(default: %(default)s)")
    q.add_argument("--tokenizer", default=None, help="default: the model's")
    q.add_argument("--strategy", default="maskgit", help="(default: %(default)s)")
    q.add_argument("--steps", type=int, default=8, help="(default: %(default)s)")
    q.add_argument("--classes", default="0,1,7,9", help="class models (default: %(default)s)")
    q.add_argument("--prompts", default=None, help="text models: prompts separated by | (one row each)")
    q.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_plot_strip)

    p = sub.add_parser("reference", help="rebuild the shipped reference artefacts from scratch")
    rsub = p.add_subparsers(dest="reference_command", metavar="ACTION")
    rsub.required = True
    q = rsub.add_parser("build", parents=[common],
                        help="tokenizer -> tokens -> feature net -> U-ViT/ENAT -> strategies -> assets")
    q.add_argument("--work", default="runs/reference", help="working directory (resumable) (default: %(default)s)")
    q.add_argument("--install", action="store_true", help="copy the results into the package's assets")
    q.add_argument("--only", default=None, help="comma-separated stages to run (default: all)")
    q.set_defaults(func=cmd_reference_build)

    p = sub.add_parser("strategy", parents=[common], help="show or convert a strategy (JSON <-> official YAML keys)")
    p.add_argument("spec", help="preset name or file")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--model", default="fashion-mnist", help="whose searched strategy `autonat` means "
                                                            "(default: %(default)s)")
    p.add_argument("--to-yaml", default=None, help="write the official YAML keys to this file "
                                                   "(autonat JSON: `autonat convert --strategy`)")
    p.set_defaults(func=cmd_strategy)


def _strategy(spec: str, steps: int | None, model: str):
    from ..bundle import Bundle
    from ..presets import resolve_strategy
    if spec == "autonat":
        return Bundle.load(model).strategy(spec, steps)
    return resolve_strategy(spec, steps)


def _output_file(path: str) -> str:
    from pathlib import Path

    from ..io import AutonatError
    p = Path(path)
    if p.is_dir():
        raise AutonatError(f"--out/--to-* {p} is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise AutonatError(f"{p}: {parent} is a file, not a directory")
    return path


def cmd_bench_peak(args) -> int:
    from ..bench import matmul_peak
    from ..io import AutonatError
    if args.dim < 1 or args.tokens < 1:
        raise AutonatError("--dim and --tokens must be >= 1")
    print_json({"bf16": matmul_peak(args.dim, args.tokens, "bf16"), "fp32": matmul_peak(args.dim, args.tokens, "fp32")})
    return 0


def cmd_bench_sampling(args) -> int:
    from ..bench import bench_sampling
    print_json(bench_sampling(args.model, args.strategy, args.steps, args.batch, args.repeats, args.reuse,
                              args.bf16, args.device, log=info))
    return 0


def cmd_plot_strategy(args) -> int:
    from pathlib import Path

    from ..io import AutonatError
    from ..plots import plot_strategies
    out = {}
    for s in args.strategies:
        try:
            out[Path(s).stem if Path(s).suffix else s] = _strategy(s, None if Path(s).suffix else args.steps, args.model)
        except AutonatError as e:
            raise AutonatError(f"{s}: {e}") from None
    plot_strategies(out, _output_file(args.out))
    info(f"wrote {args.out}")
    return 0


def cmd_plot_search(args) -> int:
    from pathlib import Path

    from ..plots import plot_curves
    from ..search.report import cost_of_gain, search_curves
    from ..search.store import TrialStore
    series = search_curves(args.dirs, args.max_evals)
    plot_curves(series, _output_file(args.out), xlabel="FID evaluations", ylabel="best FID so far")
    info(f"wrote {args.out}")
    for d in args.dirs:
        store = TrialStore.open_existing(Path(d) / "trials.sqlite")
        try:
            c = cost_of_gain(store)
        finally:
            store.close()
        if c:
            info(f"{d}: 90 % of the improvement {c['start']:.3f} -> {c['best']:.3f} after {c['evaluations']} "
                 f"evaluations / {c['minutes']:.1f} min (of {c['total_evaluations']} / {c['total_minutes']:.1f} min)")
    return 0


def cmd_plot_frontier(args) -> int:
    from ..plots import plot_frontier, read_frontier
    plot_frontier(read_frontier(args.files), _output_file(args.out), metric=args.metric)
    info(f"wrote {args.out}")
    return 0


def cmd_plot_strip(args) -> int:
    import torch

    from ..images import strip_image
    from ..io import AutonatError
    from ..io import atomic_write_bytes
    from ..pipeline import Pipeline
    _output_file(args.out)
    pipe = Pipeline.from_pretrained(args.model, tokenizer=args.tokenizer)
    if pipe.bundle.is_text:
        if not args.prompts:
            raise AutonatError(f"{args.model} is a text-to-image model: pass --prompts \"red apple|cat face\"")
        kw = {"prompt": [p.strip() for p in args.prompts.split("|") if p.strip()]}
    elif args.prompts:
        raise AutonatError(f"{args.model} is conditioned on class labels: pass --classes, not --prompts")
    else:
        kw = {"class_labels": pipe.bundle.conditioner.parse(args.classes)}
    out = pipe(**kw, num_steps=args.steps, strategy=args.strategy, return_trace=True,
               generator=torch.Generator().manual_seed(args.seed), progress=False)
    import io
    buf = io.BytesIO()
    strip_image(pipe, out, rows=len(out.images)).save(buf, format="PNG")
    atomic_write_bytes(args.out, buf.getvalue())
    info(f"wrote {args.out}")
    return 0


def cmd_reference_build(args) -> int:
    from ..build_assets import build_reference
    stages = args.only.split(",") if args.only else None
    print_json(build_reference(args.work, install=args.install, stages=stages))
    return 0


def cmd_strategy(args) -> int:
    from ..strategy import save_official_yaml
    st = _strategy(args.spec, args.steps, args.model)
    if args.to_yaml:
        save_official_yaml(st, _output_file(args.to_yaml))
    print_json(st.to_dict())
    return 0
