"""Model-free checks of the diffusion peer's solvers (`pixel_diffusion`), seconds on a CPU.

1. Exact target: fed the exact model output (v or eps) that leads to one fixed in-range image,
   every (scheduler, x_0 clipping) configuration must land on that image.
2. Agreement under clipping: with the *exact denoiser* of a small labelled set of images
   (posterior mean E[x_0 | x_t], conditional and unconditional) and guidance w = 2, the guided
   x_0 leaves [-1, 1] at high noise, so clipping acts. DDIM and DPM-Solver++ then integrate the
   same clipped ODE and must end on the same images. Check 1 cannot see a solver that pairs
   clip(x_0) with the unclipped eps (clipping never acts on an in-range target); check 2 can:
   diffusers' default DDIM step ends up to 2.0 away, `solver_step` agrees to < 1e-4.
"""
from __future__ import annotations

import torch

from .pixel_diffusion import ScheduleConfig, make_scheduler, solver_step


def _alpha_sigma(sch, t) -> tuple[torch.Tensor, torch.Tensor]:
    abar = sch.alphas_cumprod[int(t)]
    return abar.sqrt(), (1 - abar).sqrt()


def _model_output(schedule: ScheduleConfig, x: torch.Tensor, x0: torch.Tensor, a, s) -> torch.Tensor:
    """The output a perfect model gives at x_t when its x_0 prediction is x0 (v or eps)."""
    eps = (x - a * x0) / s
    return a * eps - s * x0 if schedule.prediction_type == "v_prediction" else eps


def oracle_error(schedule: ScheduleConfig, scheduler: str, steps: int, clip: bool, seed: int = 0) -> float:
    """Check 1: max |x_final - x0| when the model output always points at one fixed image x0."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(1, 1, 32, 32, generator=g) * 2 - 1
    x = torch.randn(1, 1, 32, 32, generator=g)
    sch = make_scheduler(scheduler, schedule, steps, clip)
    for t in sch.timesteps:
        x = solver_step(sch, scheduler, _model_output(schedule, x, x0, *_alpha_sigma(sch, t)), t, x)
    return float((x - x0).abs().max())


def exact_denoiser(data: torch.Tensor, x: torch.Tensor, a, s, allowed: torch.Tensor) -> torch.Tensor:
    """E[x_0 | x_t = x] when x_0 is uniform over the rows of data [K, D] that `allowed` [B, K]
    permits (x_t = a x_0 + s eps): a softmax over -|x - a y_k|^2 / 2 s^2. x [B, D] -> [B, D]."""
    logits = -((x[:, None, :] - a * data[None]) ** 2).sum(-1) / (2 * s * s)
    return torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1) @ data


def solve_exact(schedule: ScheduleConfig, scheduler: str, steps: int, w: float, seed: int = 0,
                step=solver_step, n_data: int = 40, n_classes: int = 4, batch: int = 64,
                side: int = 8) -> torch.Tensor:
    """Final samples [batch, 1, side, side] of `scheduler` (x_0 clipping on) driven by the exact
    guided denoiser of n_data random images in n_classes classes; the noise depends on seed only."""
    g = torch.Generator().manual_seed(seed)
    data = (torch.rand(n_data, side * side, generator=g) * 2 - 1)
    data_labels = torch.arange(n_data) % n_classes
    x = torch.randn(batch, 1, side, side, generator=g)
    labels = torch.arange(batch) % n_classes
    everything = torch.ones(batch, n_data, dtype=torch.bool)
    same_class = labels[:, None] == data_labels[None]
    sch = make_scheduler(scheduler, schedule, steps, clip=True)
    for t in sch.timesteps:
        a, s = _alpha_sigma(sch, t)
        flat = x.flatten(1)
        x0_u = exact_denoiser(data, flat, a, s, everything)
        x0_c = exact_denoiser(data, flat, a, s, same_class)
        x0 = (x0_u + w * (x0_c - x0_u)).view_as(x)      # guidance is linear in x_0, eps and v alike
        x = step(sch, scheduler, _model_output(schedule, x, x0, a, s), t, x)
    return x


def agreement_error(schedule: ScheduleConfig, steps: int = 50, w: float = 2.0, step=solver_step) -> float:
    """Check 2: max |DDIM - DPM-Solver++| over the exact-denoiser samples (same noise)."""
    return float((solve_exact(schedule, "ddim", steps, w, step=step)
                  - solve_exact(schedule, "dpmpp2m", steps, w, step=step)).abs().max())
