"""`autonat convert`: the authors' released checkpoints and strategy YAML -> autonat directories."""
from __future__ import annotations

from .common import info, print_json


def register(sub, common) -> None:
    p = sub.add_parser("convert", parents=[common],
                       help="convert the authors' AutoNAT-L / ENAT / MaskGIT-VQGAN checkpoints (and strategy YAML)")
    p.add_argument("--checkpoint", default=None,
                   help="the authors' NAT checkpoint (.pth: AutoNAT U-ViT or ENAT; read with weights_only=True)")
    p.add_argument("--vqgan", default=None, help="the authors' MaskGIT VQGAN checkpoint (vqgan_jax_strongaug.ckpt)")
    p.add_argument("--tokenizer", default=None, help="an already converted tokenizer directory (instead of --vqgan)")
    p.add_argument("--strategy", default=None,
                   help="the authors' strategy YAML (manual_ratios, ...) to install as the model's strategy; "
                        "without a checkpoint: convert just this file to autonat JSON at --out")
    p.add_argument("--heads", type=int, default=None, help="attention heads (default: the released configs')")
    p.add_argument("--enc-dec", default=None, help="ENAT encoder,decoder blocks (default: 22,2 for 24 blocks)")
    p.add_argument("--image-size", type=int, default=256, help="VQGAN image side (default: %(default)s)")
    p.add_argument("--groups", type=int, default=32, help="VQGAN GroupNorm groups (default: %(default)s)")
    p.add_argument("--out", required=True, help="new model (or tokenizer) directory, or .json for a strategy")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from ..convert import convert
    from ..io import AutonatError
    if args.checkpoint is None and args.vqgan is None and args.strategy:
        from pathlib import Path

        from ..strategy import Strategy
        if Path(args.out).exists():
            raise AutonatError(f"--out {args.out} already exists")
        st = Strategy.load(args.strategy)
        if Path(args.out).suffix in (".yaml", ".yml"):      # the official keys, readable by `autonat strategy`
            from ..strategy import save_official_yaml
            save_official_yaml(st, args.out)
        else:
            st.save(args.out)
        print_json({"out": args.out, "steps": st.steps, "rounding": st.rounding})
        return 0
    enc_dec = None
    if args.enc_dec:
        try:
            enc_dec = tuple(int(v) for v in args.enc_dec.split(","))
        except ValueError:
            enc_dec = ()
        if len(enc_dec) != 2:
            raise AutonatError(f"--enc-dec must be E,D (two whole numbers), got {args.enc_dec!r}")
    summary = convert(args.checkpoint, args.out, vqgan=args.vqgan, tokenizer=args.tokenizer, strategy=args.strategy,
                      heads=args.heads, enc_dec=enc_dec, image_size=args.image_size, groups=args.groups)
    if summary["ignored_keys"]:
        info(f"ignored {len(summary['ignored_keys'])} key(s) the authors' forward never uses: "
             f"{', '.join(summary['ignored_keys'][:4])} ...")
    info(f"converted into {args.out}")
    print_json(summary)
    return 0
