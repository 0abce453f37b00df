"""DDIM vs DPM-Solver++ on a trained model, same noise and labels: how far apart the final images
are, with DDIM stepped as sampling.solver_step does and with diffusers' default DDIM step
(clip(x_0) paired with the unclipped eps: the bug behind DDIM's FID 117.85, docs/RESULTS.md).
Writes a grid (columns: DPM-Solver++, DDIM, DDIM with the default step). Seconds on a CPU.

    python bench/diffusion/solver_compare.py --model runs/diffusion/unet-v-lr1e-3/model --out runs/ddim-diag/compare.png
"""
from __future__ import annotations

import argparse

import torch

from common import NUM_CLASSES, load_model_dir, to_uint8_28
from evaluate import save_grid
from sampling import diffusers_default_step, inference_model, initial_noise, sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a model dir written by train.py (config.json + model.safetensors)")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="PNG grid (optional)")
    a = p.parse_args()
    if a.n < 1 or a.steps < 1:
        p.error("--n and --steps must be >= 1")
    model, cfg, _ = load_model_dir(a.model)
    net = inference_model(model, "bf16")
    labels = torch.arange(a.n) % NUM_CLASSES
    noise = initial_noise(a.seed, range(a.n), cfg.model.sample_size)
    runs = {"dpmpp2m": sample(net, cfg, "dpmpp2m", a.steps, a.guidance, labels, noise),
            "ddim": sample(net, cfg, "ddim", a.steps, a.guidance, labels, noise),
            "ddim (diffusers default step)": sample(net, cfg, "ddim", a.steps, a.guidance, labels, noise,
                                                    step=diffusers_default_step)}
    ref = runs["dpmpp2m"]
    for name, x in runs.items():
        print(f"{name:30s} mean |x - dpmpp2m| = {float((x - ref).abs().mean()):.4f}   "
              f"mean of the top 3 rows (background) = {float(x[:, :, :3].mean()):+.3f}")
    if a.out:   # one column per solver, the same samples down each column
        images = torch.cat([to_uint8_28(x) for x in runs.values()])
        save_grid(images, torch.arange(len(runs)).repeat_interleave(a.n), a.out, per_class=a.n)
        print(f"grid: {a.out}")


if __name__ == "__main__":
    main()
