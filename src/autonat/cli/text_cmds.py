"""`autonat text-encoder train|eval`: autonat's own text encoder for text-to-image models."""
from __future__ import annotations

from .common import print_json, show_progress
from .options import add_config_args, config_from_args


def register(sub, common) -> None:
    from ..text.dual_train import DualTrainConfig
    t = sub.add_parser("text-encoder", help="train or evaluate autonat's own text encoder (a CLIP-style dual "
                                            "encoder on your captions)")
    tsub = t.add_subparsers(dest="text_encoder_command", metavar="ACTION")
    tsub.required = True
    p = tsub.add_parser("train", parents=[common], help="train it on a captioned image folder (metadata.jsonl)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    add_config_args(p, DualTrainConfig, required=("data",))
    p.set_defaults(func=cmd_train)
    p = tsub.add_parser("eval", parents=[common], help="image -> caption retrieval and R-precision on a split")
    p.add_argument("--text-encoder", required=True, help="a directory written by `autonat text-encoder train`")
    p.add_argument("--data", required=True, help="a captioned image folder")
    p.add_argument("--split", default="test", help="(default: %(default)s)")
    p.add_argument("--background", default="white", help="(default: %(default)s)")
    p.set_defaults(func=cmd_eval)


def cmd_train(args) -> int:
    from ..text.dual_train import DualTrainConfig, train_dual_encoder
    print_json(train_dual_encoder(config_from_args(DualTrainConfig, args), args.out, resume=args.resume,
                                  show_progress=show_progress(args)))
    return 0


def cmd_eval(args) -> int:
    from ..data import load_dataset
    from ..io import AutonatError
    from ..text.dual_encoder import DualEncoder
    from ..text.dual_train import retrieval
    model = DualEncoder.from_pretrained(args.text_encoder)
    ds = load_dataset(args.data, args.split, channels=model.config.channels, background=args.background)
    if ds.captions is None:
        raise AutonatError(f"{args.data} ({args.split}) has no captions (metadata.jsonl)")
    print_json(retrieval(model, ds))
    return 0
