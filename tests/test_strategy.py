"""Strategy validation, presets, official-YAML mapping, interpolation."""
from __future__ import annotations

import math

import pytest

from autonat.io import AutonatError
from autonat.presets import AUTONAT_IMAGENET_T8, autonat_imagenet_t8, maskgit, resolve_strategy
from autonat.strategy import Strategy, from_official, save_official_yaml, to_official


def test_maskgit_preset_is_the_table1_heuristic():
    st = maskgit(8)
    T = 8
    for t in range(1, T + 1):
        assert math.isclose(st.r[t - 1], math.cos(math.pi * t / (2 * T)), abs_tol=1e-12)
        assert st.tau1[t - 1] == 1.0
        assert math.isclose(st.tau2[t - 1], (T - t + 1) / T)
        assert math.isclose(st.s[t - 1], t / T)
    assert st.r[-1] == 0.0
    lam = maskgit(4, 4.5, 2.0)
    assert lam.tau2[0] == 4.5 and lam.s[-1] == 2.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(r=[0.5, 0.6, 0.0], tau1=[1] * 3, tau2=[1] * 3, s=[0] * 3), "non-increasing"),
    (dict(r=[0.5, 0.1], tau1=[1] * 2, tau2=[1] * 2, s=[0] * 2), "last step must be 0"),
    (dict(r=[1.2, 0.0], tau1=[1] * 2, tau2=[1] * 2, s=[0] * 2), r"\[0, 1\]"),
    (dict(r=[0.5, 0.0], tau1=[1], tau2=[1] * 2, s=[0] * 2), "tau1 has 1 values"),
    (dict(r=[0.5, 0.0], tau1=[1, -1], tau2=[1] * 2, s=[0] * 2), "sampling temperatures"),
    (dict(r=[0.5, 0.0], tau1=[1] * 2, tau2=[1] * 2, s=[0, -2]), "guidance scales"),
    (dict(r=[0.5, 0.0], tau1=[1, float("nan")], tau2=[1] * 2, s=[0] * 2), "non-finite"),
])
def test_validation_errors(kwargs, match):
    with pytest.raises(AutonatError, match=match):
        Strategy(**kwargs)


def test_masked_counts_decode_at_least_one_per_step():
    st = Strategy(r=[0.99, 0.99, 0.98, 0.0], tau1=[1] * 4, tau2=[1] * 4, s=[0] * 4)
    counts = st.masked_counts(10)
    assert counts == [10, 9, 8, 7, 0]   # ceil(9.9)=10 clamped to 9, etc.


def test_released_values_and_official_mapping(tmp_path):
    st = autonat_imagenet_t8()
    assert st.steps == 8 and st.r[-1] == 0 and st.tau2[-1] == 0
    # notation: manual_temp is tau2 (re-masking), manual_samp_temp is tau1 (sampling)
    assert st.tau2[:-1] == tuple(AUTONAT_IMAGENET_T8["manual_temp"])
    assert st.tau1 == tuple(AUTONAT_IMAGENET_T8["manual_samp_temp"])
    assert to_official(st) == {k: list(map(float, v)) for k, v in AUTONAT_IMAGENET_T8.items()}
    save_official_yaml(st, tmp_path / "s.yaml")
    back = Strategy.load(tmp_path / "s.yaml")
    assert back.r == st.r and back.tau1 == st.tau1 and back.tau2 == st.tau2 and back.s == st.s
    with pytest.raises(AutonatError, match="manual_cfg"):
        from_official({k: v for k, v in AUTONAT_IMAGENET_T8.items() if k != "manual_cfg"})


def test_json_roundtrip(tmp_path):
    st = maskgit(4)
    st.save(tmp_path / "s.json")
    assert Strategy.load(tmp_path / "s.json") == st
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AutonatError, match="invalid JSON"):
        Strategy.load(tmp_path / "bad.json")


def test_interpolation_keeps_constraints():
    st = autonat_imagenet_t8()
    for T in (2, 4, 8, 12):
        it = st.interpolate(T)
        assert it.steps == T and it.r[-1] == 0
        assert all(b <= a for a, b in zip(it.r, it.r[1:]))
    same = st.interpolate(8)
    assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(same.r, st.r))
    assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(same.tau1, st.tau1))


def test_resolve():
    assert resolve_strategy("maskgit", 4).steps == 4
    with pytest.raises(AutonatError, match="has 8 steps"):
        resolve_strategy("autonat-imagenet-t8", 4)
    with pytest.raises(AutonatError, match="unknown strategy"):
        resolve_strategy("greedy", 4)
    with pytest.raises(AutonatError, match="no searched 'autonat' strategy for 5 steps"):
        resolve_strategy("autonat", 5)
    with pytest.raises(AutonatError, match="autonat search"):       # a model with no search yet
        resolve_strategy("autonat", 4, strategies_dir=None)
    assert resolve_strategy("maskgit:2,1", 4) == maskgit(4, 2.0, 1.0)
