"""The arithmetic behind the frontier table's headline columns (bench/frontier.py): the diffusion
wall-clock needed to match a NAT's FID, the speed ratio, and the equal-time FID."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("frontier", Path(__file__).parents[1] / "bench" / "frontier.py")
frontier = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(frontier)


def _diff(points):
    return [{"seconds_per_image": t, "fid": f} for t, f in points]


def test_cost_is_none_when_no_diffusion_point_reaches_the_fid():
    assert frontier._diffusion_cost_for(2.0, _diff([(0.05, 9.0), (0.1, 4.0), (0.2, 3.0)])) is None


def test_cost_is_the_cheapest_point_when_nothing_cheaper_is_worse():
    assert frontier._diffusion_cost_for(5.0, _diff([(0.05, 4.5), (0.1, 4.0)])) == 0.05


def test_cost_interpolates_log_linearly_between_the_bracketing_points():
    # 6.0 lies halfway in FID between 8 (at 40 ms) and 4 (at 160 ms): geometric mean of the times
    got = frontier._diffusion_cost_for(6.0, _diff([(0.01, 20.0), (0.04, 8.0), (0.16, 4.0), (0.4, 3.5)]))
    assert got == pytest.approx(math.sqrt(0.04 * 0.16))
    # the bracket is the most expensive worse point below the cheapest good one, not any worse point
    assert frontier._diffusion_cost_for(8.0, _diff([(0.01, 20.0), (0.04, 8.0), (0.16, 4.0)])) == pytest.approx(0.04)


def test_comparison_ratio_and_equal_time_columns(tmp_path):
    rows = {
        "uvit-autonat.jsonl": [{"series": "uvit-autonat", "steps": 4, "fid": 3.0, "seconds_per_image": 0.01},
                               {"series": "uvit-autonat", "steps": 8, "fid": 3.5, "seconds_per_image": 0.02}],
        "diffusion-dpmpp2m.jsonl": [{"series": "diffusion-dpmpp2m", "steps": s, "fid": f, "seconds_per_image": t}
                                    for s, f, t in [(5, 6.0, 0.005), (10, 3.0, 0.1), (20, 2.5, 0.2)]],
        "diffusion-dpmpp2m-w3.jsonl": [{"series": "diffusion-dpmpp2m (w sweep, T=10)", "steps": 10, "fid": 1.0,
                                        "seconds_per_image": 0.001}],
    }
    for name, rs in rows.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rs))
    text = frontier.comparison(tmp_path)
    line = next(x for x in text.splitlines() if x.startswith("| uvit-autonat"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # best NAT point is T=4 (FID 3.0 at 10 ms); diffusion matches FID 3.0 at 100 ms -> 10x;
    # within 10 ms diffusion only has the 5-step point (FID 6.0); the sweep row never counts
    assert cells == ["uvit-autonat (T=4)", "3.00", "10.0 ms", "100.0 ms", "10.0x", "6.00"]


def test_comparison_gives_a_lower_bound_when_diffusion_never_reaches_the_nat(tmp_path):
    (tmp_path / "enat-autonat.jsonl").write_text(json.dumps(
        {"series": "enat-autonat", "steps": 8, "fid": 2.0, "seconds_per_image": 0.01}) + "\n")
    (tmp_path / "diffusion-dpmpp2m.jsonl").write_text("".join(json.dumps(
        {"series": "diffusion-dpmpp2m", "steps": s, "fid": f, "seconds_per_image": t}) + "\n"
        for s, f, t in [(10, 4.0, 0.07), (20, 3.0, 0.15), (50, 3.5, 0.4)]))
    line = next(x for x in frontier.comparison(tmp_path).splitlines() if x.startswith("| enat-autonat"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # the best diffusion FID (3.0, at 150 ms) is still worse than the NAT's 2.0 at 10 ms: > 15x
    assert cells[3:5] == ["not reached (best: 3.00 at 150.0 ms)", "> 15.0x"]


def test_read_frontier_labels_points_by_their_label_field_else_by_steps(tmp_path):
    from autonat.plots import read_frontier
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"fid": 5.0, "flops_per_image": 2e10, "steps": 10, "series": "sweep", "label": "w=3"})
                 + "\n" + json.dumps({"fid": 4.0, "flops_per_image": 4e10, "steps": 20}) + "\n")
    pts = read_frontier([f])
    assert [(p["group"], p["label"], p["gflops"]) for p in pts] == [("sweep", "w=3", 20.0), ("d", "T=20", 40.0)]
