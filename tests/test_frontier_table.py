"""The arithmetic behind the peer comparison (`autonat.metrics.frontier`): the equal-FID peer cost
and ratio when a peer point reaches the NAT's FID, and otherwise the ratios against the peer's named
points (fastest, first inside the plateau, best) - never a single '> Nx'."""
from __future__ import annotations

import json
import math

import pytest

from autonat.metrics import frontier


def _peer(points):
    return [{"steps": s, "fid": f, "seconds_per_image": t, "flops_per_image": 1e9 * s} for s, f, t in points]


def test_cost_is_none_when_no_peer_point_reaches_the_fid():
    assert frontier.equal_fid_cost(2.0, _peer([(5, 9.0, 0.05), (10, 4.0, 0.1), (20, 3.0, 0.2)])) is None


def test_cost_is_the_cheapest_point_when_nothing_cheaper_is_worse():
    assert frontier.equal_fid_cost(5.0, _peer([(5, 4.5, 0.05), (10, 4.0, 0.1)])) == 0.05


def test_cost_interpolates_log_linearly_between_the_bracketing_points():
    # 6.0 lies halfway in FID between 8 (at 40 ms) and 4 (at 160 ms): geometric mean of the times
    got = frontier.equal_fid_cost(6.0, _peer([(1, 20.0, 0.01), (4, 8.0, 0.04), (16, 4.0, 0.16), (40, 3.5, 0.4)]))
    assert got == pytest.approx(math.sqrt(0.04 * 0.16))
    # the bracket is the most expensive worse point below the cheapest good one, not any worse point
    assert frontier.equal_fid_cost(8.0, _peer([(1, 20.0, 0.01), (4, 8.0, 0.04), (16, 4.0, 0.16)])) == pytest.approx(0.04)


def test_equal_fid_ratio_in_time_and_flops():
    nat = {"fid": 3.0, "seconds_per_image": 0.01, "flops_per_image": 2e9}
    c = frontier.compare(nat, _peer([(5, 6.0, 0.005), (10, 3.0, 0.1), (20, 2.5, 0.2)]))
    assert c["equal_fid"]["time_ratio"] == pytest.approx(10.0)
    assert c["equal_fid"]["flop_ratio"] == pytest.approx(5.0)           # 10 GFLOPs / 2 GFLOPs


def test_when_no_peer_point_reaches_the_nat_the_named_points_are_given():
    nat = {"fid": 2.0, "seconds_per_image": 0.01, "flops_per_image": 1e9}
    peer = _peer([(5, 6.0, 0.03), (10, 4.4, 0.07), (15, 4.1, 0.11), (50, 4.4, 0.4)])
    c = frontier.compare(nat, peer)
    assert "equal_fid" not in c
    n = c["named"]
    assert n["fastest"]["steps"] == 5 and n["fastest"]["time_ratio"] == pytest.approx(3.0)
    assert n["plateau"]["steps"] == 10            # 4.4 <= 1.1 x 4.1: the cheapest point inside the plateau
    assert n["best"]["steps"] == 15 and n["best"]["flop_ratio"] == pytest.approx(15.0)
    row = next(x for x in frontier.comparison_table({"enat": {**nat, "steps": 8}}, {"diffusion": peer}).splitlines()
               if x.startswith("| enat"))
    assert "not reached" in row and "> " not in row and "T=10: FID 4.40; 7.0x time, 10.0x FLOPs" in row


def test_one_table_holds_every_nat_point_against_every_peer_family_and_marks_contention():
    nats = {"uvit": {"fid": 1.4, "seconds_per_image": 0.011, "flops_per_image": 5e9, "steps": 4},
            "enat": {"fid": 0.9, "seconds_per_image": 0.009, "flops_per_image": 2.4e9, "steps": 8}}
    nats["enat"]["latency_ms_b1"] = 25.0
    ar = [{"label": "t=1.1, s=1", "steps": 49, "fid": 0.8, "seconds_per_image": 0.0128, "flops_per_image": 1.2e9,
           "loadavg_1m": 3.1, "threads": 2, "latency_ms_b1": 100.0},                                       # timed under contention
          {"label": "t=1.0, s=1", "steps": 49, "fid": 2.1, "seconds_per_image": 0.0125, "flops_per_image": 1.2e9}]
    latent = _peer([(2, 13.0, 0.008), (16, 3.9, 0.038)])
    rows = [x for x in frontier.comparison_table(nats, {"autoregressive": ar, "latent diffusion": latent}).splitlines()
            if x.startswith("| uvit") or x.startswith("| enat")]
    assert len(rows) == 4                                     # 2 NAT points x 2 families, in one table
    enat_ar = next(x for x in rows if x.startswith("| enat") and "autoregressive (2)" in x)
    # the AR reaches ENAT's FID: equal-FID ratios exist (its only point at <= 0.9 is the 0.8 one)
    assert "reached: 1.4x time, 0.50x FLOPs" in enat_ar
    assert "t=1.1, s=1 \u2020: FID 0.80" in enat_ar          # labelled by its setting, contention marked
    assert "t=1.0, s=1: FID 2.10" in enat_ar                  # the fastest point is not marked
    assert enat_ar.endswith("| 100 / 25 ms = 4.0x |")         # batch-1 latency of the peer's best point
    uvit_latent = next(x for x in rows if x.startswith("| uvit") and "latent diffusion (2)" in x)
    assert "not reached" in uvit_latent and "T=16: FID 3.90; 3.5x time, 3.2x FLOPs" in uvit_latent


