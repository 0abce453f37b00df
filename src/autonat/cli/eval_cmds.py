"""`autonat evaluate`, `autonat featnet train|eval`, `autonat stats export`."""
from __future__ import annotations

import argparse
import time

from ..io import AutonatError
from .common import add_runtime_args, info, print_json, print_result


def register(sub) -> None:
    from ..evaluation import EvalConfig
    d = EvalConfig()
    p = sub.add_parser("evaluate", help="FID / IS / precision-recall, FLOPs and speed of a generator",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="fashion-mnist", help="shipped name or model directory")
    p.add_argument("--tokenizer", default=None, help="shipped name or directory (default: the model's)")
    p.add_argument("--strategy", default="maskgit", help="maskgit | autonat | PATH.json (see `sample`)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=None, help="override s(t) with a constant")
    p.add_argument("--n", type=int, default=d.n)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--noise", choices=("indexed", "sequential"), default=d.noise,
                   help="indexed = common random numbers keyed by (seed, sample, step); "
                        "sequential = one generator in call order")
    p.add_argument("--no-reuse", action="store_true", help="ENAT: recompute every step")
    p.add_argument("--features", choices=("fmnist", "inception"), default="fmnist",
                   help="feature network: the shipped Fashion-MNIST net, or InceptionV3 (pytorch-fid weights)")
    p.add_argument("--inception-weights", default=None,
                   help="pytorch-fid InceptionV3 weights file (pt_inception-2015-12-05-6726825d.pth)")
    p.add_argument("--featnet", default=None, help="feature-network directory (default: shipped)")
    p.add_argument("--ref-data", default=d.reference_data, help="real data for reference statistics")
    p.add_argument("--ref-split", default=d.reference_split)
    p.add_argument("--ref-stats", default=None, help="pytorch-fid .npz (mu, sigma) to use instead")
    p.add_argument("--no-pr", action="store_true", help="skip precision/recall")
    p.add_argument("--kid", action="store_true", help="also compute KID")
    p.add_argument("--real", action="store_true", help="real-vs-real floor: test images vs train stats")
    p.add_argument("--reconstructions", action="store_true", help="tokenizer rFID on test images")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    add_runtime_args(p)
    p.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("featnet", help="train or evaluate the Fashion-MNIST feature network (FID features)")
    fsub = f.add_subparsers(dest="featnet_command", metavar="ACTION")
    fsub.required = True
    from ..metrics.features import FeatureNetTrainConfig
    t = FeatureNetTrainConfig()
    p = fsub.add_parser("train", help="train the classifier whose features define fid_fmnist",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=t.data)
    p.add_argument("--epochs", type=int, default=t.epochs)
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--seed", type=int, default=t.seed)
    add_runtime_args(p)
    p.set_defaults(func=cmd_featnet_train)
    p = fsub.add_parser("eval", help="test accuracy of a feature network")
    p.add_argument("--featnet", default="fashion-mnist")
    p.add_argument("--data", default="fashion-mnist")
    add_runtime_args(p, bf16_default=False)
    p.set_defaults(func=cmd_featnet_eval)

    p = sub.add_parser("stats", help="export reference statistics in pytorch-fid npz format (mu, sigma)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--split", default="train")
    p.add_argument("--features", choices=("fmnist", "inception"), default="fmnist")
    p.add_argument("--inception-weights", default=None)
    p.add_argument("--featnet", default=None)
    add_runtime_args(p)
    p.set_defaults(func=cmd_stats)


def _extractor(args, device):
    from ..metrics.reference import load_extractor
    if args.features == "inception":
        return load_extractor("inception", args.inception_weights, device)
    return load_extractor("fmnist", args.featnet, device)


def cmd_evaluate(args) -> int:
    from .. import distributed as D
    from ..evaluation import EvalConfig, evaluate_model, evaluate_real, evaluate_reconstructions
    from ..jobs import pick_device
    from ..metrics.fid import FeatureStats
    if args.n < 2:
        raise AutonatError("--n must be >= 2 (FID needs a covariance)")
    device = D.local_device(pick_device(args.device))
    D.init_from_env(device)
    extractor = _extractor(args, device)
    cfg = EvalConfig(n=args.n, seed=args.seed, batch_size=args.batch_size, noise=args.noise, bf16=args.bf16,
                     reference_data=args.ref_data, reference_split=args.ref_split,
                     precision_recall=not args.no_pr, kid=args.kid)
    t0 = time.perf_counter()
    show = not args.quiet
    if args.real:
        res = evaluate_real(extractor, cfg, show)
    elif args.reconstructions:
        from ..pipeline import Pipeline
        from ..tokenizer import Tokenizer
        if args.tokenizer:
            tok = Tokenizer.from_pretrained(args.tokenizer, device)
        else:
            tok = Pipeline.from_pretrained(args.model, device=device).tokenizer
        res = evaluate_reconstructions(tok, extractor, cfg, show)
    else:
        from ..pipeline import Pipeline, WithoutReuse
        pipe = Pipeline.from_pretrained(args.model, tokenizer=args.tokenizer, device=device)
        st = pipe.strategy(args.strategy, args.steps)
        if args.guidance is not None:
            st = st.with_guidance(args.guidance)
        model = WithoutReuse(pipe.model) if args.no_reuse and pipe.model.arch == "enat" else pipe.model
        ref_feats = None
        if args.ref_stats:
            info("using imported reference statistics (precision/recall skipped)")
            cfg = EvalConfig(**{**cfg.__dict__, "precision_recall": False, "kid": False})
            from ..evaluation import generate, class_balanced_labels, score
            from ..metrics.reference import extract
            import torch
            labels = class_balanced_labels(cfg.n, pipe.num_classes, cfg.seed)
            imgs = generate(model, pipe.tokenizer, st, labels, torch.arange(cfg.n), cfg.seed,
                            cfg.batch_size, cfg.bf16, cfg.noise, show)
            feats, probs = extract(extractor, imgs)
            res = score(feats, probs, None, extractor.metric_name, cfg, FeatureStats.load_npz(args.ref_stats))
            res.update({"n": cfg.n, "steps": st.steps, "seed": cfg.seed})
        else:
            res = evaluate_model(model, pipe.tokenizer, st, extractor, cfg, ref_feats, show)
        res["model_name"] = str(args.model)
        res["reuse"] = not args.no_reuse
    res["seconds_total"] = round(time.perf_counter() - t0, 2)
    if D.is_main():
        print_result(res, args.json)
    return 0


def cmd_featnet_train(args) -> int:
    from ..metrics.features import FeatureNetTrainConfig, train_featnet
    cfg = FeatureNetTrainConfig(data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                seed=args.seed, bf16=args.bf16, device=args.device)
    m = train_featnet(cfg, args.out, show_progress=not args.quiet)
    print_json(m)
    return 0


def cmd_featnet_eval(args) -> int:
    from ..data import load_dataset
    from ..jobs import pick_device
    from ..metrics.features import FeatureNet, accuracy
    net = FeatureNet.from_pretrained(args.featnet, pick_device(args.device))
    test = load_dataset(args.data, "test")
    print_json({"test_accuracy": accuracy(net, test.images, test.labels, args.bf16),
                "feature_dim": net.config.feature_dim, "identity": net.identity})
    return 0


def cmd_stats(args) -> int:
    from ..jobs import pick_device
    from ..metrics.reference import reference_stats
    st = reference_stats(_extractor(args, pick_device(args.device)), args.data, args.split,
                         show_progress=not args.quiet)
    st.save_npz(args.out)
    print_json({"out": args.out, "n": st.n, "dim": int(st.mu.shape[0])})
    return 0
