"""`autonat train` and `autonat sample`."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..io import AutonatError
from .common import add_runtime_args, info, print_json


def register(sub) -> None:
    from ..training import TrainConfig
    d = TrainConfig()
    p = sub.add_parser("train", help="train a NAT (U-ViT or ENAT) on a token cache; torchrun-ready",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tokens", required=True, help="token cache directory (from `autonat tokenize`)")
    p.add_argument("--model", default="small",
                   help="size name (tiny, small, S, B, L) for the U-ViT, or enat-SIZE for ENAT")
    p.add_argument("--mask-dist", default=d.mask_dist, help="p(r): beta:A,B | arccos | fixed:R | uniform")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/checkpoint")
    p.add_argument("--steps", type=int, default=d.max_steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch (split across ranks)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default=d.lr_schedule)
    p.add_argument("--warmup", type=int, default=d.warmup_steps)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--ema", type=float, default=d.ema_decay, help="EMA decay")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--label-dropout", type=float, default=d.label_dropout)
    p.add_argument("--reuse-prob", type=float, default=d.reuse_prob, help="ENAT: reuse-path probability")
    p.add_argument("--no-hflip", action="store_true", help="never use the mirrored token view")
    p.add_argument("--init-from", default="", help="warm start from a model directory")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    add_runtime_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate images (PNGs, a grid, tokens.npz, optional trace)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="fashion-mnist", help="shipped name or model directory")
    p.add_argument("--tokenizer", default=None, help="shipped name or directory (default: the model's)")
    p.add_argument("--strategy", default="maskgit",
                   help="maskgit | maskgit:LAMBDA,K | autonat | autonat-imagenet-t8 | PATH.json/.yaml")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=None, help="override s(t) with a constant")
    p.add_argument("--classes", default=None,
                   help="comma-separated class ids or names (default: all classes, round-robin); "
                        "'null' for unconditional")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--trace", action="store_true", help="also write trace.json (+ a decoding strip)")
    p.add_argument("--no-reuse", action="store_true", help="ENAT: recompute every step (no feature reuse)")
    add_runtime_args(p)
    p.set_defaults(func=cmd_sample)


def cmd_train(args) -> int:
    from ..models.registry import parse_model_name
    from ..training import TrainConfig, train
    arch, size = parse_model_name(args.model)
    cfg = TrainConfig(tokens=str(args.tokens), arch=arch, size=size, mask_dist=args.mask_dist,
                      batch_size=args.batch_size, max_steps=args.steps, lr=args.lr,
                      lr_schedule=args.lr_schedule, warmup_steps=args.warmup,
                      weight_decay=args.weight_decay, ema_decay=args.ema,
                      label_smoothing=args.label_smoothing, label_dropout=args.label_dropout,
                      hflip=not args.no_hflip, reuse_prob=args.reuse_prob, init_from=args.init_from,
                      log_every=args.log_every, ckpt_every=args.ckpt_every, seed=args.seed,
                      bf16=args.bf16, device=args.device)
    t0 = time.time()
    out = train(cfg, args.out, resume=args.resume, show_progress=not args.quiet)
    from .. import distributed as D
    if D.is_main():
        info(f"model saved to {out} ({time.time() - t0:.0f}s)")
    return 0


def parse_classes(spec: str | None, class_names: list[str], num_classes: int, n: int) -> list[int]:
    """Class ids for n samples: round-robin over the given classes (ids or names) or all."""
    if spec is None:
        chosen = list(range(num_classes))
    else:
        chosen = []
        lower = [c.lower() for c in class_names]
        for tok in (t.strip() for t in spec.split(",") if t.strip()):
            if tok.lower() in ("null", "none", "uncond"):
                chosen.append(num_classes)
            elif tok.lstrip("-").isdigit():
                k = int(tok)
                if not 0 <= k < num_classes:
                    raise AutonatError(f"class id {k} out of range [0, {num_classes})")
                chosen.append(k)
            elif tok.lower() in lower:
                chosen.append(lower.index(tok.lower()))
            else:
                raise AutonatError(f"unknown class {tok!r}; classes: {', '.join(class_names) or num_classes}")
        if not chosen:
            raise AutonatError("--classes is empty")
    return [chosen[i % len(chosen)] for i in range(n)]


def cmd_sample(args) -> int:
    import numpy as np
    import torch

    from ..pipeline import Pipeline
    from ..plots import save_grid, save_image, save_strip
    if args.n < 1:
        raise AutonatError("--n must be >= 1")
    pipe = Pipeline.from_pretrained(args.model, tokenizer=args.tokenizer, device=args.device)
    labels = parse_classes(args.classes, pipe.class_names, pipe.num_classes, args.n)
    t0 = time.perf_counter()
    out = pipe(class_labels=labels, num_steps=args.steps, strategy=args.strategy, guidance=args.guidance,
               generator=torch.Generator().manual_seed(args.seed), return_trace=args.trace,
               batch_size=args.batch_size, bf16=args.bf16, reuse=not args.no_reuse,
               progress=not args.quiet)
    seconds = time.perf_counter() - t0
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(out.images):
        save_image(img, dest / f"{i:05d}.png")
    save_grid(out.images, dest / "grid.png", ncol=min(10, len(out.images)))
    np.savez(dest / "tokens.npz", tokens=out.tokens.cpu().numpy(), labels=np.asarray(labels))
    summary = {"out": str(dest), "n": args.n, "steps": args.steps, "strategy": out.strategy.name,
               "seconds": round(seconds, 3), "images_per_second": round(args.n / seconds, 2)}
    if args.trace:
        trace = {"masked_counts": out.masked_counts, "strategy": out.strategy.to_dict(),
                 "labels": labels,
                 "steps": [{"ids": s["ids"].tolist(), "mask": s["mask"].int().tolist()} for s in out.trace]}
        (dest / "trace.json").write_text(json.dumps(trace))
        save_strip(pipe, out, dest / "strip.png")
        summary["masked_counts"] = out.masked_counts
    print_json(summary)
    return 0
