"""The coarse stage of the generation-strategy search: a compass (pattern) search over a
low-dimensional family of schedules that contains the hand-designed ones.

Why: the per-step vector xi = [r, tau1, tau2, s] (4T - 2 numbers) is badly conditioned for a noisy
objective. A single hand knob such as "sampling temperature ramping from 1 to 0.67" moves every
tau1(t) together, which SPSA with a per-coordinate step cap of 0.1 needs many updates to find,
while FID differences between neighbouring per-step vectors drown in evaluation noise. Searching
first over the shapes people tune by hand, then refining per step, reaches those settings within
the budget (docs/RESULTS.md, "Search convergence").

The family (t = 1..T, x = t / T) is built around a template strategy (the search's start):
    r(t)    = cos(pi/2 * U(x^(q / q0)))   U = the template's own u = (2/pi) arccos r, interpolated
                                           linearly in log u vs log x, so for a cosine template
                                           (u = x^q0) r(t) = cos(pi/2 x^q) exactly (q = 1: MaskGIT)
    tau1(t) = template tau1(t) + a linear ramp moving its end points to a, b
    tau2(t) = the same over t = 1..T-1 (tau2(T) is unused), end points c, d
    s(t)    = the same, end points e, f
theta = [log q, a, b, c, d, e, f]; `fit_family(template)` gives q0 (least squares on log u vs
log x) and the template's end points, so the family holds the template exactly at its fit, and
is the cosine r / linear-ramp family exactly for cosine / linear templates. Any other start (for
instance Halton's arcsin r and 1 / linear tau1) is held exactly too, so every compass move is
measured around the start itself rather than around its nearest cosine / linear member (which can
be worse than the start). Knobs not searched keep their values; rounding, token order and
always_uncond come from the start. Compass search: try +-step on each coordinate (in a seeded
order), move to the first improvement and keep going that way while it improves; when no
coordinate improves, halve every step; stop at the evaluation budget or when steps are tiny.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from ..strategy import Strategy

PARAMS = ("log_q", "tau1_start", "tau1_end", "tau2_start", "tau2_end", "s_start", "s_end")
KNOB_OF = {"log_q": "r", "tau1_start": "tau1", "tau1_end": "tau1", "tau2_start": "tau2", "tau2_end": "tau2",
           "s_start": "s", "s_end": "s"}
INITIAL_STEP = {"log_q": 0.25, "tau1_start": 0.25, "tau1_end": 0.25, "tau2_start": 0.5, "tau2_end": 0.5,
                "s_start": 0.5, "s_end": 0.5}
MIN_STEP_FRACTION = 1 / 8        # stop refining once every step is below 1/8 of its initial size


def _warp_r(r: tuple[float, ...], q_ratio: float) -> np.ndarray:
    """r of a schedule evaluated at warped time x^q_ratio (q_ratio = 1: r itself)."""
    T = len(r)
    x = np.arange(1, T + 1) / T
    if q_ratio == 1.0 or T == 1:
        return np.asarray(r, dtype=np.float64)
    u = np.arccos(np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0)) * 2 / np.pi
    lx, lu = np.log(x), np.log(np.clip(u, 1e-9, 1.0))
    lu = np.maximum.accumulate(lu)                           # r non-increasing -> u non-decreasing
    want = q_ratio * lx
    inner = np.interp(want, lx, lu)                          # inside [1/T, 1]
    slope = (lu[1] - lu[0]) / (lx[1] - lx[0])                # below 1/T: the first segment's power law
    warped = np.where(want < lx[0], lu[0] + slope * (want - lx[0]), inner)
    return np.cos(np.pi / 2 * np.exp(np.minimum(warped, 0.0)))


def _shifted(values: tuple[float, ...], start: float, end: float) -> list[float]:
    """`values` plus the linear ramp that moves its first and last entries to `start` and `end`."""
    n = len(values)
    w = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    return [float(v) for v in np.asarray(values) + (start - values[0]) * (1 - w) + (end - values[-1]) * w]


def family_strategy(theta: dict[str, float], template: Strategy) -> Strategy:
    """The strategy of parameters `theta` around `template` (see module docstring; rules and token
    order from `template`)."""
    T = template.steps
    r = _warp_r(template.r, math.exp(theta["log_q"] - fit_family(template)["log_q"]))
    r[-1] = 0.0
    tau2 = (_shifted(template.tau2[:-1], theta["tau2_start"], theta["tau2_end"]) + [template.tau2[-1]]
            if T > 1 else list(template.tau2))
    return replace(template, r=tuple(float(v) for v in np.clip(r, 0.0, 1.0)),
                   tau1=tuple(max(0.0, v) for v in _shifted(template.tau1, theta["tau1_start"], theta["tau1_end"])),
                   tau2=tuple(max(0.0, v) for v in tau2),
                   s=tuple(max(0.0, v) for v in _shifted(template.s, theta["s_start"], theta["s_end"])))


def fit_family(st: Strategy) -> dict[str, float]:
    """The family parameters of `st`: end points of its tau1/tau2/s schedules, and q from the
    least-squares fit of its r schedule to cos(pi/2 x^q) (exact for the maskgit and enat presets)."""
    T = st.steps
    x = np.arange(1, T) / T
    r = np.clip(np.asarray(st.r[:-1]), 1e-6, 1 - 1e-6)
    if T > 1:
        # r = cos(pi/2 x^q)  <=>  log(arccos(r) 2 / pi) = q log x
        y = np.log(np.arccos(r) * 2 / np.pi)
        lx = np.log(x)
        q = float((lx * y).sum() / (lx * lx).sum()) if float((lx * lx).sum()) > 0 else 1.0
    else:
        q = 1.0
    t2 = st.tau2[:-1] if T > 1 else st.tau2
    return {"log_q": math.log(min(max(q, 0.05), 20.0)), "tau1_start": st.tau1[0], "tau1_end": st.tau1[-1],
            "tau2_start": t2[0], "tau2_end": t2[-1], "s_start": st.s[0], "s_end": st.s[-1]}


def pattern_search(objective: Callable[[Strategy], float], init: Strategy, knobs: tuple[str, ...],
                   budget: int, seed: int = 0, on_eval: Callable[[dict], None] | None = None,
                   history: list[dict] | None = None, step_scale: float = 1.0) -> tuple[Strategy, float, list[dict]]:
    """Compass search from `init` over the family's parameters of the searched `knobs` (see
    module docstring), first steps `step_scale` x INITIAL_STEP. Returns (best strategy, its value,
    one record per evaluation). The exact `init` is evaluated first, so the result is never worse
    than the start on this objective."""
    history = [] if history is None else history
    best: list = [init, float("inf")]
    names = [p for p in PARAMS if KNOB_OF[p] in knobs]
    lower = {p: (-3.0 if p == "log_q" else 0.0) for p in PARAMS}

    def F(theta: dict | None, phase: str) -> float:
        st = init if theta is None else family_strategy(theta, init)
        f = float(objective(st))
        rec = {"eval": len(history) + 1, "phase": phase, "value": f, "strategy": st.to_dict()}
        history.append(rec)
        if f < best[1]:
            best[:] = [st, f]
        rec["best_value"] = best[1]
        if on_eval:
            on_eval(rec)
        return f

    f = F(None, "start")
    theta = fit_family(init)
    if family_strategy(theta, init) != init and len(history) < budget:     # a template the family cannot hold
        f = F(theta, "family")
    step = {p: INITIAL_STEP[p] * step_scale for p in names}
    gen = torch.Generator().manual_seed(seed)
    while len(history) < budget and names and any(step[p] > INITIAL_STEP[p] * step_scale * MIN_STEP_FRACTION
                                                  for p in names):
        improved = False
        for i in torch.randperm(len(names), generator=gen).tolist():
            p = names[i]
            for sign in (1.0, -1.0):
                if len(history) >= budget:
                    break
                cand = {**theta, p: max(lower[p], theta[p] + sign * step[p])}
                if cand[p] == theta[p]:
                    continue
                fc = F(cand, f"pattern:{p}")
                if fc < f:
                    theta, f, improved = cand, fc, True
                    while len(history) < budget:            # keep going while it improves
                        nxt = {**theta, p: max(lower[p], theta[p] + sign * step[p])}
                        if nxt[p] == theta[p]:
                            break
                        fn = F(nxt, f"pattern:{p}")
                        if fn >= f:
                            break
                        theta, f = nxt, fn
                    break
        if not improved:
            step = {p: v / 2 for p, v in step.items()}
    return best[0], best[1], history


def late_refinement(search: Callable[[Strategy], float], validation: Callable[[Strategy], float],
                    incumbent: Strategy, knobs: tuple[str, ...], budget: int, seed: int = 0,
                    step_scale: float = 0.25, on_eval: Callable[[dict], None] | None = None,
                    confirm: Callable[[Strategy], tuple[float, float]] | None = None) -> dict:
    """More evaluations late, with a noise-aware acceptance rule.

    Near an optimum the neighbours' F differ by less than the noise of an n-sample FID, so the
    main search can neither see an improvement nor tell one from luck (the U-ViT T = 4 search on
    the perceptual tokens returned its start: 1.554 on its seeds, 1.899 on the validation set).
    Here `search` and `validation` evaluate with *more* samples (two disjoint noise sets, common
    random numbers within each): a compass search with small steps (`step_scale` x the first
    stage's) from `incumbent` on `search`, then its best point is checked on `validation`.

    Acceptance: if the candidate wins on both noise sets it replaces the incumbent; if the two
    sets disagree (it won on the search set by construction, and loses on the validation set)
    and `confirm` is given, both points are measured again by `confirm` (-> (search F,
    validation F) with still more samples) and the lower mean there decides; without `confirm`
    the lower mean of the two first values decides. Returns {strategy, accepted, the four F
    values, and the confirmation's four when it ran, history}; `budget` counts the compass
    search's evaluations (2 more for validation, 4 more for a confirmation)."""
    best, f_best, history = pattern_search(search, incumbent, knobs, budget, seed=seed, on_eval=on_eval,
                                           step_scale=step_scale)
    f_inc = history[0]["value"]
    out = {"incumbent_search": f_inc, "candidate_search": f_best, "history": history}
    if best is incumbent or f_best >= f_inc:
        return {**out, "strategy": incumbent, "accepted": False}
    v_inc, v_best = validation(incumbent), validation(best)
    out.update(incumbent_validation=v_inc, candidate_validation=v_best)
    if v_best < v_inc:                       # both noise sets agree
        accepted = True
    elif confirm is not None:                # they split: measure both again with more samples
        (ci_s, ci_v), (cb_s, cb_v) = confirm(incumbent), confirm(best)
        out.update(incumbent_confirm=(ci_s, ci_v), candidate_confirm=(cb_s, cb_v))
        accepted = cb_s + cb_v < ci_s + ci_v
    else:
        accepted = f_best + v_best < f_inc + v_inc
    return {**out, "accepted": accepted, "strategy": best if accepted else incumbent}
