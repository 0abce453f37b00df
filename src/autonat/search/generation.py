"""Generation-strategy optimisation (paper Sec. 4.2): minimise F(xi) = FID over
xi = [r(1..T-1), tau1(1..T), tau2(1..T-1), s(1..T)]  (4T - 2 variables; r(T) = 0 is fixed and
tau2(T) is unused), with the constraints projected after every update:
r non-increasing (isotonic projection) and in [0, r_max], temperatures and scales >= 0.

Two gradient estimators feed the same momentum-SGD update xi <- P(xi - lr * v), v <- mu v + g:
  fd       one-sided finite differences per coordinate (the paper's / released method; 4T-1
           evaluations per update). Step sizes and learning rates default to the released ones.
  spsa     simultaneous perturbation: g_i = (F(xi + c delta) - F(xi - c delta)) / (2 c_i delta_i)
           with Rademacher delta, averaged over k perturbations: 2k evaluations per update whatever
           the dimension.
  pattern  first a compass search over a low-dimensional family of schedule shapes that holds the
           hand-designed ones (`autonat.search.pattern`, `pattern_evals` evaluations), then SPSA
           per-step refinement from its best point (`max_updates` updates). The default: it
           reaches the hand settings' FID within its budget where fd and spsa from a preset did
           not (docs/RESULTS.md, "Search convergence").
Every evaluated point is a valid (projected) strategy; the best one seen is kept. Knobs the start's
token order ignores (tau2 under a fixed order) are not searched.
The objective is any callable Strategy -> float (the caller adds caching and common random
numbers); this module does no sampling itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from ..config import opt, validate
from ..io import AutonatError
from ..strategy import Strategy

KNOBS = ("r", "tau1", "tau2", "s")
PATTERN_REFINE_UPDATES = 8


@dataclass(frozen=True)
class GenSearchConfig:
    """The generation-strategy optimiser (defaults of `fd` are the released hyper-parameters)."""
    method: str = opt("pattern", "pattern = compass search over schedule shapes, then spsa refinement; "
                                 "fd = the paper's per-coordinate finite differences (4T-1 evaluations per "
                                 "update); spsa = simultaneous perturbation (2k)",
                      choices=("pattern", "fd", "spsa"))
    max_updates: int | None = opt(None, "optimiser updates (auto: 100 for fd and spsa, as released; "
                                        f"{PATTERN_REFINE_UPDATES} spsa refinement updates after pattern)", min=0)
    pattern_evals: int = opt(40, "pattern: evaluations of the compass search over schedule shapes", min=2)
    max_evals: int = opt(10**9, "budget in FID evaluations per generation search", min=1)
    eps_ratio: float = opt(1e-2, "finite-difference / perturbation size for r", min=1e-6, max=0.5)
    eps_other: float = opt(0.1, "... for tau1, tau2, s", min=1e-6, max=10.0)
    lr_ratio: float = opt(1e-3, "learning rate for r", min=0.0)
    lr_other: float = opt(0.1, "learning rate for tau1, tau2, s", min=0.0)
    momentum: float = opt(0.5, "SGD momentum", min=0.0, max=0.999)
    spsa_k: int = opt(1, "SPSA perturbations averaged per update", min=1, max=1000)
    # Trust region: each update moves a coordinate by at most this much (0 = no clipping, as
    # released). FID differences are heavy-tailed (a bad perturbation can cost 10x the FID), so an
    # unclipped SPSA step, which moves every coordinate at once, can jump far out; clipping keeps
    # each update local. None = automatic: 0.02 / 0.1 for spsa, no clipping for fd.
    max_step_ratio: float | None = opt(None, "cap on an update's change of each r "
                                             "(auto: 0.02 for spsa, none for fd; 0 = none)", min=0.0)
    max_step_other: float | None = opt(None, "cap on an update's change of each tau1/tau2/s "
                                             "(auto: 0.1 for spsa, none for fd; 0 = none)", min=0.0)
    r_max: float = opt(0.99, "upper bound of every r (as released)", min=0.0, max=1.0)
    knobs: tuple[str, ...] = opt(KNOBS, "schedules to optimise (the others stay fixed)")

    def __post_init__(self):
        validate(self)
        bad = set(self.knobs) - set(KNOBS)
        if bad or not self.knobs:
            raise AutonatError(f"knobs (--knobs) must be a non-empty subset of {','.join(KNOBS)}, "
                               f"got {','.join(self.knobs)}")

    @property
    def updates(self) -> int:
        """The update budget (`max_updates`, or its automatic value for the method)."""
        if self.max_updates is not None:
            return self.max_updates
        return PATTERN_REFINE_UPDATES if self.method == "pattern" else 100

    @property
    def step_caps(self) -> tuple[float, float]:
        """(cap for r, cap for the others) of one update; 0 = none."""
        auto = (0.0, 0.0) if self.method == "fd" else (0.02, 0.1)
        return (auto[0] if self.max_step_ratio is None else self.max_step_ratio,
                auto[1] if self.max_step_other is None else self.max_step_other)


# ----------------------------------------------------------------------------------------------
# Strategy <-> vector, projection
# ----------------------------------------------------------------------------------------------

def layout(steps: int) -> dict[str, slice]:
    T = steps
    sizes = {"r": T - 1, "tau1": T, "tau2": T - 1, "s": T}
    out, i = {}, 0
    for k in KNOBS:
        out[k] = slice(i, i + sizes[k])
        i += sizes[k]
    return out


def to_vector(st: Strategy) -> torch.Tensor:
    T = st.steps
    return torch.tensor(list(st.r[:T - 1]) + list(st.tau1) + list(st.tau2[:T - 1]) + list(st.s), dtype=torch.float64)


def from_vector(x: torch.Tensor, template: Strategy) -> Strategy:
    lay = layout(template.steps)
    v = x.tolist()
    return replace(template, r=tuple(v[lay["r"]]) + (0.0,), tau1=tuple(v[lay["tau1"]]),
                   tau2=tuple(v[lay["tau2"]]) + (template.tau2[-1] if template.steps > 0 else 0.0,),
                   s=tuple(v[lay["s"]]))


def isotonic_nonincreasing(y: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto non-increasing sequences (pool-adjacent-violators)."""
    vals, wts = [], []
    for v in y.tolist():
        vals.append(v)
        wts.append(1)
        while len(vals) > 1 and vals[-2] < vals[-1]:
            w = wts[-2] + wts[-1]
            m = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            vals[-2:], wts[-2:] = [m], [w]
    out = []
    for v, w in zip(vals, wts):
        out += [v] * w
    return torch.tensor(out, dtype=y.dtype)


