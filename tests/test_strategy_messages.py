"""Strategy files: every refusal names the file, the field and what is allowed (exact texts, since a
vague message is the bug a user meets), the authors' YAML goes through every loader, and the
resampling/export helpers keep their documented edge cases."""
from __future__ import annotations

import math

import pytest
import yaml

from autonat.io import AutonatError
from autonat.strategy import (MAX_STEPS, Strategy, from_official, save_official_yaml)

OK = {"r": [0.5, 0.0], "tau1": [1.0, 1.0], "tau2": [0.0, 0.0], "s": [0.0, 0.0]}
OFFICIAL = {"manual_ratios": [0.6], "manual_temp": [1.5], "manual_samp_temp": [2.0, 1.0], "manual_cfg": [1.0, 2.0]}


def _msg(fn, *a, **kw) -> str:
    with pytest.raises(AutonatError) as e:
        fn(*a, **kw)
    return str(e.value)


@pytest.mark.parametrize("d, source, expected", [
    ([1], "f.json", "f.json: a strategy must be a JSON/YAML object with r, tau1, tau2, s; got list"),
    (None, "", "a strategy must be a JSON/YAML object with r, tau1, tau2, s; got NoneType"),
    ({"r": [0.0]}, "f.json", "f.json: strategy lacks ['tau1', 'tau2', 's'] (expects r, tau1, tau2, s lists)"),
    ({**OK, "zz": 1}, "f.json", "f.json: strategy: unknown key(s) ['zz']; known: format, version, name, steps, "
     "guidance, rounding, order, always_uncond, r, tau1, tau2, s (and search metadata: mask_dist, final, method, "
     "searched_for, featnet)"),
    ({**OK, "steps": True}, "f.json", "f.json: strategy: steps must be a whole number, got True"),
    ({**OK, "steps": 2.0}, "", "strategy: steps must be a whole number, got 2.0"),
    ({**OK, "steps": 3}, "f.json", "f.json: strategy: steps=3 but r has 2 values"),
    ({**OK, "r": "0.5"}, "f.json", "f.json: strategy: r must be a list of numbers, got '0.5'"),
    ({**OK, "tau1": [1.0, None]}, "f.json", "f.json: strategy: tau1[1] must be a number, got None"),
    ({**OK, "s": [0.0, True]}, "", "strategy: s[1] must be a number, got True"),
])
def test_from_dict_refusals_name_file_field_and_rule(d, source, expected):
    assert _msg(Strategy.from_dict, d, source=source) == expected


def test_from_dict_accepts_whole_number_steps_and_the_authors_keys():
    assert Strategy.from_dict({**OK, "steps": 2}).steps == 2
    for keys in (OFFICIAL, {"manual_samp_temp": [1.0]}):       # either key marks the authors' format
        if keys is OFFICIAL:
            st = Strategy.from_dict(keys, source="x.json")
            assert (st.rounding, st.always_uncond, st.source, st.name) == ("floor", True, "x.json", "official")
            assert st.r == (0.6, 0.0) and st.tau2 == (1.5, 0.0) and st.tau1 == (2.0, 1.0) and st.s == (1.0, 2.0)
        else:
            assert "lacks key(s) ['manual_ratios', 'manual_temp', 'manual_cfg']" in _msg(Strategy.from_dict, keys)
    assert "lacks key(s) ['manual_temp', 'manual_samp_temp', 'manual_cfg']" in _msg(
        Strategy.from_dict, {"manual_ratios": [0.5]})


@pytest.mark.parametrize("key, bad, expected", [
    ("manual_samp_temp", [-1.0, 1.0], "cfg.yaml: sampling temperatures (manual_samp_temp) must be >= 0; got [-1.0, 1.0]"),
    ("manual_temp", [-1.0], "cfg.yaml: re-masking temperatures (manual_temp) must be >= 0; got [-1.0, 0.0]"),
    ("manual_cfg", [1.0, 1e6], "cfg.yaml: guidance scales (manual_cfg) must be <= 1000"),
    ("manual_ratios", [1.5], "cfg.yaml: every manual_ratios[t] must lie in [0, 1]; got [1.5, 0.0]"),
])
def test_a_rule_broken_in_the_authors_yaml_is_reported_under_their_key(key, bad, expected):
    """Strategy's own checks speak of tau1/tau2/s/r; for the authors' YAML the message is
    translated to the key the user wrote."""
    assert _msg(from_official, {**OFFICIAL, key: bad}, source="cfg.yaml").startswith(expected)


