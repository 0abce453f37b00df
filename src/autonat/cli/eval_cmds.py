"""`autonat evaluate`, `autonat featnet train|eval`, `autonat stats`."""
from __future__ import annotations

import time

from .common import info, print_json, print_result, show_progress
from .options import add_config_args, config_from_args


BACKGROUND_HELP = ("colour transparent pixels of image files are composited on: white, black, gray, #RRGGBB "
                   "or R,G,B (default: %(default)s)")

def register(sub, common) -> None:
    from ..evaluation import EvaluateConfig
    from ..metrics.featnet_train import FeatureNetTrainConfig
    p = sub.add_parser("evaluate", parents=[common],
                       help="FID / IS / precision-recall, FLOPs and speed of a generator")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    add_config_args(p, EvaluateConfig)
    # short spellings (added after the generated flags, whose defaults therefore win)
    p.add_argument("--real", dest="what", action="store_const", const="real", help="same as --what real")
    p.add_argument("--reconstructions", dest="what", action="store_const", const="reconstructions",
                   help="same as --what reconstructions")
    p.add_argument("--ref-data", dest="reference_data", help="same as --reference-data")
    p.add_argument("--ref-split", dest="reference_split", help="same as --reference-split")
    p.add_argument("--ref-stats", dest="reference_stats", help="same as --reference-stats")
    p.add_argument("--no-pr", dest="precision_recall", action="store_false", help="same as --no-precision-recall")
    p.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("featnet", help="train or evaluate a feature network (the FID feature space)")
    fsub = f.add_subparsers(dest="featnet_command", metavar="ACTION")
    fsub.required = True
    p = fsub.add_parser("train", parents=[common],
                        help="train the classifier whose features define fid_<metric> for your data")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    add_config_args(p, FeatureNetTrainConfig)
    p.set_defaults(func=cmd_featnet_train)
    p = fsub.add_parser("eval", parents=[common], help="held-out accuracy of a feature network")
    p.add_argument("--featnet", default="fashion-mnist", help="shipped name or directory (default: %(default)s)")
    p.add_argument("--data", default="fashion-mnist", help="data with a test split (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--background", default="white", help=BACKGROUND_HELP)
    p.set_defaults(func=cmd_featnet_eval)

    p = sub.add_parser("stats", parents=[common],
                       help="export reference statistics in pytorch-fid npz format (mu, sigma)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--data", default="fashion-mnist", help="(default: %(default)s)")
    p.add_argument("--split", default="train", help="(default: %(default)s)")
    p.add_argument("--features", choices=("fmnist", "inception"), default="fmnist", help="(default: %(default)s)")
    p.add_argument("--inception-weights", default="")
    p.add_argument("--featnet", default="")
    p.add_argument("--device", default="auto", help="(default: %(default)s)")
    p.add_argument("--background", default="white", help=BACKGROUND_HELP)
    p.set_defaults(func=cmd_stats)


def cmd_evaluate(args) -> int:
    from .. import distributed as D
    from ..evaluation import EvaluateConfig, run_evaluation
    t0 = time.perf_counter()
    res = run_evaluation(config_from_args(EvaluateConfig, args), show_progress(args), log=info)
    if D.is_main():
        res["seconds_total"] = round(time.perf_counter() - t0, 2)
        print_result(res, args.json)
    return 0


def cmd_featnet_train(args) -> int:
    from ..metrics.featnet_train import FeatureNetTrainConfig, train_featnet
    print_json(train_featnet(config_from_args(FeatureNetTrainConfig, args), args.out, resume=args.resume,
                             show_progress=show_progress(args)))
    return 0


def cmd_featnet_eval(args) -> int:
    from ..data import load_dataset
    from ..jobs import pick_device
    from ..metrics.featnet_train import accuracy
    from ..metrics.features import FeatureNet
    net = FeatureNet.from_pretrained(args.featnet, pick_device(args.device))
    test = load_dataset(args.data, "test", resolution=net.config.image_size, channels=net.config.in_channels,
                        background=args.background)
    print_json({"test_accuracy": accuracy(net, test.images, test.labels), "feature_dim": net.config.feature_dim,
                "metric": net.config.metric, "identity": net.identity})
    return 0


def cmd_stats(args) -> int:
    from ..evaluation import load_feature_extractor
    from ..jobs import pick_device
    from ..metrics.reference import reference_stats
    ext = load_feature_extractor(args.features, args.featnet, args.inception_weights, pick_device(args.device))
    st = reference_stats(ext, args.data, args.split, show_progress=show_progress(args), background=args.background)
    st.save_npz(args.out)
    print_json({"out": args.out, "n": st.n, "dim": int(st.mu.shape[0]), "metric": ext.metric_name})
    return 0
