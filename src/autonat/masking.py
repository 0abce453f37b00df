"""Training strategy: mask-ratio distributions p(r) and mask sampling.

A training example with N tokens gets a mask ratio r ~ p(r) and exactly
ceil(r * N) masked positions (clamped to [1, N]), chosen uniformly at random (paper Sec. 3.1).
The ratio -> count rounding is data (`ROUNDINGS`): `ceil` (the paper), `round` (the authors'
training code: round(N r)), `floor` (the authors' sampler). `ratio_to_count` is the one place a
ratio becomes a count; the sampler's per-step rule (`autonat.strategy.Strategy.masked_counts`)
builds on it.
Distributions are first-class objects with a compact text spec used by the CLI and configs:

  beta:12,3     Beta(alpha=12, beta=3)   (AutoNAT's released training strategy, mean 0.8)
  arccos        MaskGIT's heuristic p(r) = 2 / (pi sqrt(1 - r^2)) on [0, 1], i.e. r = sin(pi u / 2)
  fixed:0.8     r = 0.8 always (the paper's Table 2 baseline)
  uniform       r ~ U(0, 1); `uniform:0.1,0.9` for U(0.1, 0.9)

Every draw takes an explicit `torch.Generator`, and every distribution maps the same uniform
u ~ U(0, 1) through its *increasing* inverse CDF, r = F^-1(u). Two trainings with the same seed
and different p(r) therefore share common random numbers (quantile coupling): an example that gets
a high ratio under one p(r) gets a high ratio under the other, and the mask positions, batches and
dropout are identical. Comparing p(r) candidates (the training-strategy search) needs this: at the
search's proxy budget the training realisation alone moves FID by several points (docs/RESULTS.md).
(MaskGIT writes the arccos draw as r = cos(pi u / 2) - the same distribution, decreasing in u.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.special import betaincinv

from .io import AutonatError

# Bumped when the map from a seed to the drawn ratios changes (2: arccos drawn through its increasing
# inverse CDF), so trial stores do not reuse a training made under the old draws.
SAMPLING_VERSION = 2
_EPS = 1e-6  # ceil(r*N - eps): r*N that is an integer up to float error is not rounded up
ROUNDINGS = ("ceil", "floor", "round")


class MaskRatioDistribution:
    """p(r) on [0, 1]."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return self.icdf(u).float().clamp(0.0, 1.0)

    def icdf(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # Subclasses also define the properties `mean` and `variance` (the search starts its Beta
    # line search from the Beta with the initial p(r)'s mean and variance).

    @property
    def spec(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: str) -> "MaskRatioDistribution":
        """The distribution a text spec names (`parse_mask_dist`); how configs read p(r)."""
        return parse_mask_dist(spec)

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class Beta(MaskRatioDistribution):
    alpha: float
    beta: float

    def __post_init__(self):
        if not (self.alpha > 0 and self.beta > 0):
            raise AutonatError(f"Beta(alpha, beta) needs alpha, beta > 0; got {self.alpha}, {self.beta}")

    def icdf(self, u):
        return torch.from_numpy(betaincinv(self.alpha, self.beta, u.numpy()))

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def variance(self) -> float:
        a, b = self.alpha, self.beta
        return a * b / ((a + b) ** 2 * (a + b + 1))

    @property
    def spec(self) -> str:
        return f"beta:{self.alpha:g},{self.beta:g}"


@dataclass(frozen=True)
class Arccos(MaskRatioDistribution):
    def icdf(self, u):  # F(r) = (2 / pi) arcsin(r)
        return torch.sin(u * (math.pi / 2))

    @property
    def mean(self) -> float:
        return 2 / math.pi

    @property
    def variance(self) -> float:  # E[r^2] = 1/2
        return 0.5 - (2 / math.pi) ** 2

    @property
    def spec(self) -> str:
        return "arccos"


@dataclass(frozen=True)
class Fixed(MaskRatioDistribution):
    r: float

    def __post_init__(self):
        if not 0.0 <= self.r <= 1.0:
            raise AutonatError(f"fixed mask ratio must lie in [0, 1], got {self.r}")

    def icdf(self, u):
        return torch.full_like(u, self.r)

    @property
    def mean(self) -> float:
        return self.r

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def spec(self) -> str:
        return f"fixed:{self.r:g}"


@dataclass(frozen=True)
class Uniform(MaskRatioDistribution):
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise AutonatError(f"uniform mask ratio needs 0 <= low <= high <= 1, got {self.low}, {self.high}")

    def icdf(self, u):
        return self.low + (self.high - self.low) * u

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    @property
    def spec(self) -> str:
        return "uniform" if (self.low, self.high) == (0.0, 1.0) else f"uniform:{self.low:g},{self.high:g}"


def parse_mask_dist(spec: str | MaskRatioDistribution) -> MaskRatioDistribution:
    """Parse `beta:A,B`, `arccos`, `fixed:R`, `uniform[:LO,HI]` (see module docstring)."""
    if isinstance(spec, MaskRatioDistribution):
        return spec
    name, _, args = str(spec).strip().lower().partition(":")
    try:
        nums = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        raise AutonatError(f"bad mask-ratio distribution {spec!r}: arguments must be numbers") from None
    table = {"beta": (Beta, 2), "arccos": (Arccos, 0), "cosine": (Arccos, 0), "fixed": (Fixed, 1),
             "uniform": (Uniform, None)}
    if name not in table:
        raise AutonatError(f"unknown mask-ratio distribution {spec!r}; use beta:A,B | arccos | "
                           f"fixed:R | uniform[:LO,HI]")
    cls, arity = table[name]
    if arity is not None and len(nums) != arity:
        raise AutonatError(f"mask-ratio distribution {name} takes {arity} number(s), got {spec!r}")
    if cls is Uniform and len(nums) not in (0, 2):
        raise AutonatError(f"uniform takes no arguments or LO,HI; got {spec!r}")
    return cls(*nums)


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------

def ratio_to_count(r: torch.Tensor, num_tokens: int, rounding: str = "ceil") -> torch.Tensor:
    """r N rounded by `rounding` (int64, unclamped). r N that is an integer up to float error
    (e.g. 0.3 * 10) counts as that integer under every rule."""
    x = r.double() * num_tokens
    if rounding == "ceil":
        return torch.ceil(x - _EPS).long()
    if rounding == "floor":
        return torch.floor(x + _EPS).long()
    if rounding == "round":
        return torch.round(x).long()
    raise AutonatError(f"unknown rounding {rounding!r}; use one of {ROUNDINGS}")


def masked_count(r: torch.Tensor, num_tokens: int, rounding: str = "ceil") -> torch.Tensor:
    """Number of masked tokens of a training example with ratio(s) r, clamped to [1, N]."""
    return ratio_to_count(r, num_tokens, rounding).clamp(1, num_tokens)


def random_mask(counts: torch.Tensor, num_tokens: int, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Bool mask [B, N] with exactly counts[b] True entries per row, at uniformly random positions."""
    b = counts.shape[0]
    noise = torch.rand(b, num_tokens, generator=generator)
    rank = noise.argsort(dim=1).argsort(dim=1)
    mask = rank < counts.view(-1, 1)
    return mask.to(device) if device is not None else mask


def sample_training_mask(dist: MaskRatioDistribution, batch: int, num_tokens: int,
                         generator: torch.Generator | None = None, rounding: str = "ceil",
                         per_batch: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw r ~ p(r) per example (or one r for the whole batch if `per_batch`) and the matching
    mask. Returns (mask [B, N] bool, r [B])."""
    r = dist.sample(1, generator).expand(batch) if per_batch else dist.sample(batch, generator)
    return random_mask(masked_count(r, num_tokens, rounding), num_tokens, generator), r