@pytest.mark.parametrize("key, bad", [("manual_samp_temp", "hot"), ("manual_ratios", [None]),
                                      ("manual_temp", [None]), ("manual_cfg", "x")])
def test_official_refusals_name_the_official_key(key, bad):
    m = _msg(from_official, {**OFFICIAL, key: bad}, source="cfg.yaml")
    assert m.startswith(f"cfg.yaml: {key}"), m          # the file, then the authors' key


def test_official_messages_name_the_source_or_say_official():
    assert _msg(from_official, [1]) == ("official strategy: expected a mapping with manual_ratios, manual_temp, "
                                        "manual_samp_temp, manual_cfg")
    assert _msg(from_official, {}, source="a.yaml") == (
        "a.yaml: lacks key(s) ['manual_ratios', 'manual_temp', 'manual_samp_temp', 'manual_cfg'] "
        "(needs manual_ratios, manual_temp, manual_samp_temp, manual_cfg)")
    assert _msg(from_official, {**OFFICIAL, "manual_ratios": [0.6, 0.3]}, source="a.yaml") == (
        "a.yaml: manual_ratios/manual_temp need T-1=1 values for T=2 steps (got 2, 1)")
    assert from_official({**OFFICIAL, "name": "mine"}).name == "mine"


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_load_reads_the_authors_yaml_under_both_suffixes(tmp_path, suffix):
    p = tmp_path / f"s{suffix}"
    p.write_text(yaml.safe_dump(OFFICIAL))
    st = Strategy.load(p)
    assert st.source == str(p) and st.rounding == "floor" and st.r == (0.6, 0.0)
    p.write_text(yaml.safe_dump({**OFFICIAL, "manual_cfg": "x"}))
    assert _msg(Strategy.load, p) == f"{p}: manual_cfg must be a list of numbers, got 'x'"


def test_save_official_yaml_states_rule_and_order_and_keeps_key_order(tmp_path):
    st = Strategy.from_dict(OFFICIAL)
    save_official_yaml(st, tmp_path / "a.yaml")
    text = (tmp_path / "a.yaml").read_text()
    assert text.splitlines()[0] == "# autonat strategy official (T=2); masked count: floor(N r), as the authors' code"
    assert [ln.split(":")[0] for ln in text.splitlines()[1:] if not ln.startswith("-")] == [
        "manual_ratios", "manual_temp", "manual_samp_temp", "manual_cfg"]          # the authors' order
    anon = Strategy(r=(0.5, 0.0), tau1=(1.0, 1.0), tau2=(0.0, 0.0), s=(0.0, 0.0), order="halton")
    save_official_yaml(anon, tmp_path / "b.yaml")
    assert (tmp_path / "b.yaml").read_text().splitlines()[0] == (
        "# autonat strategy  (T=2); masked count: ceil(N r), the paper's rule; the authors' code uses floor, "
        "which changes some counts; token order halton (the authors' code has no such option)")
    save_official_yaml(Strategy.from_dict(OK), tmp_path / "c.yaml")
    assert "token order" not in (tmp_path / "c.yaml").read_text()


def test_interpolate_edges():
    st = Strategy(r=(0.9, 0.4, 0.0), tau1=(1.0, 2.0, 3.0), tau2=(5.0, 1.0, 99.0), s=(0.0, 1.0, 2.0), name="x")
    assert st.interpolate(MAX_STEPS).steps == MAX_STEPS
    with pytest.raises(AutonatError, match=f"in \\[1, {MAX_STEPS}\\]"):
        st.interpolate(MAX_STEPS + 1)
    six = st.interpolate(6)
    assert six.name == "x@T6" and Strategy(r=(0.5, 0.0), tau1=(1, 1), tau2=(0, 0), s=(0, 0)).interpolate(4).name == ""
    # tau2 comes from the used steps only (the last step's 99 never leaks in)
    assert max(six.tau2) <= 5.0 and math.isclose(six.tau2[-1], 1.0)
    # a one-step strategy resamples from its only values
    one = Strategy(r=(0.0,), tau1=(2.0,), tau2=(3.0,), s=(1.0,))
    assert one.interpolate(3).tau2 == (3.0, 3.0, 3.0)
    # r stays in [0, 1] and non-increasing even when the source r is not
    odd = Strategy(r=(1.0, 1.0, 0.0), tau1=(1,) * 3, tau2=(0,) * 3, s=(0,) * 3).interpolate(5)
    assert all(0.0 <= v <= 1.0 for v in odd.r) and list(odd.r) == sorted(odd.r, reverse=True)


