"""Named generation strategies, and the one place a user's strategy string becomes a `Strategy`.

    maskgit[:LAMBDA,K]        MaskGIT's heuristic (the paper's Table 1 row): r = cos(pi t / 2T),
                              tau1 = 1, tau2 = LAMBDA (T - t + 1) / T, s = K t / T
    enat[:TAU,TAU2,CFG]       ENAT's released hand-designed schedule (see `enat`; defaults 6, 1.5, 2.5)
    halton[:W,M0,M1,RAND]     the Halton scheduler (Besnier et al., ICLR 2025): tokens revealed in a
                              2-D Halton order, arccos count schedule, constant guidance W,
                              logits multiplied by M linear from M0 to M1 (tau1 = 1 / M), the
                              order's start randomised per image if RAND = 1; defaults 2, 1, 1.2, 1
                              are the published sampler's (valeoai/Halton-MaskGIT's README, demo
                              and app: w = 2, sm_temp 1 -> 1.2, randomize); `halton:1,1,1,0` is the
                              plain fixed-order sampler
    amused[:G,T0,T1]          diffusers' aMUSEd scheduler and pipeline defaults (guidance g = 10,
                              re-masking temperature linspace(2, 0, T); see `amused`)
    autonat-imagenet-t8       the authors' released AutoNAT-L strategy (ImageNet-256, T = 8)
    autonat                   the strategy searched for *this model* (`T{steps}.json` in the model's
                              strategies directory, written by `autonat search`)
    PATH.json | PATH.yaml     a strategy file (autonat JSON, or the authors' YAML keys)

`resolve_strategy` is used by every entry point (CLI options, Python API, demo), so a spec that
works in one place works in all of them.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .io import AutonatError
from .strategy import Strategy, from_official

# AutoNAT-L, ImageNet-256, T=8: the strategy the authors released with their checkpoint
# (LeapLabTHU/ImprovedNAT configs; official YAML keys, see `autonat.strategy`).
AUTONAT_IMAGENET_T8 = {
    "manual_ratios": [0.95316, 0.87954, 0.79402, 0.74600, 0.62498, 0.40732, 0.26066],
    "manual_temp": [2.4049, 2.4776, 1.1917, 0.76854, 1.0673, 0.93537, 0.78438],
    "manual_samp_temp": [2.8999, 1.8673, 1.1444, 1.3796, 1.4700, 1.3761, 1.7082, 0.71331],
    "manual_cfg": [1e-4, 1e-4, 1e-4, 0.91513, 1.6160, 1.1946, 1.3832, 1.2268],
}


def maskgit(steps: int, remask_temperature: float = 1.0, guidance_scale: float = 1.0) -> Strategy:
    """The heuristic row of the paper's Table 1:
    r(t) = cos(pi t / 2T), tau1 = 1, tau2(t) = lambda (T - t + 1) / T, s(t) = k t / T.
    Defaults lambda = 1, k = 1 are the released search's initialisation (tau2 linear from 1 to 1/T,
    s = linspace(0, 1, T+1)[1:])."""
    T = steps
    t = np.arange(1, T + 1)
    r = np.cos(np.pi * t / (2 * T))
    r[-1] = 0.0
    return Strategy(r=tuple(r), tau1=(1.0,) * T, tau2=tuple(remask_temperature * (T - t + 1) / T),
                    s=tuple(guidance_scale * t / T), name=f"maskgit-T{T}")


def halton(steps: int, guidance: float = 2.0, mult_start: float = 1.0, mult_end: float = 1.2,
           randomize: float = 1) -> Strategy:
    """The Halton scheduler: after step t, N (2/pi) arcsin(t / T) tokens are revealed (truncated,
    at least t), in the Halton order of the token grid, whatever their confidence; sampling
    multiplies the logits by m_t, linear from `mult_start` to `mult_end` (tau1 = 1 / m_t); the
    guidance is constant, l = l_c + W (l_c - l_u) (the published (1 + w) l_c - w l_u). With
    `randomize` = 1 each image's order starts at a random place of the sequence (order
    `halton-random`, the published `randomize`), with 0 every image uses the same order.
    tau2 is unused (0). Defaults: the published sampler's demo settings (w = 2, 1 -> 1.2,
    randomised); its FID tables used w = 0.5-1.5 by model size at 32 steps."""
    if min(mult_start, mult_end) <= 0:
        raise AutonatError("halton: the logit multipliers must be > 0")
    if randomize not in (0, 1):
        raise AutonatError(f"halton: RAND must be 0 (fixed order) or 1 (random start per image), got {randomize:g}")
    T = steps
    t = np.arange(1, T + 1)
    r = 1.0 - np.arcsin(t / T) / (np.pi / 2)
    r[-1] = 0.0
    m = np.linspace(mult_start, mult_end, T)
    return Strategy(r=tuple(np.clip(r, 0.0, 1.0)), tau1=tuple(1.0 / m), tau2=(0.0,) * T,
                    s=(float(guidance),) * T, order="halton-random" if randomize else "halton",
                    name=f"halton-T{T}")


def enat(steps: int, samp_temp: float = 6.0, mask_temp: float = 1.5, cfg: float = 2.5) -> Strategy:
    """ENAT's released hand-designed schedule (ENAT-L, ImageNet-256 defaults): after step t = 1..T,
    floor(N cos(pi t / 2T)) tokens stay masked (no clamps); tau1 = max(samp_temp (1 - t/T), 1e-3);
    tau2 = mask_temp (1 - t/T); a lagged guidance ramp s = cfg (t - 1) / T; the unconditional pass
    runs at every step."""
    T = steps
    t = np.arange(1, T + 1)
    r = np.cos(np.pi * t / (2 * T))
    r[-1] = 0.0
    return Strategy(r=tuple(r), tau1=tuple(np.maximum(samp_temp * (1 - t / T), 1e-3)),
                    tau2=tuple(mask_temp * (1 - t / T)), s=tuple(cfg * (t - 1) / T),
                    rounding="floor-unclamped", always_uncond=True, name=f"enat-T{T}")


def amused(steps: int, guidance: float = 10.0, temp_start: float = 2.0, temp_end: float = 0.0) -> Strategy:
    """diffusers' AmusedScheduler + AmusedPipeline defaults (aMUSEd, the open Muse): after step
    t = 1..T, floor(N cos(pi t / 2T)) tokens stay masked, clamped to [1, #masked - 1] (autonat's
    `floor` rule); tokens drawn at temperature 1; Gumbel re-masking with temperature
    linspace(temp_start, temp_end, T); guidance g = `guidance` (the pipeline's guidance_scale,
    s = g - 1, computed in Muse's form). r and tau2 are the float32 numbers the scheduler uses."""
    import torch
    T = steps
    ratio = (torch.arange(T).view(T, 1) + 1) / T                   # the scheduler's (step_idx + 1) / T
    r = torch.cos(ratio * math.pi / 2).flatten().tolist()
    r[-1] = 0.0
    tau2 = torch.linspace(temp_start, temp_end, T).tolist()
    s = max(float(guidance) - 1.0, 0.0)                              # the pipeline guides only when g > 1
    return Strategy(r=tuple(r), tau1=(1.0,) * T, tau2=tuple(tau2), s=(s,) * T, guidance="muse", rounding="floor-float32",
                    name=f"amused-T{T}")


def autonat_imagenet_t8() -> Strategy:
    return replace(from_official(AUTONAT_IMAGENET_T8), name="autonat-imagenet-t8")


# name -> (builder(steps, *numbers), its spelling with the numbers it takes after the colon)
PRESETS: dict[str, tuple[Callable[..., Strategy], str]] = {
    "maskgit": (maskgit, "maskgit[:LAMBDA,K]"),
    "halton": (halton, "halton[:W,M0,M1,RAND]"),
    "enat": (enat, "enat[:TAU1,TAU2,CFG]"),
    "amused": (amused, "amused[:G,T0,T1]"),
}
# The hand settings people try first, both token orders (each spec resolves for any T). The
# generation search screens them before searching (`SearchConfig.screen = "hand"`), and
# bench/hand_grid.py evaluates them on fresh seeds: the bar a searched strategy must clear.
HAND_GRID = ("maskgit", "maskgit:1,3", "maskgit:3,3", "enat", "enat:3,1.5,2.5",
             "halton", "halton:1,1,1,0", "halton:1,1,1.5,0", "halton:2,1,1.5,0", "halton:1,1.2,2,0",
             "halton:1,1,1,1", "halton:1,1,1.2,1")      # the last two: randomised start, guidance 1

FIXED = {"autonat-imagenet-t8": autonat_imagenet_t8}


def searched_strategy(folder: str | Path | None, steps: int, model: str = "this model") -> Strategy:
    """The strategy `autonat search` found for a model at `steps` steps (`T{steps}.json`)."""
    have = sorted(p.stem for p in Path(folder).glob("T*.json")) if folder and Path(folder).is_dir() else []
    path = Path(folder) / f"T{steps}.json" if folder else None
    if path is None or not path.is_file():
        raise AutonatError(
            f"no searched 'autonat' strategy for {steps} steps for {model} (available: "
            f"{', '.join(have) or 'none'}); run `autonat search --only generation --model {model} "
            f"--steps {steps}` (it installs the result into the model's strategies/), or use "
            f"--strategy maskgit, halton, or a strategy file")
    return Strategy.load(path)


def resolve_strategy(spec: str | Strategy, steps: int | None = None, strategies_dir: str | Path | None = None,
                     model: str = "this model") -> Strategy:
    """A Strategy from a preset spec, a file path, or a Strategy (see module docstring).
    `strategies_dir` is where `autonat` looks (the model's own strategies; None: none)."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise AutonatError(f"steps must be a whole number >= 1, got {steps!r}")
    if isinstance(spec, Strategy):
        st = spec
    else:
        spec = str(spec).strip()
        name, _, args = spec.partition(":")
        if name in PRESETS:
            builder, usage = PRESETS[name]
            max_args = usage.count(",") + 1
            if steps is None:
                raise AutonatError(f"the {name} preset needs a number of steps (--steps)")
            try:
                nums = [float(a) for a in args.split(",")] if args else []
            except ValueError:
                nums = None
            if nums is None or len(nums) > max_args or not all(math.isfinite(v) for v in nums):
                raise AutonatError(f"bad preset {spec!r}: write {usage} (up to {max_args} finite numbers after "
                                   f"the colon)")
            st = builder(steps, *nums)
        elif spec in FIXED:
            st = FIXED[spec]()
        elif spec == "autonat":
            if steps is None:
                raise AutonatError("strategy 'autonat' needs a number of steps (--steps)")
            st = searched_strategy(strategies_dir, steps, model)
        elif Path(spec).suffix in (".json", ".yaml", ".yml") or Path(spec).exists():
            st = Strategy.load(spec)
        else:
            raise AutonatError(f"unknown strategy {spec!r}: use {', '.join([*PRESETS, *FIXED, 'autonat'])} "
                               f"or a path to a .json/.yaml file")
    if steps is not None and st.steps != steps:
        raise AutonatError(f"strategy {st.name or spec!r} has {st.steps} steps but {steps} were "
                           f"requested (use Strategy.interpolate to transfer it)")
    return st
