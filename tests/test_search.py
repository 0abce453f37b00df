"""Strategy search: projection, FD and SPSA on synthetic objectives, Beta line search, trial store."""
from __future__ import annotations

import math

import pytest
import torch

from autonat.search.generation import (GenSearchConfig, from_vector, isotonic_nonincreasing, layout,
                                       optimize_generation, project, to_vector)
from autonat.search.store import TrialStore, trial_key
from autonat.search.training_strategy import BetaSearchConfig, line_search_beta, moment_matched_beta
from autonat.strategy import Strategy, maskgit

T = 4
TARGET = Strategy(r=(0.8, 0.5, 0.2, 0.0), tau1=(1.5, 1.2, 1.0, 0.8), tau2=(2.0, 1.0, 0.5, 0.0),
                  s=(0.2, 0.6, 1.0, 1.5))


def quadratic(st: Strategy) -> float:
    """Smooth objective with its minimum at TARGET (inside the constraints)."""
    x, y = to_vector(st), to_vector(TARGET)
    w = torch.ones_like(x)
    w[layout(T)["r"]] = 50.0      # ratios live on a smaller scale
    return float((w * (x - y) ** 2).sum())


def test_projection_keeps_every_constraint():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        x = torch.randn(4 * T - 2, generator=g, dtype=torch.float64) * 2
        p = project(x, T)
        st = from_vector(p, maskgit(T))     # Strategy validates all constraints on construction
        assert all(0 <= v <= 0.99 for v in st.r[:-1])
        assert all(b <= a for a, b in zip(st.r, st.r[1:]))
        assert min(st.tau1 + st.tau2 + st.s) >= 0
    assert isotonic_nonincreasing(torch.tensor([0.2, 0.5, 0.1])).tolist() == pytest.approx([0.35, 0.35, 0.1])


def test_vector_roundtrip():
    st = maskgit(T)
    assert from_vector(to_vector(st), st) == st
    assert to_vector(st).numel() == 4 * T - 2


def test_fd_converges_on_smooth_objective():
    cfg = GenSearchConfig(method="fd", max_updates=60, lr_ratio=5e-3, lr_other=0.2, eps_ratio=1e-3, eps_other=1e-3)
    res = optimize_generation(quadratic, maskgit(T), cfg)
    assert quadratic(maskgit(T)) > 5 and res.best_value < 0.05
    assert res.evaluations == 1 + 60 * (4 * T - 2 + 1)


def test_spsa_converges_on_smooth_objective():
    cfg = GenSearchConfig(method="spsa", max_updates=300, lr_ratio=2e-3, lr_other=0.05, eps_ratio=1e-2,
                          eps_other=0.05, spsa_k=2, seed=1)
    res = optimize_generation(quadratic, maskgit(T), cfg)
    assert res.best_value < 0.05 * quadratic(maskgit(T))
    assert res.evaluations == 2 * 2 * 300 + 2   # 2k per update, + start and end


def test_knobs_left_out_stay_fixed():
    cfg = GenSearchConfig(method="fd", max_updates=5, knobs=("tau1",), lr_other=0.2, eps_other=1e-3)
    init = maskgit(T)
    res = optimize_generation(quadratic, init, cfg)
    assert res.best.r == init.r and res.best.s == init.s and res.best.tau2 == init.tau2
    assert res.best.tau1 != init.tau1


def test_eval_budget_is_respected():
    res = optimize_generation(quadratic, maskgit(T), GenSearchConfig(method="fd", max_evals=7))
    assert res.evaluations == 7


def test_beta_line_search_finds_unimodal_optimum():
    calls = []

    def f(a, b):
        calls.append((a, b))
        return (math.log(a) - math.log(9.0)) ** 2 + 2 * (math.log(b) - math.log(2.5)) ** 2

    res = line_search_beta(f, 1.0, 1.0, BetaSearchConfig(max_trainings=60, min_factor=1.05, max_rounds=6))
    assert abs(math.log(res.alpha / 9.0)) < math.log(1.2) and abs(math.log(res.beta / 2.5)) < math.log(1.2)
    assert len(set(calls)) == len(calls)         # memoised: no candidate trained twice


def test_moment_matching():
    a, b = moment_matched_beta(0.8, 0.01)
    assert math.isclose(a / (a + b), 0.8) and math.isclose(a * b / ((a + b) ** 2 * (a + b + 1)), 0.01)


def test_trial_store_resumes_after_kill(tmp_path):
    """A search killed mid-way re-runs without repeating finished evaluations."""
    counter = {"n": 0}

    def run(limit=None):
        store = TrialStore(tmp_path / "t.sqlite")

        def objective(st):
            key = trial_key(st.to_dict())
            hit = store.get_eval(key)
            if hit:
                return hit["fid"]
            if limit is not None and counter["n"] >= limit:
                raise KeyboardInterrupt   # the kill
            counter["n"] += 1
            v = quadratic(st)
            store.put_eval(key, tag="t", model="m", inputs={}, seed=0, n=1, fid=v, metrics={}, wall_seconds=0)
            return v

        try:
            return optimize_generation(objective, maskgit(T), GenSearchConfig(method="fd", max_updates=3))
        finally:
            store.close()

    with pytest.raises(KeyboardInterrupt):
        run(limit=20)
    assert counter["n"] == 20
    res = run()
    assert counter["n"] == res.evaluations     # the 20 finished ones were not recomputed
    fresh = optimize_generation(quadratic, maskgit(T), GenSearchConfig(method="fd", max_updates=3))
    assert res.best == fresh.best and res.best_value == fresh.best_value


