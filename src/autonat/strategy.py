"""Generation strategy: what a NAT does at each of its T decoding steps, in the paper's notation.

For step t = 1..T (stored 0-based as index t-1):
  r[t]     re-masking ratio: fraction of the N tokens still [MASK] after step t; non-increasing,
           r[T] = 0 (everything decoded).
  tau1[t]  sampling temperature: tokens at [MASK] positions are drawn from softmax(l / tau1)
           (tau1 = 0: argmax).
  tau2[t]  re-masking temperature: the tokens kept are a Gumbel-top-k draw from
           softmax(C / tau2) over confidences C (tau2 = 0: deterministic top-k). tau2[T] is unused.
  s[t]     guidance scale: l = l_cond + s (l_cond - l_uncond) (`guidance="logits"`, as released;
           `guidance="muse"` computes the same l as Muse / aMUSEd do, l_uncond + (1 + s)
           (l_cond - l_uncond), bit for bit: their guidance scale g is 1 + s).

Rules that are data too (so the authors' released behaviour can be reproduced exactly):
  rounding       how r[t] becomes a masked count: `ceil` (the paper: ceil(r N), clamped so every
                 step decodes at least one token), `floor` (AutoNAT's code:
                 max(1, min(#masked - 1, floor(r N))) before the last step, 0 at the last) or
                 `floor-unclamped` (ENAT's code: floor(r N), no clamps) or `floor-float32` (aMUSEd's
                 scheduler: `floor` with r N computed in float32, without the tolerance that makes
                 r N an integer up to float error).
  order          which masked tokens stay masked: `confidence` (the paper: the lowest confidences
                 plus tau2-scaled Gumbel noise) or `halton` (a fixed low-discrepancy order over
                 the token grid, Besnier et al. 2025: tokens are revealed in that order,
                 regardless of confidence; tau2 is unused) or `halton-random` (the same order
                 cyclically shifted by a random start, one per image: the published sampler's
                 `randomize`).
  always_uncond  run the unconditional pass at every step, also where s = 0 (the authors' code
                 does; autonat skips it by default, which only matters for ENAT's caches).

Official YAML keys of the authors' code (LeapLabTHU/ImprovedNAT) map as:
  manual_ratios    = r[1..T-1]      (r[T] = 0 implied)
  manual_temp      = tau2[1..T-1]   (the *re-masking* temperature, despite its name)
  manual_samp_temp = tau1[1..T]
  manual_cfg       = s[1..T]
Strategies imported from that YAML use the authors' rules (`floor`, `always_uncond`).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .io import AutonatError, atomic_write_bytes, atomic_write_json
from .masking import ratio_to_count

GUIDANCE_FORMULAS = ("logits", "muse")
ROUNDING_RULES = ("ceil", "floor", "floor-unclamped", "floor-float32")
ORDERS = ("confidence", "halton", "halton-random")
MAX_STEPS = 4096
# Beyond these the sampler's fp32 arithmetic overflows (l / tau1, l_c + s (l_c - l_u)) and every
# token comes out the same: such values are typos, refused with the bound.
MAX_GUIDANCE = 1000.0
MIN_TEMPERATURE = 1e-6      # tau1 in (0, 1e-6): use 0, which means argmax
MAX_TEMPERATURE = 1e6
FORMAT = "autonat-strategy"
SCHEDULES = ("r", "tau1", "tau2", "s")
FIELDS = ("format", "version", "name", "steps", "guidance", "rounding", "order", "always_uncond", *SCHEDULES)
# What a search writes next to the strategy (read by people and reports, not by the sampler).
METADATA = ("mask_dist", "final", "method", "searched_for", "featnet")


def _floats(name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise AutonatError(f"strategy: {name} must be a list of numbers, got {values!r}"[:300])
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise AutonatError(f"strategy: {name}[{i}] must be a number, got {v!r}"[:300])
        out.append(float(v))
    return tuple(out)


@dataclass(frozen=True)
class Strategy:
    """A validated generation strategy (immutable; every decoder takes one)."""
    r: tuple[float, ...]
    tau1: tuple[float, ...]
    tau2: tuple[float, ...]
    s: tuple[float, ...]
    guidance: str = "logits"
    rounding: str = "ceil"
    order: str = "confidence"
    always_uncond: bool = False
    name: str = ""
    source: str = field(default="", compare=False)   # where it was loaded from (shown in outputs)

    def __post_init__(self):
        for f in SCHEDULES:
            object.__setattr__(self, f, _floats(f, getattr(self, f)))
        T = len(self.r)
        if not 1 <= T <= MAX_STEPS:
            raise AutonatError(f"a strategy needs between 1 and {MAX_STEPS} steps, got {T}")
        for f in ("tau1", "tau2", "s"):
            if len(getattr(self, f)) != T:
                raise AutonatError(f"strategy: {f} has {len(getattr(self, f))} values but r has {T}; "
                                   f"all four schedules need one value per step")
        for f in SCHEDULES:
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
        if max(self.s) > MAX_GUIDANCE:
            raise AutonatError(f"strategy: guidance scales (s) must be <= {MAX_GUIDANCE:g} (larger ones overflow "
                               f"the logits); got {max(self.s):g}")
        for f in ("tau1", "tau2"):
            big = max(getattr(self, f))
            if big > MAX_TEMPERATURE:
                raise AutonatError(f"strategy: {f} must be <= {MAX_TEMPERATURE:g}; got {big:g}")
        tiny = [v for v in self.tau1 if 0 < v < MIN_TEMPERATURE]
        if tiny:
            raise AutonatError(f"strategy: a sampling temperature (tau1) of {tiny[0]:g} overflows the logits; "
                               f"use 0 for argmax, or at least {MIN_TEMPERATURE:g}")
        for f, allowed in (("guidance", GUIDANCE_FORMULAS), ("rounding", ROUNDING_RULES), ("order", ORDERS)):
            if getattr(self, f) not in allowed:
                raise AutonatError(f"strategy: unknown {f} {getattr(self, f)!r}; known: {', '.join(allowed)}")
        if not isinstance(self.always_uncond, bool):
            raise AutonatError(f"strategy: always_uncond must be true or false, got {self.always_uncond!r}")

    @property
    def steps(self) -> int:
        return len(self.r)

    def masked_counts(self, num_tokens: int) -> list[int]:
        """Tokens still masked before step 1 and after each step: T+1 integers, N ... 0 (see the
        module docstring for the two rounding rules)."""
        if self.rounding == "floor-float32":       # aMUSEd's scheduler: float32 arithmetic, no tolerance
            ks = (num_tokens * torch.tensor(self.r, dtype=torch.float32)).floor().long().tolist()
        else:
            rule = "floor" if self.rounding.startswith("floor") else self.rounding
            ks = ratio_to_count(torch.tensor(self.r, dtype=torch.float64), num_tokens, rule).tolist()
        counts, masked = [num_tokens], num_tokens
        for t, k in enumerate(ks):
            if t == self.steps - 1:
                masked = 0
            elif self.rounding in ("floor", "floor-float32"):   # AutoNAT's code and aMUSEd's: >= 1 masked until the end
                masked = max(1, min(masked - 1, k))
            elif self.rounding == "floor-unclamped":
                masked = min(masked, k)
            else:
                masked = max(0, min(k, masked - 1))
            counts.append(masked)
        return counts

    def with_guidance(self, scale: float | Sequence[float]) -> "Strategy":
        """The same strategy with guidance overridden (a number = constant s)."""
        s = [float(scale)] * self.steps if isinstance(scale, (int, float)) else list(scale)
        return replace(self, s=tuple(s))

    def interpolate(self, steps: int) -> "Strategy":
        """Resample the four schedules to `steps` steps (piecewise-linear in normalised time t/T),
        e.g. to transfer a T=8 strategy to T=4. r keeps r(0) = 1, r(T) = 0 and monotonicity."""
        if not 1 <= steps <= MAX_STEPS:
            raise AutonatError(f"interpolate: steps must lie in [1, {MAX_STEPS}]")
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
        return replace(self, r=tuple(r), tau1=tuple(np.interp(dst, src, self.tau1)), tau2=tuple(tau2),
                       s=tuple(np.interp(dst, src, self.s)),
                       name=f"{self.name}@T{steps}" if self.name else "")

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 2, "name": self.name, "steps": self.steps,
                "guidance": self.guidance, "rounding": self.rounding, "order": self.order,
                "always_uncond": self.always_uncond, "r": list(self.r), "tau1": list(self.tau1),
                "tau2": list(self.tau2), "s": list(self.s)}

    @classmethod
    def from_dict(cls, d: Any, source: str = "") -> "Strategy":
        where = f"{source}: " if source else ""
        if not isinstance(d, dict):
            raise AutonatError(f"{where}a strategy must be a JSON/YAML object with r, tau1, tau2, s; "
                               f"got {type(d).__name__}")
        if "manual_ratios" in d or "manual_samp_temp" in d:
            return replace(from_official(d), source=source)
        missing = [k for k in SCHEDULES if k not in d]
        if missing:
            raise AutonatError(f"{where}strategy lacks {missing} (expects r, tau1, tau2, s lists)")
        unknown = sorted(set(d) - set(FIELDS) - set(METADATA))
        if unknown:
            raise AutonatError(f"{where}strategy: unknown key(s) {unknown}; known: {', '.join(FIELDS)} "
                               f"(and search metadata: {', '.join(METADATA)})")
        steps = d.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise AutonatError(f"{where}strategy: steps must be a whole number, got {steps!r}")
        try:
            st = cls(r=d["r"], tau1=d["tau1"], tau2=d["tau2"], s=d["s"], guidance=d.get("guidance", "logits"),
                     rounding=d.get("rounding", "ceil"), order=d.get("order", "confidence"),
                     always_uncond=d.get("always_uncond", False), name=str(d.get("name") or ""),
                     source=source)
        except AutonatError as e:
            raise AutonatError(f"{where}{e}") from None
        if steps is not None and steps != st.steps:
            raise AutonatError(f"{where}strategy: steps={steps} but r has {st.steps} values")
        return st

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        atomic_write_json(path, {**self.to_dict(), **(extra or {})})

    @classmethod
    def load(cls, path: str | Path) -> "Strategy":
        """A strategy file: autonat JSON, or the authors' YAML keys (.yaml/.yml)."""
        path = Path(path)
        if not path.is_file():
            raise AutonatError(f"strategy file not found: {path}")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise AutonatError(f"{path}: not a UTF-8 text file") from None
        if path.suffix in (".yaml", ".yml"):
            import yaml
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise AutonatError(f"{path}: invalid YAML: {e}") from None
            if not isinstance(data, dict):
                raise AutonatError(f"{path}: expected the official keys (manual_ratios, ...) at the top level")
            return replace(from_official(data, source=str(path)), source=str(path))
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise AutonatError(f"{path}: invalid JSON: {e}") from None
        if isinstance(d, dict) and isinstance(d.get("strategy"), dict):
            d = d["strategy"]
        return cls.from_dict(d, source=str(path))


