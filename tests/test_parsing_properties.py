"""Property-based tests (hypothesis): any JSON-like input to the strategy and config parsers either
parses into a valid object or is refused with an AutonatError - never another exception, never a
silently invalid object."""
from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autonat.config import config_from_dict
from autonat.io import AutonatError
from autonat.strategy import Strategy

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                    | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=6), c, max_size=6),
                    max_leaves=20)
NUMBERS = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.none(),
                             st.text(max_size=3)), min_size=0, max_size=6)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(s: Strategy) -> bool:
    return (s.r[-1] == 0 and all(0 <= v <= 1 for v in s.r) and all(b <= a + 1e-12 for a, b in zip(s.r, s.r[1:]))
            and all(math.isfinite(v) and v >= 0 for v in s.tau1 + s.tau2 + s.s))


@SETTINGS
@given(JSON)
def test_strategy_from_any_json_value(value):
    try:
        s = Strategy.from_dict(value)
    except AutonatError:
        return
    assert _valid(s)


# mostly valid values, with every kind of invalid one mixed in (hypothesis shrinks towards the first)
ANY_FLOAT = st.one_of(st.floats(0, 5), st.floats(0, 5), st.floats(0, 5), st.integers(0, 3),
                      st.sampled_from([float("nan"), float("inf"), -1.0, -1e-9, True, None, "1"]))


@st.composite
def near_valid(draw):
    """Mostly valid strategies (a sorted r ending in 0, T values per schedule) with any numbers in
    the other schedules and, sometimes, a broken r or length - so the checks after the first ones
    are exercised too."""
    T = draw(st.integers(1, 6))
    r = sorted(draw(st.lists(st.floats(0, 1), min_size=T - 1, max_size=T - 1)), reverse=True) + [0.0]
    if draw(st.booleans()):
        r = draw(st.lists(ANY_FLOAT, min_size=T, max_size=T))
    d = {"r": r, **{k: draw(st.lists(ANY_FLOAT, min_size=T, max_size=T + draw(st.integers(0, 1))))
                    for k in ("tau1", "tau2", "s")}}
    for k in ("steps", "rounding", "order", "always_uncond", "name"):
        if draw(st.booleans()):
            d[k] = draw(JSON | st.sampled_from(["ceil", "floor", "halton", "confidence", T, True]))
    return d


@SETTINGS
@given(near_valid())
def test_strategy_from_near_valid_dicts(d):
    try:
        s = Strategy.from_dict(d)
    except AutonatError:
        return
    assert _valid(s)
    assert Strategy.from_dict(json.loads(json.dumps(s.to_dict()))) == s     # round trip


@SETTINGS
@given(st.dictionaries(st.sampled_from(["tokens", "model", "mask_dist", "steps", "lr", "batch_size", "ema", "betas",
                                        "warmup", "seed", "bf16", "mask_rounding", "reuse_prob", "device", "unknown"]),
                       JSON, max_size=8))
def test_train_config_from_any_dict(d):
    from autonat.training import TrainConfig
    try:
        cfg = config_from_dict(TrainConfig, d)
    except AutonatError:
        return
    assert cfg.steps >= 1 and cfg.batch_size >= 1 and math.isfinite(cfg.lr) and 0 <= cfg.ema < 1


@SETTINGS
@given(st.dictionaries(st.sampled_from(["codebook_size", "seq_len", "num_classes", "dim", "depth", "heads",
                                        "mlp_ratio", "dropout", "qkv_bias", "class_norm", "embed_eps"]),
                       JSON, max_size=6))
def test_model_config_from_any_dict(d):
    from autonat.models.uvit import UViTConfig
    try:
        cfg = config_from_dict(UViTConfig, d)
    except AutonatError:
        return
    assert cfg.depth % 2 == 1 and cfg.dim % cfg.heads == 0 and cfg.dim <= 16384