def test_to_dict_is_the_documented_format():
    st = Strategy.from_dict(OK)
    assert st.to_dict() == {"format": "autonat-strategy", "version": 2, "name": "", "steps": 2, "guidance": "logits",
                            "rounding": "ceil", "order": "confidence", "always_uncond": False, "r": [0.5, 0.0],
                            "tau1": [1.0, 1.0], "tau2": [0.0, 0.0], "s": [0.0, 0.0]}


def _st(**kw):
    base = dict(r=(0.5, 0.0), tau1=(1.0, 1.0), tau2=(0.0, 0.0), s=(0.0, 0.0))
    return Strategy(**{**base, **kw})


@pytest.mark.parametrize("kw, expected", [
    (dict(r=(0.5, 0.2)), "strategy: r at the last step must be 0 so every token is decoded; got 0.2"),
    (dict(r=(0.5, 0.7, 0.0), tau1=(1,) * 3, tau2=(0,) * 3, s=(0,) * 3),
     "strategy: r must be non-increasing (it is the fraction still masked); got [0.5, 0.7, 0.0]"),
    (dict(r=(1.5, 0.0)), "strategy: every r[t] must lie in [0, 1]; got [1.5, 0.0]"),
    (dict(tau1=(-1.0, 1.0)), "strategy: sampling temperatures (tau1) must be >= 0; got [-1.0, 1.0]"),
    (dict(tau2=(0.0, -2.0)), "strategy: re-masking temperatures (tau2) must be >= 0; got [0.0, -2.0]"),
    (dict(s=(-0.5, 0.0)), "strategy: guidance scales (s) must be >= 0; got [-0.5, 0.0]"),
    (dict(rounding="round"), "strategy: unknown rounding 'round'; known: ceil, floor, floor-unclamped, floor-float32"),
    (dict(tau1=(1.0,)), "strategy: tau1 has 1 values but r has 2; all four schedules need one value per step"),
    (dict(r=(0.5, "x")), "strategy: r[1] must be a number, got 'x'"),
])
def test_strategy_rule_messages(kw, expected):
    assert _msg(_st, **kw) == expected


def test_strategy_boundaries_are_inclusive():
    assert _st(r=(1.0, 1.0, 0.0), tau1=(1,) * 3, tau2=(0,) * 3, s=(0,) * 3).r == (1.0, 1.0, 0.0)   # r = 1, flat
    T = MAX_STEPS
    assert Strategy(r=(0.0,) * T, tau1=(1.0,) * T, tau2=(0.0,) * T, s=(0.0,) * T).steps == T
    assert _msg(Strategy, r=(0.0,) * (T + 1), tau1=(1.0,) * (T + 1), tau2=(0.0,) * (T + 1),
                s=(0.0,) * (T + 1)) == f"a strategy needs between 1 and {T} steps, got {T + 1}"


def test_every_field_survives_the_json_round_trip():
    st = Strategy(r=(0.5, 0.0), tau1=(1.0, 2.0), tau2=(0.5, 0.0), s=(0.0, 3.0),
                  rounding="floor-unclamped", order="halton", always_uncond=True, name="mine")
    back = Strategy.from_dict(st.to_dict(), source="f.json")
    assert (back.guidance, back.rounding, back.order, back.always_uncond, back.name) == (
        "logits", "floor-unclamped", "halton", True, "mine")
    assert back == st and back.source == "f.json"         # every schedule value, not only the rules
    assert back != Strategy.from_dict({**st.to_dict(), "order": "confidence"})


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"manual_ratios": [0.5]}))
    assert _msg(Strategy.load, p).startswith(f"{p}: lacks key(s)")
