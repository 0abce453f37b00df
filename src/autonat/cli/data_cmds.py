"""`autonat tokenizer train|eval` and `autonat tokenize`."""
from __future__ import annotations

import argparse
import time
from ..io import AutonatError
from .common import add_data_args, add_runtime_args, info, print_json, print_result


def register(sub) -> None:
    tok = sub.add_parser("tokenizer", help="train or evaluate a VQ tokenizer")
    tsub = tok.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    tsub.required = True

    from ..tokenizer.model import TokenizerConfig
    from ..tokenizer.train import TokenizerTrainConfig
    p = tsub.add_parser("train", help="train a tokenizer (progress bar, periodic eval, checkpoints, --resume)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (tokenizer + checkpoint + log.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    add_data_args(p)
    m = TokenizerConfig()
    p.add_argument("--base-channels", type=int, default=m.base_channels)
    p.add_argument("--ch-mult", default=",".join(map(str, m.ch_mult)),
                   help="channel multipliers per level; downsampling factor = 2^(levels-1)")
    p.add_argument("--num-res-blocks", type=int, default=m.num_res_blocks)
    p.add_argument("--codebook-size", type=int, default=m.codebook_size)
    p.add_argument("--codebook-dim", type=int, default=m.codebook_dim)
    t = TokenizerTrainConfig()
    p.add_argument("--steps", type=int, default=t.max_steps)
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--grad-weight", type=float, default=t.grad_weight, help="weight of the edge loss")
    p.add_argument("--no-hflip", action="store_true", help="disable horizontal-flip augmentation")
    p.add_argument("--eval-every", type=int, default=t.eval_every)
    p.add_argument("--ckpt-every", type=int, default=t.ckpt_every)
    p.add_argument("--seed", type=int, default=t.seed)
    add_runtime_args(p)
    p.set_defaults(func=cmd_tokenizer_train)

    p = tsub.add_parser("eval", help="reconstruction metrics (psnr, mse, codebook_usage, perplexity)")
    p.add_argument("--tokenizer", default="fashion-mnist", help="shipped name or directory")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=None, help="first n images (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_data_args(p)
    add_runtime_args(p, bf16_default=False)
    p.set_defaults(func=cmd_tokenizer_eval)

    p = sub.add_parser("tokenize", help="write the token cache of a dataset split (resumable)")
    p.add_argument("--tokenizer", default="fashion-mnist", help="shipped name or directory")
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, help="cache directory")
    p.add_argument("--hflip", action="store_true", help="also store tokens of mirrored images (as the paper)")
    p.add_argument("--batch-size", type=int, default=500)
    add_data_args(p)
    add_runtime_args(p, bf16_default=False)
    p.set_defaults(func=cmd_tokenize)


def _parse_mult(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise AutonatError(f"--ch-mult must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise AutonatError(f"--ch-mult needs positive integers, got {text!r}")
    return vals


def _load(args, split: str):
    from ..data import load_dataset
    ds = load_dataset(args.data, split, resolution=args.resolution, channels=args.channels,
                      download=args.download, skip_bad=args.skip_bad)
    if ds.skipped:
        info(f"skipped {len(ds.skipped)} unreadable file(s), e.g. {ds.skipped[0]}")
    return ds


def cmd_tokenizer_train(args) -> int:
    from ..tokenizer.model import TokenizerConfig
    from ..tokenizer.train import TokenizerTrainConfig, evaluate_tokenizer, train_tokenizer
    probe = _load(args, "train")  # also fetches (and verifies) a --download before training starts
    c, h, _ = probe.image_shape
    del probe
    mcfg = TokenizerConfig(image_size=h, channels=c, base_channels=args.base_channels,
                           ch_mult=_parse_mult(args.ch_mult), num_res_blocks=args.num_res_blocks,
                           codebook_size=args.codebook_size, codebook_dim=args.codebook_dim)
    tcfg = TokenizerTrainConfig(data=args.data, resolution=args.resolution, channels=args.channels,
                                batch_size=args.batch_size, max_steps=args.steps, lr=args.lr,
                                grad_weight=args.grad_weight, hflip=not args.no_hflip,
                                eval_every=args.eval_every, ckpt_every=args.ckpt_every,
                                seed=args.seed, bf16=args.bf16, device=args.device)
    t0 = time.time()
    tok = train_tokenizer(mcfg, tcfg, args.out, resume=args.resume, show_progress=not args.quiet)
    test = _load(args, "test") if args.data in ("fashion-mnist", "fmnist") else _load(args, "train")
    metrics = evaluate_tokenizer(tok, test, bf16=args.bf16, show_progress=not args.quiet)
    metrics["train_seconds"] = round(time.time() - t0, 1)
    info(f"tokenizer saved to {args.out}")
    print_json(metrics)
    return 0


def cmd_tokenizer_eval(args) -> int:
    from ..jobs import pick_device
    from ..tokenizer import load
    from ..tokenizer.train import evaluate_tokenizer
    tok = load(args.tokenizer, pick_device(args.device))
    ds = _load(args, args.split)
    if ds.image_shape != (tok.config.channels, tok.config.image_size, tok.config.image_size):
        raise AutonatError(f"images are {ds.image_shape} but the tokenizer expects "
                           f"{(tok.config.channels, tok.config.image_size, tok.config.image_size)}; "
                           f"pass --resolution/--channels")
    print_result(evaluate_tokenizer(tok, ds, args.n, bf16=args.bf16, show_progress=not args.quiet), args.json)
    return 0


def cmd_tokenize(args) -> int:
    from ..jobs import pick_device
    from ..tokenizer import load
    from ..tokens import write_token_cache
    tok = load(args.tokenizer, pick_device(args.device))
    ds = _load(args, args.split)
    t0 = time.time()
    cache = write_token_cache(tok, ds, args.out, hflip=args.hflip, batch_size=args.batch_size,
                              bf16=args.bf16, tokenizer_name=str(args.tokenizer),
                              show_progress=not args.quiet)
    info(f"wrote {len(cache)} x {cache.tokens.shape[1]} views x {cache.seq_len} tokens to {args.out} "
         f"in {time.time() - t0:.1f}s")
    return 0

