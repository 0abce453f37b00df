"""Generation strategy: what a NAT does at each of its T decoding steps, in the paper's notation.

For step t = 1..T (stored 0-based as index t-1):
  r[t]     re-masking ratio: fraction of the N tokens still [MASK] after step t; non-increasing,
           r[T] = 0 (everything decoded). The number re-masked is ceil(r[t] N), clamped so that at
           least one token is decoded per step.
  tau1[t]  sampling temperature: tokens at [MASK] positions are drawn from softmax(l / tau1).
  tau2[t]  re-masking temperature: the tokens kept are a Gumbel-top-k draw from
           softmax(C / tau2) over confidences C (tau2 = 0: deterministic top-k). tau2[T] is unused.
  s[t]     guidance scale: l = l_cond + s (l_cond - l_uncond) (`guidance="logits"`, as released);
           s = 0 is plain conditional sampling and skips the unconditional pass.

Official YAML keys of the authors' code (LeapLabTHU/ImprovedNAT) map as:
  manual_ratios    = r[1..T-1]      (r[T] = 0 implied)
  manual_temp      = tau2[1..T-1]   (the *re-masking* temperature, despite its name)
  manual_samp_temp = tau1[1..T]
  manual_cfg       = s[1..T]
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .io import AutonatError, atomic_write_bytes, atomic_write_json

GUIDANCE_FORMULAS = ("logits",)
FORMAT = "autonat-strategy"


@dataclass(frozen=True)
class Strategy:
    """A validated generation strategy (immutable; every decoder takes one)."""
    r: tuple[float, ...]
    tau1: tuple[float, ...]
    tau2: tuple[float, ...]
    s: tuple[float, ...]
    guidance: str = "logits"
    name: str = ""

    def __post_init__(self):
        for f in ("r", "tau1", "tau2", "s"):
            object.__setattr__(self, f, tuple(float(v) for v in getattr(self, f)))
        T = len(self.r)
        if T < 1:
            raise AutonatError("a strategy needs at least one step")
        for f in ("tau1", "tau2", "s"):
            if len(getattr(self, f)) != T:
                raise AutonatError(f"strategy: {f} has {len(getattr(self, f))} values but r has {T}; "
                                   f"all four schedules need one value per step")
        for f in ("r", "tau1", "tau2", "s"):
            if not all(math.isfinite(v) for v in getattr(self, f)):
                raise AutonatError(f"strategy: {f} contains a non-finite value")
        if any(not 0.0 <= v <= 1.0 for v in self.r):
            raise AutonatError(f"strategy: every r[t] must lie in [0, 1]; got {list(self.r)}")
        if any(b > a + 1e-12 for a, b in zip(self.r, self.r[1:])):
            raise AutonatError(f"strategy: r must be non-increasing (it is the fraction still masked); "
                               f"got {list(self.r)}")
        if self.r[-1] != 0.0:
            raise AutonatError(f"strategy: r at the last step must be 0 so every token is decoded; "
                               f"got {self.r[-1]}")
        for f, label in (("tau1", "sampling temperatures"), ("tau2", "re-masking temperatures"),
                         ("s", "guidance scales")):
            if any(v < 0 for v in getattr(self, f)):
                raise AutonatError(f"strategy: {label} ({f}) must be >= 0; got {list(getattr(self, f))}")
        if self.guidance not in GUIDANCE_FORMULAS:
            raise AutonatError(f"strategy: unknown guidance formula {self.guidance!r}; "
                               f"known: {GUIDANCE_FORMULAS}")

    @property
    def steps(self) -> int:
        return len(self.r)

    def masked_counts(self, num_tokens: int) -> list[int]:
        """Tokens still masked before step 1 and after each step: T+1 integers, N ... 0."""
        counts, masked = [num_tokens], num_tokens
        for r in self.r:
            masked = min(math.ceil(r * num_tokens - 1e-6), masked - 1) if masked > 0 else 0
            masked = max(masked, 0)
            counts.append(masked)
        return counts

    def uses_guidance(self) -> bool:
        return any(v != 0 for v in self.s)

    def with_guidance(self, scale: float | Sequence[float]) -> "Strategy":
        """The same strategy with guidance overridden (a number = constant s)."""
        s = [float(scale)] * self.steps if isinstance(scale, (int, float)) else list(scale)
        return replace(self, s=tuple(s))

    def interpolate(self, steps: int) -> "Strategy":
        """Resample the four schedules to `steps` steps (piecewise-linear in normalised time t/T),
        e.g. to transfer a T=8 strategy to T=4. r keeps r(0) = 1, r(T) = 0 and monotonicity."""
        if steps < 1:
            raise AutonatError("interpolate: steps must be >= 1")
        T = self.steps
        src = np.arange(1, T + 1) / T
        dst = np.arange(1, steps + 1) / steps
        r = np.interp(dst, np.concatenate([[0.0], src]), np.concatenate([[1.0], self.r]))
        r = np.minimum.accumulate(np.clip(r, 0, 1))
        r[-1] = 0.0
        # tau2 at the last step is unused; interpolate over the used steps only.
        t2_src = src[:-1] if T > 1 else src
        t2_val = np.asarray(self.tau2[:-1] if T > 1 else self.tau2)
        tau2 = np.interp(dst, t2_src, t2_val)
        return Strategy(r=tuple(r), tau1=tuple(np.interp(dst, src, self.tau1)), tau2=tuple(tau2),
                        s=tuple(np.interp(dst, src, self.s)), guidance=self.guidance,
                        name=f"{self.name}@T{steps}" if self.name else "")

    # -- vector view for the search ---------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 1, "name": self.name, "steps": self.steps,
                "guidance": self.guidance, "r": list(self.r), "tau1": list(self.tau1),
                "tau2": list(self.tau2), "s": list(self.s)}

    @classmethod
    def from_dict(cls, d: dict) -> "Strategy":
        if "manual_ratios" in d or "manual_samp_temp" in d:
            return from_official(d)
        missing = [k for k in ("r", "tau1", "tau2", "s") if k not in d]
        if missing:
            raise AutonatError(f"strategy JSON lacks {missing} (expects r, tau1, tau2, s lists)")
        if "steps" in d and int(d["steps"]) != len(d["r"]):
            raise AutonatError(f"strategy JSON: steps={d['steps']} but r has {len(d['r'])} values")
        return cls(r=d["r"], tau1=d["tau1"], tau2=d["tau2"], s=d["s"],
                   guidance=d.get("guidance", "logits"), name=d.get("name", ""))

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        atomic_write_json(path, {**self.to_dict(), **(extra or {})})

    @classmethod
    def load(cls, path: str | Path) -> "Strategy":
        path = Path(path)
        if not path.is_file():
            raise AutonatError(f"strategy file not found: {path}")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml
            try:
                return from_official(yaml.safe_load(text))
            except yaml.YAMLError as e:
                raise AutonatError(f"{path}: invalid YAML: {e}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise AutonatError(f"{path}: invalid JSON: {e}") from None
        return cls.from_dict(d.get("strategy", d))


# ----------------------------------------------------------------------------------------------
# Official YAML keys
# ----------------------------------------------------------------------------------------------

def from_official(d: dict) -> Strategy:
    """Build a Strategy from the official keys (manual_ratios, manual_temp, manual_samp_temp, manual_cfg)."""
    try:
        tau1 = [float(v) for v in d["manual_samp_temp"]]
        T = len(tau1)
        r = [float(v) for v in d["manual_ratios"]] + [0.0]
        tau2 = [float(v) for v in d["manual_temp"]] + [0.0]
        s = [float(v) for v in d["manual_cfg"]]
    except KeyError as e:
        raise AutonatError(f"official strategy lacks key {e.args[0]!r} (needs manual_ratios, "
                           f"manual_temp, manual_samp_temp, manual_cfg)") from None
    if len(r) != T or len(tau2) != T:
        raise AutonatError(f"official strategy: manual_ratios/manual_temp need T-1={T - 1} values "
                           f"for T={T} steps (got {len(r) - 1}, {len(tau2) - 1})")
    return Strategy(r=r, tau1=tau1, tau2=tau2, s=s, name=str(d.get("name", "official")))


def to_official(st: Strategy) -> dict:
    """The official keys for this strategy (r[T] = 0 and tau2[T] are implied there)."""
    return {"manual_ratios": list(st.r[:-1]), "manual_temp": list(st.tau2[:-1]),
            "manual_samp_temp": list(st.tau1), "manual_cfg": list(st.s)}


def save_official_yaml(st: Strategy, path: str | Path) -> None:
    import yaml
    atomic_write_bytes(path, yaml.safe_dump(to_official(st), sort_keys=False).encode())


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------

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


# AutoNAT-L, ImageNet-256, T=8, as released (reference-code-facts.md).
AUTONAT_IMAGENET_T8 = {
    "manual_ratios": [0.95316, 0.87954, 0.79402, 0.74600, 0.62498, 0.40732, 0.26066],
    "manual_temp": [2.4049, 2.4776, 1.1917, 0.76854, 1.0673, 0.93537, 0.78438],
    "manual_samp_temp": [2.8999, 1.8673, 1.1444, 1.3796, 1.4700, 1.3761, 1.7082, 0.71331],
    "manual_cfg": [1e-4, 1e-4, 1e-4, 0.91513, 1.6160, 1.1946, 1.3832, 1.2268],
}


def autonat_imagenet_t8() -> Strategy:
    return replace(from_official(AUTONAT_IMAGENET_T8), name="autonat-imagenet-t8")


def resolve_strategy(spec: "str | Strategy", steps: int | None = None,
                     strategies_dir: str | Path | None = None) -> Strategy:
    """A Strategy from a preset name, a file path, or a Strategy.

    Presets: `maskgit` (needs `steps`; `maskgit:LAMBDA,K` sets lambda and k), `autonat-imagenet-t8`,
    `autonat` (the searched strategy `T{steps}.json` in `strategies_dir`, default: the shipped
    Fashion-MNIST model's)."""
    if isinstance(spec, Strategy):
        st = spec
    else:
        name, _, args = str(spec).partition(":")
        if name == "maskgit":
            if steps is None:
                raise AutonatError("the maskgit preset needs a number of steps (--steps)")
            try:
                nums = [float(a) for a in args.split(",")] if args else []
            except ValueError:
                raise AutonatError(f"bad preset {spec!r}: use maskgit or maskgit:LAMBDA,K") from None
            if len(nums) > 2:
                raise AutonatError(f"bad preset {spec!r}: use maskgit or maskgit:LAMBDA,K")
            st = maskgit(steps, *nums)
        elif name == "autonat-imagenet-t8":
            st = autonat_imagenet_t8()
        elif name == "autonat":
            if steps is None:
                raise AutonatError("strategy 'autonat' needs a number of steps (--steps)")
            if strategies_dir is None:
                from .assets import shipped_path
                strategies_dir = shipped_path("strategies", "fashion-mnist")
            folder = Path(strategies_dir)
            path = folder / f"T{steps}.json"
            if not path.is_file():
                have = sorted(p.stem for p in folder.glob("T*.json")) if folder.is_dir() else []
                raise AutonatError(f"no searched 'autonat' strategy for {steps} steps in {folder} "
                                   f"(available: {have or 'none'}); use --strategy maskgit, a JSON "
                                   f"file, or run `autonat search`")
            st = Strategy.load(path)
        elif Path(spec).suffix in (".json", ".yaml", ".yml") or Path(spec).exists():
            st = Strategy.load(spec)
        else:
            raise AutonatError(f"unknown strategy {spec!r}: use maskgit, autonat, "
                               f"autonat-imagenet-t8 or a path to a .json/.yaml file")
    if steps is not None and st.steps != steps:
        raise AutonatError(f"strategy {st.name or spec!r} has {st.steps} steps but {steps} were "
                           f"requested (use Strategy.interpolate to transfer it)")
    return st