# ----------------------------------------------------------------------------------------------
# Official YAML keys
# ----------------------------------------------------------------------------------------------

OFFICIAL_KEYS = ("manual_ratios", "manual_temp", "manual_samp_temp", "manual_cfg")


def from_official(d: Any, source: str = "") -> Strategy:
    """A Strategy from the authors' keys, with the authors' rules (floor, unconditional always)."""
    where = f"{source}: " if source else "official strategy: "
    if not isinstance(d, dict):
        raise AutonatError(f"{where}expected a mapping with {', '.join(OFFICIAL_KEYS)}")
    missing = [k for k in OFFICIAL_KEYS if k not in d]
    if missing:
        raise AutonatError(f"{where}lacks key(s) {missing} (needs {', '.join(OFFICIAL_KEYS)})")
    try:
        tau1 = _floats("manual_samp_temp", d["manual_samp_temp"])
        T = len(tau1)
        r = _floats("manual_ratios", d["manual_ratios"]) + (0.0,)
        tau2 = _floats("manual_temp", d["manual_temp"]) + (0.0,)
        s = _floats("manual_cfg", d["manual_cfg"])
        if len(r) != T or len(tau2) != T:
            raise AutonatError(f"manual_ratios/manual_temp need T-1={T - 1} values for T={T} steps "
                               f"(got {len(r) - 1}, {len(tau2) - 1})")
        return Strategy(r=r, tau1=tau1, tau2=tau2, s=s, rounding="floor", always_uncond=True,
                        name=str(d.get("name", "official")))
    except AutonatError as e:       # name the file and the authors' key, not autonat's field
        msg = str(e).removeprefix("strategy: ")
        for field_, key in (("tau1", "manual_samp_temp"), ("tau2", "manual_temp"), ("s", "manual_cfg"),
                            ("r", "manual_ratios")):
            msg = re.sub(rf"\b{field_}\b(?=[\[ )])", key, msg)
        raise AutonatError(f"{where}{msg}") from None


def to_official(st: Strategy) -> dict:
    """The official keys for this strategy (r[T] = 0 and tau2[T] are implied there)."""
    return {"manual_ratios": list(st.r[:-1]), "manual_temp": list(st.tau2[:-1]),
            "manual_samp_temp": list(st.tau1), "manual_cfg": list(st.s)}


def save_official_yaml(st: Strategy, path: str | Path) -> None:
    """The official YAML keys, with a comment stating the masked-count rule the values assume."""
    import yaml
    rule = ("floor(N r), as the authors' code" if st.rounding == "floor" else
            "ceil(N r), the paper's rule; the authors' code uses floor, which changes some counts")
    if st.order != "confidence":
        rule += f"; token order {st.order} (the authors' code has no such option)"
    head = f"# autonat strategy {st.name or ''} (T={st.steps}); masked count: {rule}\n"
    atomic_write_bytes(path, (head + yaml.safe_dump(to_official(st), sort_keys=False)).encode())
