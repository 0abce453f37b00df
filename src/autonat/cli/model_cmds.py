"""`autonat train`, `autonat sample` and `autonat export`."""
from __future__ import annotations

from .common import info, print_json, show_progress
from .options import add_config_args, config_from_args


def register(sub, common) -> None:
    from ..generate import SampleConfig
    from ..training import TrainConfig
    p = sub.add_parser("train", parents=[common],
                       help="train a NAT (U-ViT or ENAT) on a token cache; torchrun-ready, resumable")
    p.add_argument("--out", required=True, help="run directory (becomes a model directory)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/checkpoint")
    add_config_args(p, TrainConfig, required=("tokens",))
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", parents=[common],
                       help="generate images (PNGs, a labelled grid, tokens.npz, optional trace)")
    p.add_argument("--out", required=True, help="output directory (replaced as a whole)")
    add_config_args(p, SampleConfig)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("export", parents=[common],
                       help="write a self-contained model directory (weights, config, tokenizer, strategies)")
    p.add_argument("--model", required=True, help="shipped name or model directory")
    p.add_argument("--tokenizer", default="", help="tokenizer (default: the model's)")
    p.add_argument("--out", required=True, help="new directory")
    p.set_defaults(func=cmd_export)


def cmd_train(args) -> int:
    import time

    from .. import distributed as D
    from ..training import TrainConfig, train
    t0 = time.time()
    out = train(config_from_args(TrainConfig, args), args.out, resume=args.resume,
                show_progress=show_progress(args), log=info)
    if D.is_main():
        info(f"model saved to {out} ({time.time() - t0:.0f}s)")
    return 0


def cmd_sample(args) -> int:
    from ..generate import SampleConfig, generate_to_dir
    summary = generate_to_dir(config_from_args(SampleConfig, args), args.out, show_progress=show_progress(args))
    summary.pop("config")
    print_json(summary)
    return 0


def cmd_export(args) -> int:
    from pathlib import Path

    from ..io import AutonatError
    from ..bundle import Bundle
    out = Path(args.out)
    if out.is_symlink() and not out.exists():
        raise AutonatError(f"--out {args.out} is a symbolic link to a missing {out.readlink()}; export writes a "
                           f"new directory (remove the link or choose another --out)")
    if out.exists():
        raise AutonatError(f"--out {args.out} already exists; export writes a new directory")
    Bundle.load(args.model, tokenizer=args.tokenizer or None).save(args.out)
    info(f"exported {args.model} to {args.out} (self-contained: load it with --model {args.out})")
    return 0
