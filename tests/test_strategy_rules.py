"""The strategy's rules, value by value: masked counts under every rounding rule, interpolation
anchors, the authors' YAML keys in and out (with the rule stated), file loading errors."""
from __future__ import annotations

import math

import pytest

from autonat.io import AutonatError
from autonat.presets import halton, maskgit
from autonat.strategy import MAX_STEPS, Strategy, from_official, save_official_yaml, to_official


def _st(r, rounding="ceil"):
    T = len(r)
    return Strategy(r=r, tau1=[1] * T, tau2=[1] * T, s=[0] * T, rounding=rounding)


@pytest.mark.parametrize("rounding,want", [
    ("ceil", [10, 8, 5, 0, 0, 0]),            # ceil(7.6)=8, ceil(4.5)=5, r=0 early: done early
    ("floor", [10, 7, 4, 1, 1, 0]),           # floor, >= 1 masked until the last step
    ("floor-unclamped", [10, 7, 4, 0, 0, 0]),  # floor, no clamps (ENAT)
])
def test_masked_counts_under_each_rule(rounding, want):
    assert _st([0.76, 0.45, 0.0, 0.0, 0.0], rounding).masked_counts(10) == want


def test_counts_decode_at_least_one_token_per_step_except_unclamped():
    r = [0.99, 0.99, 0.98, 0.0]
    assert _st(r, "ceil").masked_counts(10) == [10, 9, 8, 7, 0]
    assert _st(r, "floor").masked_counts(10) == [10, 9, 8, 7, 0]
    assert _st(r, "floor-unclamped").masked_counts(10) == [10, 9, 9, 9, 0]   # steps that decode nothing
    assert _st([0.3, 0.0], "ceil").masked_counts(10) == [10, 3, 0]           # 0.3 * 10 is 3, not 4


def test_interpolation_anchors_and_rules():
    st = maskgit(4)
    half = st.interpolate(2)
    assert half.r == (st.r[1], 0.0) and half.tau1 == (st.tau1[1], st.tau1[3]) and half.s == (st.s[1], st.s[3])
    assert half.tau2[0] == st.tau2[1] and half.name == "maskgit-T4@T2"
    double = maskgit(2).interpolate(4)          # t/T = 1/4 lies between r(0) = 1 and r(1/2)
    assert math.isclose(double.r[0], 1 + (maskgit(2).r[0] - 1) / 2)
    one = st.interpolate(1)
    assert one.r == (0.0,) and one.steps == 1
    h = halton(8).interpolate(4)
    assert h.order == "halton-random" and h.rounding == "ceil"
    assert halton(8, 1, 1, 1, 0).interpolate(4).order == "halton"
    for bad in (0, MAX_STEPS + 1):
        with pytest.raises(AutonatError, match="interpolate"):
            st.interpolate(bad)


def test_official_keys_in_and_out(tmp_path):
    d = {"manual_ratios": [0.5], "manual_temp": [2.0], "manual_samp_temp": [1.0, 0.5], "manual_cfg": [0.0, 1.0]}
    st = from_official(d)
    assert (st.r, st.tau2, st.tau1, st.s) == ((0.5, 0.0), (2.0, 0.0), (1.0, 0.5), (0.0, 1.0))
    assert st.rounding == "floor" and st.always_uncond and st.name == "official"
    assert to_official(st) == {k: [float(v) for v in vals] for k, vals in d.items()}
    with pytest.raises(AutonatError, match="^official strategy: lacks"):
        from_official({"manual_ratios": [0.5]})
    with pytest.raises(AutonatError, match="^official strategy: expected a mapping"):
        from_official([1, 2])
    with pytest.raises(AutonatError, match="T-1=1 values"):
        from_official({**d, "manual_temp": [1.0, 2.0]})
    save_official_yaml(st, tmp_path / "a.yaml")
    head = (tmp_path / "a.yaml").read_text().splitlines()[0]
    assert head.startswith("# autonat strategy official (T=2)") and "floor(N r), as the authors' code" in head
    back = Strategy.load(tmp_path / "a.yaml")
    assert back == st and back.source == str(tmp_path / "a.yaml")
    save_official_yaml(maskgit(2), tmp_path / "b.yaml")
    assert "ceil(N r), the paper's rule" in (tmp_path / "b.yaml").read_text().splitlines()[0]
    save_official_yaml(halton(2), tmp_path / "c.yaml")
    assert "token order halton" in (tmp_path / "c.yaml").read_text().splitlines()[0]


def test_loading_files(tmp_path):
    with pytest.raises(AutonatError, match="not found"):
        Strategy.load(tmp_path / "nope.json")
    (tmp_path / "x.json").write_bytes(b"\xff\xfe")
    with pytest.raises(AutonatError, match="UTF-8"):
        Strategy.load(tmp_path / "x.json")
    (tmp_path / "x.yaml").write_text("a: [")
    with pytest.raises(AutonatError, match="invalid YAML"):
        Strategy.load(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("- 1\n")
    with pytest.raises(AutonatError, match="official keys"):
        Strategy.load(tmp_path / "y.yaml")
    wrapped = {"strategy": maskgit(3).to_dict(), "note": "a search's result file"}
    import json
    (tmp_path / "w.json").write_text(json.dumps(wrapped))
    st = Strategy.load(tmp_path / "w.json")
    assert st == maskgit(3) and st.source == str(tmp_path / "w.json")
    with pytest.raises(AutonatError, match=str(tmp_path / "bad.json")):
        (tmp_path / "bad.json").write_text(json.dumps({**maskgit(3).to_dict(), "r": [0.1, 0.5, 0.0]}))
        Strategy.load(tmp_path / "bad.json")


def test_rule_fields_are_validated():
    base = dict(r=[0.5, 0.0], tau1=[1, 1], tau2=[1, 1], s=[0, 0])
    for field, value in (("rounding", "round"), ("order", "random"), ("guidance", "probs")):
        with pytest.raises(AutonatError, match=f"unknown {field}"):
            Strategy(**base, **{field: value})
    with pytest.raises(AutonatError, match="always_uncond"):
        Strategy(**base, always_uncond=1)
    assert Strategy(**base, rounding="floor-unclamped").rounding == "floor-unclamped"
