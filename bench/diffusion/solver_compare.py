"""DDIM vs DPM-Solver++ on a trained model, same noise and labels: how far apart the final images
are, with DDIM stepped as `solver_step` does and with diffusers' default DDIM step (clip(x_0)
paired with the unclipped eps: the bug behind DDIM's FID 117.85, docs/RESULTS.md). Writes a grid
(columns: DPM-Solver++, DDIM, DDIM with the default step). Seconds on a CPU.

    python bench/diffusion/solver_compare.py --model runs/diffusion/unet-v-lr1e-3/model --out runs/ddim-diag/compare.png
"""
from __future__ import annotations

import argparse

import torch

from autonat.baselines.pixel_diffusion import (diffusers_default_step, inference_copy, initial_noise, load_unet,
                                               sample, to_uint8_28)
from autonat.images import labelled_grid
from autonat.pipeline import to_pil


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a model dir written by train.py")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="PNG grid (optional)")
    a = p.parse_args()
    if a.n < 1 or a.steps < 1:
        p.error("--n and --steps must be >= 1")
    model, schedule, _ = load_unet(a.model)
    net = inference_copy(model, "bf16")
    null = model.config.num_class_embeds - 1
    labels = torch.arange(a.n) % null
    noise = initial_noise(a.seed, range(a.n), model.config.sample_size)
    runs = {
        "dpmpp2m": sample(net, schedule, "dpmpp2m", a.steps, a.guidance, labels, noise, null),
        "ddim": sample(net, schedule, "ddim", a.steps, a.guidance, labels, noise, null),
        "ddim (diffusers default step)": sample(net, schedule, "ddim", a.steps, a.guidance, labels, noise, null,
                                                step=diffusers_default_step)}
    ref = runs["dpmpp2m"]
    for name, x in runs.items():
        print(f"{name:30s} mean |x - dpmpp2m| = {float((x - ref).abs().mean()):.4f}   "
              f"mean of the top 3 rows (background) = {float(x[:, :, :3].mean()):+.3f}")
    if a.out:   # one column per solver, the same samples down each column
        cells = [to_pil(to_uint8_28(x[i:i + 1]))[0] for i in range(a.n) for x in runs.values()]
        labelled_grid(cells, len(runs), col_labels=list(runs)).save(a.out)
        print(f"grid: {a.out}")


if __name__ == "__main__":
    main()