class _FakeModel:
    def __init__(self, a, b):
        self.alpha, self.beta, self.identity = a, b, f"fake-{a:g}-{b:g}"


def test_alternating_loop_stops_at_eps(tmp_path):
    """Algorithm 1's control flow on a synthetic objective: F = strategy term + p(r) term."""
    from autonat.masking import parse_mask_dist
    from autonat.search.loop import SearchConfig, Searcher

    class Synthetic(Searcher):
        def trained(self, mask_dist):
            d = parse_mask_dist(mask_dist)
            a, b = (d.alpha, d.beta) if hasattr(d, "alpha") else (1.0, 1.0)
            self.trainings = getattr(self, "trainings", 0) + 1
            return _FakeModel(a, b)

        def fid(self, model, strategy, **kw):
            return quadratic(strategy) + 3 * ((math.log(model.alpha / 6)) ** 2 + (math.log(model.beta / 2)) ** 2)

    cfg = SearchConfig(steps=T, eps=0.05, max_alternations=6,
                       gen=GenSearchConfig(method="fd", max_updates=40, lr_ratio=5e-3, lr_other=0.2,
                                           eps_ratio=1e-3, eps_other=1e-3),
                       beta=BetaSearchConfig(max_trainings=40, min_factor=1.05, max_rounds=4))
    s = Synthetic(tmp_path, cfg, tokenizer=None, extractor=None, ref_feats=None, log=lambda *_: None)
    out = s.alternate()
    rounds = out["alternations"]
    assert rounds[-1]["fid"] < 0.1 < rounds[0]["fid"]
    assert 2 <= len(rounds) - 1 < cfg.max_alternations          # stopped by eps, not by the cap
    assert abs(rounds[-1]["fid"] - rounds[-2]["fid"]) <= cfg.eps
    assert [e["alternation"] for e in s.store.events("alternation")] == [r["alternation"] for r in rounds[1:]]


def test_step_clipping_bounds_every_update():
    cfg = GenSearchConfig(method="spsa", max_updates=5, lr_other=10.0, lr_ratio=1.0, max_step_ratio=0.02,
                          max_step_other=0.1, seed=0)
    centers = []
    optimize_generation(lambda st: 1e3 * quadratic(st), maskgit(T), cfg,
                        on_update=lambda u, st, f: centers.append(to_vector(st)))
    prev = project(to_vector(maskgit(T)), T)
    lay = layout(T)
    for x in centers:
        d = (x - prev).abs()
        assert float(d[lay["tau1"]].max()) <= 0.1 + 1e-9 and float(d[lay["s"]].max()) <= 0.1 + 1e-9
        prev = x


def test_fd_warns_when_its_ratio_step_is_below_one_token(tmp_path):
    """At 7x7 tokens the released r step (0.01) changes no masked count: the user is told."""
    from autonat.search.loop import SearchConfig, Searcher

    class Quadratic(Searcher):
        def fid(self, model, strategy, **kw):
            return quadratic(strategy)

    class Model(_FakeModel):
        seq_len = 49

    def run(eps_ratio):
        lines = []
        cfg = SearchConfig(steps=T, gen=GenSearchConfig(method="fd", max_updates=1, eps_ratio=eps_ratio))
        s = Quadratic(tmp_path / str(eps_ratio), cfg, tokenizer=None, extractor=None, ref_feats=None,
                      log=lines.append)
        s.search_generation(Model(1.0, 1.0), maskgit(T))
        return [x for x in lines if "warning" in x]

    warned = run(0.01)
    assert len(warned) == 1 and "49 tokens" in warned[0]
    assert run(1 / 40) == []


def test_alternating_loop_keeps_a_better_initial_p_r_outside_the_beta_family(tmp_path):
    """arccos is not a Beta: if no Beta candidate beats it, it stays, and F never gets worse."""
    from autonat.search.loop import SearchConfig, Searcher

    class Synthetic(Searcher):
        def trained(self, mask_dist):
            return _FakeModel(0.0, 0.0) if mask_dist == "arccos" else _FakeModel(*map(float, mask_dist[5:].split(",")))

        def fid(self, model, strategy, **kw):
            penalty = 0.0 if model.alpha == 0.0 else 1.0 + (math.log(model.alpha / 6)) ** 2
            return quadratic(strategy) + penalty

    cfg = SearchConfig(steps=T, eps=0.05, max_alternations=3,
                       gen=GenSearchConfig(method="fd", max_updates=10, lr_ratio=5e-3, lr_other=0.2,
                                           eps_ratio=1e-3, eps_other=1e-3),
                       beta=BetaSearchConfig(max_trainings=6))
    s = Synthetic(tmp_path, cfg, tokenizer=None, extractor=None, ref_feats=None, log=lambda *_: None)
    out = s.alternate()
    assert out["mask_dist"] == "arccos"
    fids = [r["fid"] for r in out["alternations"]]
    assert all(b <= a + 1e-12 for a, b in zip(fids, fids[1:]))
