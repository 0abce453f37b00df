"""Training-strategy optimisation (paper Sec. 4.3; not in the authors' public code):
p(r) = Beta(alpha, beta), found by greedy coordinate line search - a line search on alpha with
beta fixed, then on beta with alpha fixed, repeated until a full round brings no improvement.

Each line search works in log space: from the current value x it tries x * f and x / f, keeps
moving (x * f^2, ...) while the objective improves, and when neither neighbour improves it halves
the step in log space (f <- sqrt f) until f < `min_factor`. Every objective call means training a
model, so evaluated points are memoised and a budget caps the number of trainings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..config import opt, validate
from ..io import AutonatError


@dataclass(frozen=True)
class BetaSearchConfig:
    """The Beta(alpha, beta) line search (each evaluation trains a proxy model)."""
    factor: float = opt(2.0, "initial multiplicative step of the line search", min=1.0001, max=100.0)
    min_factor: float = opt(1.2, "stop refining below this step", min=1.0001, max=100.0)
    max_rounds: int = opt(3, "alpha-then-beta rounds", min=1)
    max_trainings: int = opt(12, "Beta line search budget per alternation (distinct (alpha, beta) trained)", min=1)
    bounds: tuple[float, float] = opt((0.05, 200.0), "range of alpha and beta", min=1e-3, max=1e4)

    def __post_init__(self):
        validate(self)
        if self.bounds[0] >= self.bounds[1]:
            raise AutonatError(f"bounds (--bounds) must be LOW,HIGH with LOW < HIGH, got {self.bounds}")


@dataclass
class BetaSearchResult:
    alpha: float
    beta: float
    value: float
    history: list[dict] = field(default_factory=list)


def moment_matched_beta(mean: float, var: float) -> tuple[float, float]:
    """Beta(alpha, beta) with the given mean and variance (e.g. to start from the arccos p(r))."""
    common = mean * (1 - mean) / var - 1
    if common <= 0:
        raise AutonatError(f"no Beta distribution has mean {mean} and variance {var}")
    return mean * common, (1 - mean) * common


def line_search_beta(objective: Callable[[float, float], float], alpha: float, beta: float,
                     cfg: BetaSearchConfig = BetaSearchConfig(),
                     on_eval: Callable[[dict], None] | None = None) -> BetaSearchResult:
    """Greedy coordinate line search for argmin_{alpha, beta} objective(alpha, beta)."""
    lo, hi = cfg.bounds
    memo: dict[tuple[float, float], float] = {}
    history: list[dict] = []

    class Budget(Exception):
        pass

    def F(a: float, b: float) -> float:
        key = (round(a, 6), round(b, 6))
        if key not in memo:
            if len(memo) >= cfg.max_trainings:
                raise Budget
            memo[key] = float(objective(key[0], key[1]))
            rec = {"alpha": key[0], "beta": key[1], "value": memo[key], "trainings": len(memo)}
            history.append(rec)
            if on_eval:
                on_eval(rec)
        return memo[key]

    point = [min(max(alpha, lo), hi), min(max(beta, lo), hi)]
    best = F(*point)

    def line(coord: int) -> bool:
        nonlocal best
        moved = False
        f = cfg.factor
        while f >= cfg.min_factor:
            cands = []
            for mult in (f, 1 / f):
                p = list(point)
                p[coord] = min(max(p[coord] * mult, lo), hi)
                if p != point:
                    cands.append((F(*p), mult, p))
            if not cands or min(c[0] for c in cands) >= best:
                f = math.sqrt(f)
                continue
            value, mult, p = min(cands, key=lambda c: c[0])
            point[:], best, moved = p, value, True
            while True:                      # keep going while it improves
                q = list(point)
                q[coord] = min(max(q[coord] * mult, lo), hi)
                if q == point:
                    break
                v = F(*q)
                if v >= best:
                    break
                point[:], best = q, v
        return moved

    try:
        for _ in range(cfg.max_rounds):
            moved_a = line(0)
            moved_b = line(1)
            if not (moved_a or moved_b):
                break
    except Budget:
        pass
    return BetaSearchResult(point[0], point[1], best, history)
