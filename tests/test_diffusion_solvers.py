"""The diffusion peer's solvers (`autonat.baselines`), checked without a trained model: an exact
target image is reached, and DDIM and DPM-Solver++ agree when x_0 clipping acts (the DDIM bug that
gave FID 117.85 where DPM-Solver++ gave 4.32: clip(x_0) paired with the unclipped eps)."""
from __future__ import annotations

import os
from dataclasses import replace

import pytest

if os.environ.get("AUTONAT_REQUIRE_BASELINES") != "1":   # .ci/run sets it: never skipped there
    pytest.importorskip("diffusers")   # installed by `make setup` (the [baselines] extra)

from autonat.baselines import solver_checks as oracle  # noqa: E402
from autonat.baselines.pixel_diffusion import ScheduleConfig, diffusers_default_step  # noqa: E402


@pytest.fixture(scope="module")
def cfg():
    return ScheduleConfig()


@pytest.mark.parametrize("scheduler", ["ddim", "dpmpp2m"])
@pytest.mark.parametrize("clip", [True, False])
def test_exact_model_output_lands_on_the_target(cfg, scheduler, clip):
    assert oracle.oracle_error(cfg, scheduler, steps=20, clip=clip) < 1e-5


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
def test_ddim_and_dpm_solver_agree_when_clipping_acts(cfg, prediction):
    assert oracle.agreement_error(replace(cfg, prediction_type=prediction), steps=50, w=2.0) < 1e-4


def test_the_agreement_check_sees_unclipped_eps(cfg):
    """The check is not vacuous: guidance pushes x_0 out of [-1, 1], and diffusers' default DDIM
    step (use_clipped_model_output=False) leaves the ODE by far more than the tolerance above."""
    assert oracle.agreement_error(cfg, steps=50, w=2.0, step=diffusers_default_step) > 0.1