def test_peer_family_is_the_series_stem_never_a_mere_prefix():
    fam = frontier.peer_family
    assert fam("ar") == fam("ar-b32") == "autoregressive"
    assert fam("diffusion-dpmpp2m") == fam("diffusion-dpmpp2m (w sweep, T=10)") == "pixel diffusion"
    assert fam("latent-dpmpp2m-snap") == "latent diffusion"
    # NAT series whose names merely begin with a stem's letters are NATs, not peers
    for nat in ["arccos-halton+autonat", "arccos-halton", "uvit-autonat", "enat-halton-published", "latents-nat"]:
        assert fam(nat) is None, nat


def test_read_frontier_labels_points_by_their_label_field_else_by_steps(tmp_path):
    from autonat.plots import read_frontier
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"fid": 5.0, "flops_per_image": 2e10, "steps": 10, "series": "sweep", "label": "w=3"})
                 + "\n" + json.dumps({"fid": 4.0, "flops_per_image": 4e10, "steps": 20}) + "\n")
    pts = read_frontier([f])
    assert [(p["group"], p["label"], p["gflops"]) for p in pts] == [("sweep", "w=3", 20.0), ("d", "T=20", 40.0)]


def _pt(series, fid, train_seed=None, seed=10**6, **kw):
    r = {"series": series, "steps": kw.pop("steps", 16), "guidance": 2.0, "n": 10000, "seed": seed, "fid": fid,
         "precision": 0.86, "recall": 0.63, "seconds_per_image": 0.04, **kw}
    if train_seed is not None:
        r["train_seed"] = train_seed
    return r


def test_seed_table_pairs_the_same_setting_across_training_seeds_and_gives_the_spread():
    base = [_pt("latent-dpmpp2m", 3.91), _pt("latent-dpmpp2m", 4.58, steps=8), _pt("uvit", 1.4, steps=4)]
    rep = [_pt("latent-dpmpp2m", 4.31, train_seed=1)]
    text = frontier.seed_table(base, rep)
    rows = [x for x in text.splitlines() if x.startswith("| latent") or x.startswith("| uvit")]
    assert len(rows) == 1                                  # T=8 and the NAT have one seed: not shown
    assert "train seed 0: FID, P / R | train seed 1: FID, P / R" in text
    assert "| 3.91, 0.860 / 0.630 | 4.31, 0.860 / 0.630 | 0.40 (10% of the mean) |" in rows[0]
    assert "T=16" in rows[0] and "n = 10000" in rows[0]


def test_seed_table_never_pairs_different_sampling_seeds_or_settings():
    base = [_pt("latent-dpmpp2m", 3.91, seed=0), _pt("latent-dpmpp2m", 3.5, guidance=3.0)]
    rep = [_pt("latent-dpmpp2m", 4.31, train_seed=1)]
    rows = [x for x in frontier.seed_table(base, rep).splitlines() if x.startswith("| latent")]
    # nothing was evaluated with two training seeds: the repeat stands alone, and says so
    assert rows == ["| latent-dpmpp2m (T=16, n = 10000) | - | 4.31, 0.860 / 0.630 | "
                    "no other training seed at this setting |"]
    assert frontier.seed_table(base, []) == ""


def test_seed_table_refuses_rows_that_would_fake_a_spread():
    with pytest.raises(ValueError, match="train_seed"):     # a repeat must say which weights made it
        frontier.seed_table([_pt("ar", 0.79)], [_pt("ar", 0.76)])
    with pytest.raises(ValueError, match="twice with training seed 0"):   # a re-draw is not a second seed
        frontier.seed_table([_pt("ar", 0.79)], [_pt("ar", 0.76, train_seed=0)])