def project(x: torch.Tensor, steps: int, r_max: float = 0.99) -> torch.Tensor:
    lay = layout(steps)
    x = x.clone()
    if steps > 1:
        x[lay["r"]] = isotonic_nonincreasing(x[lay["r"]]).clamp(0.0, r_max)
    for k in ("tau1", "tau2", "s"):
        x[lay[k]] = x[lay[k]].clamp_min(0.0)
    return x


def _per_coordinate(steps: int, ratio: float, other: float) -> torch.Tensor:
    lay = layout(steps)
    v = torch.full((4 * steps - 2,), other, dtype=torch.float64)
    v[lay["r"]] = ratio
    return v


def _active(steps: int, knobs: tuple[str, ...]) -> torch.Tensor:
    lay = layout(steps)
    m = torch.zeros(4 * steps - 2, dtype=torch.bool)
    for k in knobs:
        m[lay[k]] = True
    return m


# ----------------------------------------------------------------------------------------------
# Optimiser
# ----------------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    best: Strategy
    best_value: float
    history: list[dict] = field(default_factory=list)   # one entry per objective evaluation
    updates: int = 0
    checks: int = 0            # evaluations after the optimiser (validation, late refinement)

    @property
    def evaluations(self) -> int:
        return len(self.history) + self.checks


def searched_knobs(knobs: tuple[str, ...], st: Strategy) -> tuple[str, ...]:
    """The knobs that can change `st`'s samples: tau2 means nothing under a fixed token order."""
    used = tuple(k for k in knobs if not (k == "tau2" and st.order != "confidence"))
    if not used:
        raise AutonatError(f"knobs (--knobs) {','.join(knobs)}: the {st.order} token order ignores "
                           f"{'them' if len(knobs) > 1 else 'it'} (tau2 only acts with the confidence order); "
                           f"search r, tau1 or s")
    return used


def planned_evaluations(cfg: GenSearchConfig, steps: int) -> int:
    """How many objective evaluations `optimize_generation` will make (for progress and ETAs)."""
    active = int(_active(steps, cfg.knobs).sum())
    if cfg.method == "fd":
        n = 1 + cfg.updates * (active + 1)
    else:
        n = 2 + 2 * cfg.spsa_k * cfg.updates + (cfg.pattern_evals if cfg.method == "pattern" else 0)
    return min(n, cfg.max_evals)


