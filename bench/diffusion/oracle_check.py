"""Scheduler arithmetic check: fed the exact model output (v or eps) of one fixed image, every
sampler configuration of sampling.py must land on that image. Prints the max abs error per
(scheduler, x_0 clipping); a model-free check, seconds on a CPU.

    python bench/diffusion/oracle_check.py [--config runs/diffusion/unet-v-lr1e-3/model/config.json] [--steps 50]
"""
from __future__ import annotations

import argparse
import json

import torch

from common import config_from_dict
from sampling import SCHEDULERS, make_scheduler


def oracle_error(cfg, scheduler: str, steps: int, clip: bool, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(1, 1, 32, 32, generator=g) * 2 - 1
    x = torch.randn(1, 1, 32, 32, generator=g)
    sch = make_scheduler(scheduler, cfg, steps, clip)
    for t in sch.timesteps:
        a, s = sch.alphas_cumprod[int(t)].sqrt(), (1 - sch.alphas_cumprod[int(t)]).sqrt()
        eps = (x - a * x0) / s
        out = a * eps - s * x0 if cfg.prediction_type == "v_prediction" else eps
        x = sch.step(out, t, x).prev_sample
    return float((x - x0).abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="runs/diffusion/unet-v-lr1e-3/model/config.json")
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args()
    cfg = config_from_dict(json.load(open(a.config)))
    for name in SCHEDULERS:
        for clip in (True, False):
            print(f"{name} steps={a.steps} clip={clip} prediction={cfg.prediction_type}: "
                  f"max |x - x0| = {oracle_error(cfg, name, a.steps, clip):.2e}")


if __name__ == "__main__":
    main()
