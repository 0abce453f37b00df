"""Why the MaskGIT heuristic got worse on the perceptual tokens: one knob at a time.

For each model (e.g. the U-ViT of rebuild 1, pixel + edge tokenizer, and of rebuild 2, perceptual
tokenizer), evaluates at T steps on one fresh seed set: the `maskgit` preset, `enat`, and MaskGIT
with ONE of its schedules replaced by ENAT's (tau1, tau2, s, or the counting/guidance rules). The
knob whose swap closes most of the gap is the one the new tokens punish. Also prints the mean
entropy (nats) of the first step's conditional predictions, over 1000 class-balanced rows: how
spread the model's per-token distributions are when nothing is known.

    python bench/maskgit_knobs.py --model runs/old-r1/uvit-small --tokenizer runs/old-r1/tokenizer \\
        --model fashion-mnist --tokenizer "" --steps 4 --n 2000 --seed 3000000 --out runs/maskgit_knobs.jsonl

One JSON line per evaluation is appended to --out (re-running skips rows already there).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from autonat.bundle import Bundle
from autonat.conditioning import ClassCondition
from autonat.evaluation import EvalConfig, evaluate_model
from autonat.metrics.reference import load_extractor, reference_features
from autonat.presets import enat, maskgit


def variants(T: int) -> dict:
    m, e = maskgit(T), enat(T)
    return {"maskgit": m, "maskgit + enat tau1": replace(m, tau1=e.tau1),
            "maskgit + enat tau2": replace(m, tau2=e.tau2), "maskgit + enat s": replace(m, s=e.s),
            "maskgit + enat rules": replace(m, rounding=e.rounding, always_uncond=e.always_uncond),
            "enat": e}


@torch.no_grad()
def first_step_entropy(bundle: Bundle, rows: int = 1000) -> float:
    model = bundle.inference_model(bf16=False)
    n = model.seq_len
    ids = torch.full((rows, n), model.mask_id, dtype=torch.long)
    labels = torch.arange(rows) % len(bundle.class_names)
    query = torch.arange(n).expand(rows, n)
    logits, _ = model.decode_step(ids, ClassCondition(labels, len(bundle.class_names)), query, None)
    p = torch.log_softmax(logits.float(), -1)
    return float(-(p.exp() * p).sum(-1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--tokenizer", action="append", required=True, help="one per --model ('' = the model's)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=3_000_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    net = load_extractor("fmnist", None)
    ref = reference_features(net, show_progress=False)
    for model, tok in zip(args.model, args.tokenizer):
        bundle = Bundle.load(model, tokenizer=tok or None)
        done = [json.loads(x) for x in out.read_text().splitlines()] if out.is_file() else []
        print(json.dumps({"model": model, "first_step_entropy_nats": round(first_step_entropy(bundle), 4)}), flush=True)
        for name, st in variants(args.steps).items():
            if any(r["model"] == model and r["variant"] == name and r["n"] == args.n and r["seed"] == args.seed
                   and r["steps"] == args.steps for r in done):
                continue
            r = evaluate_model(bundle, st, net, EvalConfig(n=args.n, seed=args.seed, precision_recall=False,
                                                           count_flops=False), ref, show_progress=False)
            row = {"model": model, "variant": name, "steps": args.steps, "n": args.n, "seed": args.seed,
                   "fid": r["fid"]}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
