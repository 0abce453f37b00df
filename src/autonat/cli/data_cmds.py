"""`autonat tokenizer train|eval` and `autonat tokenize`."""
from __future__ import annotations

from .common import info, print_json, print_result, show_progress
from .options import add_config_args, config_from_args


def register(sub, common) -> None:
    from ..tokenizer.model import TokenizerConfig
    from ..tokenizer.train import TokenizerTrainConfig
    from ..tokens import TokenizeConfig
    tok = sub.add_parser("tokenizer", help="train or evaluate a VQ tokenizer")
    tsub = tok.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    tsub.required = True

    p = tsub.add_parser("train", parents=[common],
                        help="train a tokenizer (progress bar, periodic eval, checkpoints, --resume)")
    p.add_argument("--out", required=True, help="output directory (tokenizer + checkpoint + log.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--download", action="store_true",
                   help="download Fashion-MNIST from the official source if absent (sha256-verified)")
    add_config_args(p, TokenizerTrainConfig, title="training")
    add_config_args(p, TokenizerConfig, title="architecture")
    p.set_defaults(func=cmd_tokenizer_train)

    p = tsub.add_parser("eval", parents=[common],
                        help="reconstruction metrics (psnr, mse, codebook_usage, perplexity)")
    p.add_argument("--tokenizer", default="fashion-mnist", help="shipped name or directory (default: %(default)s)")
    p.add_argument("--n", type=int, default=None, help="first n images (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_args(p, TokenizeConfig, exclude=("tokenizer", "hflip", "batch_size", "text_encoder"))
    p.set_defaults(func=cmd_tokenizer_eval, split="test")

    p = sub.add_parser("tokenize", parents=[common], help="write the token cache of a dataset split (resumable)")
    p.add_argument("--out", required=True, help="cache directory")
    add_config_args(p, TokenizeConfig)
    p.set_defaults(func=cmd_tokenize)


def cmd_tokenizer_train(args) -> int:
    from ..tokenizer.model import TokenizerConfig
    from ..tokenizer.train import TokenizerTrainConfig, train_and_evaluate
    metrics = train_and_evaluate(config_from_args(TokenizerConfig, args), config_from_args(TokenizerTrainConfig, args),
                                 args.out, resume=args.resume, download=args.download,
                                 show_progress=show_progress(args), log=info)
    info(f"tokenizer saved to {args.out}")
    print_json(metrics)
    return 0


def cmd_tokenizer_eval(args) -> int:
    from ..data import load_dataset
    from ..io import AutonatError
    from ..jobs import pick_device
    from ..tokenizer import load as load_tokenizer
    from ..tokenizer.train import evaluate_tokenizer
    tok = load_tokenizer(args.tokenizer, pick_device(args.device))
    ds = load_dataset(args.data, args.split, resolution=args.resolution or tok.config.image_size,
                      channels=args.channels or tok.config.channels, download=args.download, skip_bad=args.skip_bad,
                      background=args.background)
    if args.n is not None and args.n < 1:
        raise AutonatError(f"--n must be >= 1, got {args.n}")
    if ds.image_shape != (tok.config.channels, tok.config.image_size, tok.config.image_size):
        raise AutonatError(f"images are {list(ds.image_shape)} but the tokenizer takes "
                           f"{[tok.config.channels, tok.config.image_size, tok.config.image_size]}")
    print_result(evaluate_tokenizer(tok, ds, args.n, bf16=args.bf16, show_progress=show_progress(args)), args.json)
    return 0


def cmd_tokenize(args) -> int:
    import time

    from ..tokens import TokenizeConfig, tokenize
    t0 = time.time()
    cache = tokenize(config_from_args(TokenizeConfig, args), args.out, show_progress=show_progress(args), log=info)
    info(f"wrote {len(cache)} x {cache.tokens.shape[1]} views x {cache.seq_len} tokens to {args.out} "
         f"in {time.time() - t0:.1f}s")
    return 0
