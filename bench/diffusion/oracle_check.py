"""Model-free checks of the diffusion peer's solvers (`autonat.baselines.solver_checks`; seconds).

    python bench/diffusion/oracle_check.py [--model runs/diffusion/unet-v-lr1e-3/model] [--steps 50]
"""
from __future__ import annotations

import argparse

from autonat.baselines.pixel_diffusion import SCHEDULERS, ScheduleConfig, load_unet
from autonat.baselines.solver_checks import agreement_error, oracle_error


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="a trained model directory (its schedule and prediction "
                                                 "type); default: ScheduleConfig()")
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args()
    schedule = load_unet(a.model)[1] if a.model else ScheduleConfig()
    for name in SCHEDULERS:
        for clip in (True, False):
            print(f"exact target: {name} steps={a.steps} clip={clip} prediction={schedule.prediction_type}: "
                  f"max |x - x0| = {oracle_error(schedule, name, a.steps, clip):.2e}")
    print(f"agreement under clipping (exact denoiser, w = 2): max |DDIM - DPM-Solver++| = "
          f"{agreement_error(schedule, a.steps):.2e}")


if __name__ == "__main__":
    main()