class _Budget(Exception):
    pass


def _record(res: SearchResult, rec: dict, on_eval: Callable[[dict], None] | None) -> None:
    """Keep the best strategy seen; `rec` (already in res.history) gets the running best."""
    if rec["value"] < res.best_value:
        res.best, res.best_value = Strategy.from_dict(rec["strategy"]), rec["value"]
    rec["best_value"] = res.best_value
    rec.setdefault("update", res.updates)
    if on_eval:
        on_eval(rec)


def optimize_generation(objective: Callable[[Strategy], float], init: Strategy, cfg: GenSearchConfig,
                        seed: int = 0, on_eval: Callable[[dict], None] | None = None,
                        on_update: Callable[[int, Strategy, float], None] | None = None) -> SearchResult:
    """Momentum SGD on FD or SPSA gradient estimates of `objective` (see module docstring)."""
    T = init.steps
    if T < 2:
        raise AutonatError("strategy search needs T >= 2 steps")
    knobs = searched_knobs(cfg.knobs, init)
    eps = _per_coordinate(T, cfg.eps_ratio, cfg.eps_other)
    lr = _per_coordinate(T, cfg.lr_ratio, cfg.lr_other)
    active = _active(T, knobs)
    res = SearchResult(best=init, best_value=float("inf"))
    if cfg.method == "pattern":
        from .pattern import pattern_search

        def counted(st: Strategy) -> float:
            if res.evaluations >= cfg.max_evals:
                raise _Budget
            return objective(st)
        try:
            pattern_search(counted, init, knobs, min(cfg.pattern_evals, cfg.max_evals), seed=seed,
                           on_eval=lambda rec: _record(res, rec, on_eval), history=res.history)
        except _Budget:
            return res
        if cfg.updates == 0:
            return res
        init = res.best
    x = project(to_vector(init), T, cfg.r_max)
    gen = torch.Generator().manual_seed(seed)     # SPSA perturbation draws

    def F(v: torch.Tensor, phase: str) -> float:
        if res.evaluations >= cfg.max_evals:
            raise _Budget
        st = from_vector(v, init)
        f = float(objective(st))
        rec = {"eval": res.evaluations + 1, "update": res.updates, "phase": phase, "value": f,
               "strategy": st.to_dict()}
        res.history.append(rec)
        _record(res, rec, on_eval)
        return f

    velocity = torch.zeros_like(x)
    try:
        fx = F(x, "center")
        while res.updates < cfg.updates:
            g = torch.zeros_like(x)
            if cfg.method == "fd":
                for i in torch.nonzero(active).flatten().tolist():
                    xp = x.clone()
                    xp[i] += eps[i]
                    xp = project(xp, T, cfg.r_max)
                    d = xp[i] - x[i]
                    if abs(float(d)) < 1e-12:          # pushed against a constraint: step back instead
                        xp = x.clone()
                        xp[i] -= eps[i]
                        xp = project(xp, T, cfg.r_max)
                        d = xp[i] - x[i]
                        if abs(float(d)) < 1e-12:
                            continue
                    g[i] = (F(xp, f"fd{i}") - fx) / d
            else:
                for _ in range(cfg.spsa_k):
                    delta = (torch.randint(0, 2, x.shape, generator=gen) * 2 - 1).double() * active
                    xp, xm = project(x + eps * delta, T, cfg.r_max), project(x - eps * delta, T, cfg.r_max)
                    fp, fm = F(xp, "spsa+"), F(xm, "spsa-")
                    d = xp - xm
                    ok = d.abs() > 1e-12
                    g[ok] += (fp - fm) / d[ok]
                g /= cfg.spsa_k
            velocity = cfg.momentum * velocity + g * active
            step = lr * velocity
            cap_r, cap_o = cfg.step_caps
            if cap_r > 0 or cap_o > 0:
                cap = _per_coordinate(T, cap_r or float("inf"), cap_o or float("inf"))
                step = torch.maximum(torch.minimum(step, cap), -cap)
            x = project(x - step, T, cfg.r_max)
            res.updates += 1
            # FD needs F at every iterate; SPSA does not (2 evaluations per update), so its
            # iterates are scored only at the end.
            fx = F(x, "center") if cfg.method == "fd" else float("nan")
            if on_update:
                on_update(res.updates, from_vector(x, init), fx)
        if cfg.method != "fd" and res.updates:
            F(x, "center")
    except _Budget:
        pass
    return res
