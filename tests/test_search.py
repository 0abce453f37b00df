"""Strategy search: projection, FD and SPSA on synthetic objectives, Beta line search, trial store."""
from __future__ import annotations

import math

import pytest
import torch

from autonat.search.generation import (GenSearchConfig, from_vector, isotonic_nonincreasing, layout,
                                       optimize_generation, project, to_vector)
from autonat.search.training_strategy import BetaSearchConfig, line_search_beta, moment_matched_beta
from autonat.presets import maskgit
from autonat.strategy import Strategy

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
                          eps_other=0.05, spsa_k=2, max_step_ratio=0, max_step_other=0)
    res = optimize_generation(quadratic, maskgit(T), cfg, seed=1)
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


def test_searcher_caches_fids_by_everything_that_determines_them(tmp_path, tiny_search_parts, monkeypatch):
    """The trial store: the same evaluation is never run twice, across processes (a killed search
    re-runs without repeating finished evaluations), and an evaluation against another reference
    set (or another strategy, n, seed) is never answered from the cache."""
    import autonat.search.loop as L
    from autonat.search.loop import SearchConfig, Searcher
    model, tok, net = tiny_search_parts
    calls = []
    real = L.evaluate_model

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    monkeypatch.setattr(L, "evaluate_model", counted)
    ref_a, ref_b = torch.randn(40, 8), torch.randn(40, 8) + 1.0
    cfg = SearchConfig(only="generation", steps=T, n=8, batch_size=8, bf16=False)
    s = Searcher(tmp_path, cfg, tok, net, ref_a, log=lambda *_: None)
    f1 = s.fid(model, maskgit(T))
    assert s.fid(model, maskgit(T)) == f1 and len(calls) == 1          # cached in-process
    s.store.close()
    again = Searcher(tmp_path, cfg, tok, net, ref_a, log=lambda *_: None)   # "after a kill"
    assert again.fid(model, maskgit(T)) == f1 and len(calls) == 1       # cached on disk
    other_ref = Searcher(tmp_path, cfg, tok, net, ref_b, log=lambda *_: None)
    f2 = other_ref.fid(model, maskgit(T))
    assert len(calls) == 2 and f2 != f1                                 # another reference set
    again.fid(model, maskgit(T).with_guidance(0.5))
    again.fid(model, maskgit(T), n=10)
    again.fid(model, maskgit(T), seed=5)
    assert len(calls) == 5


def test_generation_search_resumes_after_a_kill_without_repeating(tmp_path, tiny_search_parts, monkeypatch):
    import autonat.search.loop as L
    from autonat.search.loop import SearchConfig, Searcher
    model, tok, net = tiny_search_parts
    calls = []
    real = L.evaluate_model

    def flaky(*a, **kw):
        if len(calls) == 5:
            raise KeyboardInterrupt               # the kill
        calls.append(1)
        return real(*a, **kw)
    monkeypatch.setattr(L, "evaluate_model", flaky)
    cfg = SearchConfig(only="generation", steps=T, n=8, batch_size=8, bf16=False, validate_top=1,
                       gen=GenSearchConfig(method="spsa", max_updates=4))
    ref = torch.randn(40, 8)
    with pytest.raises(KeyboardInterrupt):
        Searcher(tmp_path, cfg, tok, net, ref, log=lambda *_: None).search_generation(model, maskgit(T))
    assert len(calls) == 5
    monkeypatch.setattr(L, "evaluate_model", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    res = Searcher(tmp_path, cfg, tok, net, ref, log=lambda *_: None).search_generation(model, maskgit(T))
    assert len(calls) == res.evaluations       # the 5 finished evaluations came from the store


class _FakeModel:
    """Stands for a trained bundle in the loop's control flow (alpha, beta: its p(r))."""
    seq_len = 49

    def __init__(self, a, b):
        self.alpha, self.beta, self.identity = a, b, f"fake-{a:g}-{b:g}"
        self.model = self


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
    cfg = GenSearchConfig(method="spsa", max_updates=5, lr_other=10.0, lr_ratio=1.0)   # auto caps: 0.02 / 0.1
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

    def run(eps_ratio):
        lines = []
        cfg = SearchConfig(steps=T, gen=GenSearchConfig(method="fd", max_updates=1, eps_ratio=eps_ratio))
        s = Quadratic(tmp_path / str(eps_ratio), cfg, tokenizer=None, extractor=None, ref_feats=None,
                      log=lines.append)
        s.search_generation(_FakeModel(1.0, 1.0), maskgit(T))
        return [x for x in lines if "warning" in x]

    warned = run(0.01)
    assert len(warned) == 1 and "49 tokens" in warned[0]
    assert run(1 / 40) == []


def test_alternating_loop_keeps_a_better_initial_p_r_outside_the_beta_family(tmp_path):
    """arccos is not a Beta: if no Beta candidate beats it, it stays, and F never gets worse."""
    from autonat.search.loop import SearchConfig, Searcher

    class Synthetic(Searcher):
        def trained(self, mask_dist):
            return _FakeModel(0.0, 0.0) if mask_dist.spec == "arccos" else _FakeModel(mask_dist.alpha, mask_dist.beta)

        def fid(self, model, strategy, **kw):
            penalty = 0.0 if model.alpha == 0.0 else 1.0 + (math.log(model.alpha / 6)) ** 2
            return quadratic(strategy) + penalty

    cfg = SearchConfig(steps=T, eps=0.05, max_alternations=3,
                       gen=GenSearchConfig(method="fd", max_updates=10, lr_ratio=5e-3, lr_other=0.2,
                                           eps_ratio=1e-3, eps_other=1e-3),
                       beta=BetaSearchConfig(max_trainings=6))
    s = Synthetic(tmp_path, cfg, tokenizer=None, extractor=None, ref_feats=None, log=lambda *_: None)
    out = s.alternate()
    assert out["mask_dist"].spec == "arccos"
    fids = [r["fid"] for r in out["alternations"]]
    assert all(b <= a + 1e-12 for a, b in zip(fids, fids[1:]))


@pytest.mark.parametrize("method,extra", [("fd", {}), ("spsa", {"spsa_k": 2}), ("fd", {"knobs": ("tau1", "s")})])
def test_planned_evaluations_is_what_the_optimiser_does(method, extra):
    from autonat.search.generation import planned_evaluations
    cfg = GenSearchConfig(method=method, max_updates=3, **extra)
    res = optimize_generation(quadratic, maskgit(T), cfg)
    assert res.evaluations == planned_evaluations(cfg, T)


# ----------------------------------------------------------------------------------------------
# The pattern stage, validation and knob checks
# ----------------------------------------------------------------------------------------------

def test_schedule_family_holds_the_linear_presets():
    from autonat.presets import enat
    from autonat.search.pattern import family_strategy, fit_family
    for st in (maskgit(8), maskgit(4, 2.0, 3.0), enat(8)):
        back = family_strategy(fit_family(st), st)
        for k in ("r", "tau1", "tau2", "s"):
            assert max(abs(a - b) for a, b in zip(getattr(back, k), getattr(st, k))) < 2e-3, (st.name, k)


def test_schedule_family_holds_its_start_exactly_even_when_it_is_not_cosine_or_linear():
    """Halton's r is an arcsin count schedule and its tau1 = 1 / (a linear logit multiplier): the
    family is built around the start, so its fit is the start itself, and a cosine start still
    moves along the cosine family (r = cos(pi/2 x^q))."""
    import math

    import numpy as np

    from autonat.presets import resolve_strategy
    from autonat.search.pattern import family_strategy, fit_family
    for spec, T in (("halton", 8), ("halton:1,1,1.2,1", 8), ("halton:1,1,1,0", 4), ("enat", 8)):
        st = resolve_strategy(spec, T)
        assert family_strategy(fit_family(st), st) == st, spec
    th = fit_family(maskgit(8))
    moved = family_strategy({**th, "log_q": th["log_q"] + 0.3}, maskgit(8))
    x = np.arange(1, 9) / 8
    assert np.allclose(moved.r[:-1], np.cos(np.pi / 2 * x[:-1] ** math.exp(th["log_q"] + 0.3)), atol=1e-12)


def test_pattern_search_improves_a_halton_start_next_to_its_optimum():
    """The arccos Halton model's search: every move was measured around the start's nearest cosine
    member (worse than the start), so a better point beside the start was never found."""
    from autonat.presets import halton
    start = halton(8, 1.0, 1.0, 1.0, 0)
    want_r = torch.tensor(start.r, dtype=torch.float64)

    def near_start(st):       # optimum: the start's own r with a guidance ramp ending at 1.5
        return float(10 * ((torch.tensor(st.r) - want_r) ** 2).sum() + (st.s[-1] - 1.5) ** 2)
    res = optimize_generation(near_start, start, GenSearchConfig(method="pattern", pattern_evals=20, max_updates=0))
    assert near_start(start) == pytest.approx(0.25)
    assert res.best_value < 0.02 and res.best.order == "halton", res.best_value


def _hand_optimum(st: Strategy) -> float:
    """FID-like objective whose optimum is a hand knob: tau1 ramping 1 -> 0.6, guidance 2 -> 2."""
    want_tau1 = torch.linspace(1.0, 0.6, st.steps, dtype=torch.float64)
    return float(((torch.tensor(st.tau1) - want_tau1) ** 2).sum() + ((torch.tensor(st.s) - 2.0) ** 2).sum() / 4)


def test_pattern_search_finds_a_hand_setting_that_capped_spsa_does_not_reach():
    from autonat.presets import halton
    start = halton(8, 1.0, 1.0, 1.0, 0)          # the plain fixed order: w = 1, no ramp
    pat = optimize_generation(_hand_optimum, start, GenSearchConfig(method="pattern", pattern_evals=60,
                                                                    max_updates=0, knobs=("tau1", "s")))
    spsa = optimize_generation(_hand_optimum, start, GenSearchConfig(method="spsa", max_updates=29,
                                                                     knobs=("tau1", "s")))
    assert pat.evaluations <= 60 and spsa.evaluations == 60
    assert pat.best_value < 0.02 < spsa.best_value, (pat.best_value, spsa.best_value)
    assert pat.best.order == "halton" and pat.history[0]["phase"] == "start"


def test_pattern_never_returns_worse_than_its_start():
    best = optimize_generation(lambda st: 0.0 if st == maskgit(T) else 1.0, maskgit(T),
                               GenSearchConfig(method="pattern", pattern_evals=10, max_updates=0))
    assert best.best == maskgit(T) and best.best_value == 0.0


def test_a_fixed_token_order_never_searches_tau2():
    from autonat.io import AutonatError
    from autonat.presets import halton
    with pytest.raises(AutonatError, match="ignores"):
        optimize_generation(quadratic, halton(T), GenSearchConfig(method="spsa", max_updates=1, knobs=("tau2",)))
    res = optimize_generation(quadratic, halton(T), GenSearchConfig(method="spsa", max_updates=3))
    assert all(h["strategy"]["tau2"] == list(halton(T).tau2) for h in res.history)


def test_validation_keeps_the_candidate_that_holds_up_on_fresh_noise(tmp_path):
    """The search's lowest F can be luck of one noise set: of the best candidates, the one with
    the lowest mean of search F and validation F is kept."""
    from autonat.search.generation import SearchResult
    from autonat.search.loop import SearchConfig, Searcher
    good, lucky = maskgit(T), maskgit(T).with_guidance(3.0)
    table = {(good, 0): 1.0, (lucky, 0): 0.8, (good, 7): 1.0, (lucky, 7): 1.5}

    class Fake(Searcher):
        def fid(self, bundle, strategy, seed=None, **kw):
            return table[(strategy, 0 if seed is None else seed)]

    cfg = SearchConfig(steps=T, validate_top=2, validation_seed=7)
    s = Fake(tmp_path, cfg, tokenizer=None, extractor=None, ref_feats=None, log=lambda *_: None)
    hist = [{"value": 0.8, "strategy": lucky.to_dict()}, {"value": 1.0, "strategy": good.to_dict()}]
    res = s.validated(None, SearchResult(lucky, 0.8, hist), "gen")
    assert res.best == good and res.best_value == 1.0


@pytest.fixture
def saved_tiny(tmp_path):
    """A tiny saved model + tokenizer + a 28x28 image folder as reference data."""
    import numpy as np
    from PIL import Image

    from autonat.models.registry import save_model
    from conftest import tiny_tokenizer, tiny_uvit
    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    save_model(tiny_uvit(num_classes=2), tmp_path / "model", tokenizer={"name": str(tmp_path / "tok"),
                                                                         "identity": tok.identity},
               training={"class_names": ["a", "b"]})
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8), mode="L").save(
                tmp_path / "imgs" / c / f"{i}.png")
    return tmp_path


def _hand_loving_fid(monkeypatch, calls):
    """Replace the FID by a synthetic one whose optimum is the Halton order with sharpening
    logits (tau1 -> 2/3, like the hand setting halton:1,1,1.5) and mild guidance."""
    import autonat.search.loop as L

    def fid(self, bundle, st, *, seed=None, n=None, tag="search", quiet=False):
        calls.append((tag, st.order, st.tau1[-1]))
        return (5.0 * (st.order != "halton") + 4 * (st.tau1[-1] - 2 / 3) ** 2 + 4 * (st.tau1[0] - 1.0) ** 2
                + 0.5 * (sum(st.s) / len(st.s) - 1.0) ** 2 + 0.01 * ((seed or 0) % 7))
    monkeypatch.setattr(L.Searcher, "fid", fid)


def test_screening_searches_from_the_best_hand_setting(saved_tiny, monkeypatch):
    """From maskgit, the hand grid's Halton ramp is screened, searched from, reported on fresh seeds,
    and the search's answer is at least as good on the search objective."""
    from autonat.presets import HAND_GRID
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    calls = []
    _hand_loving_fid(monkeypatch, calls)
    cfg = SearchConfig(only="generation", model=str(saved_tiny / "model"), ref_data=str(saved_tiny / "imgs"),
                       featnet="", steps=4, n=8, n_final=8, batch_size=8, bf16=False,
                       gen=GenSearchConfig(pattern_evals=12))
    rep = run(cfg, saved_tiny / "s", log=lambda *_: None)
    screen = rep.summary["screening"]
    assert [r["spec"] for r in screen][0] == "halton:1,1,1.5,0"
    assert sorted(r["spec"] for r in screen) == sorted(HAND_GRID)        # maskgit is in the grid once
    assert [c[0] for c in calls[:len(HAND_GRID)]] == ["screen"] * len(HAND_GRID)
    first_search = next(c for c in calls if c[0] == "gen")
    assert first_search[1:] == ("halton", pytest.approx(2 / 3))          # the search starts from the winner
    assert rep.best.order == "halton" and rep.summary["best_search_fid"] <= screen[0]["fid"] + 0.07
    assert rep.final["best_hand"]["spec"] == "halton:1,1,1.5,0"
    assert "best hand setting of the screening (halton:1,1,1.5,0)" in (saved_tiny / "s" / "report.md").read_text()


def test_screening_confirms_its_best_few_with_more_samples(saved_tiny, monkeypatch):
    """A setting that only shows its advantage with more samples (here: the randomised Halton start
    scores worse at the search's n, better at 4 n) is searched from: the confirmation re-ranks the
    screening's best few by their mean at the larger n over the search and validation seeds."""
    import autonat.search.loop as L
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    calls = []

    def fid(self, bundle, st, *, seed=None, n=None, tag="search", quiet=False):
        calls.append((tag, n, seed, st.order))
        big = (n or self.cfg.n) > self.cfg.n
        if st.order == "halton-random":
            return 1.0 if big else 2.0
        return 1.5 if st.order == "halton" and st.tau1[-1] == 1.0 else 3.0 + (st.order == "confidence")
    monkeypatch.setattr(L.Searcher, "fid", fid)
    base = dict(only="generation", model=str(saved_tiny / "model"), ref_data=str(saved_tiny / "imgs"), featnet="",
                steps=4, n=8, n_final=64, batch_size=8, bf16=False,
                gen=GenSearchConfig(pattern_evals=2, max_updates=0), late_evals=0, validate_top=1)
    rep = run(SearchConfig(**base), saved_tiny / "c", log=lambda *_: None)
    screen = rep.summary["screening"]
    # at n = 8: halton:1,1,1,0 (1.5) first, then three randomised settings (2.0); at n = 32 the
    # two confirmed randomised ones (1.0) move ahead of it
    assert [r["order"] for r in screen[:3]] == ["halton-random", "halton-random", "halton"]
    assert [r["confirm"] for r in screen[:3]] == [1.0, 1.0, 1.5] and "confirm" not in screen[3]
    confirms = [c for c in calls if c[0] == "screen-confirm"]
    assert len(confirms) == 6 and {c[1] for c in confirms} == {32}          # 3 settings x 2 noise sets, n = 4 x 8
    assert {c[2] for c in confirms} == {None, 500_000}
    assert next(c for c in calls if c[0] == "gen")[3] == "halton-random"     # the search starts from it
    calls.clear()
    rep = run(SearchConfig(**base, screen_confirm=1), saved_tiny / "d", log=lambda *_: None)
    assert rep.summary["screening"][0]["spec"] == "halton:1,1,1,0" and not any(c[0] == "screen-confirm" for c in calls)


def test_screening_modes(saved_tiny, monkeypatch):
    """starts = only the listed starts; none = a search from each start; a subset of knobs never
    screens hand settings (they would change the fixed knobs)."""
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    base = dict(only="generation", model=str(saved_tiny / "model"), ref_data=str(saved_tiny / "imgs"), steps=4,
                n=8, n_final=8, batch_size=8, bf16=False, init_strategy="maskgit,enat")
    for k, (kw, screened, searches) in enumerate((
            (dict(screen="starts", gen=GenSearchConfig(pattern_evals=4, max_updates=0)), ["enat", "maskgit"], 1),
            (dict(screen="hand", gen=GenSearchConfig(pattern_evals=4, max_updates=0, knobs=("s",))),
             ["enat", "maskgit"], 1),
            (dict(screen="none", gen=GenSearchConfig(pattern_evals=4, max_updates=0)), [], 2))):
        calls = []
        _hand_loving_fid(monkeypatch, calls)
        rep = run(SearchConfig(**kw, **base), saved_tiny / f"s{k}", log=lambda *_: None)
        assert sorted(r["spec"] for r in rep.summary["screening"]) == screened
        assert len(rep.summary["starts"]) == searches and "best_hand" not in rep.final


def test_listed_starts_keep_their_preset_arguments():
    """`--init-strategy` separates starts with commas, and a preset's arguments are commas too:
    `halton:1,1,1.2,1` is one start (it was split into `halton:1`, `1`, `1.2`, `1`)."""
    from autonat.presets import resolve_strategy
    from autonat.search.loop import starts
    got = starts("enat, halton:1,1,1.2,1,maskgit:1,3,runs/s/best_strategy.json")
    assert got == ["enat", "halton:1,1,1.2,1", "maskgit:1,3", "runs/s/best_strategy.json"]
    assert starts("") == ["maskgit"] and starts("halton") == ["halton"]
    st = resolve_strategy(got[1], 8)
    assert st.order == "halton-random"


def test_a_listed_start_that_beats_the_first_is_reported_on_fresh_seeds_too(saved_tiny, monkeypatch):
    """--screen starts: the first start is the baseline of the fresh-seed report; when the screening
    picks another start, that start is evaluated on the fresh seeds as well (it is the hand setting
    the found strategy must beat)."""
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    calls = []
    _hand_loving_fid(monkeypatch, calls)
    cfg = SearchConfig(only="generation", model=str(saved_tiny / "model"), ref_data=str(saved_tiny / "imgs"),
                       steps=4, n=8, n_final=8, batch_size=8, bf16=False, screen="starts",
                       init_strategy="maskgit,halton:1,1,1.5,0", gen=GenSearchConfig(pattern_evals=4, max_updates=0))
    rep = run(cfg, saved_tiny / "b", log=lambda *_: None)
    assert rep.summary["screening"][0]["spec"] == "halton:1,1,1.5,0"
    assert rep.final["best_hand"]["spec"] == "halton:1,1,1.5,0"
    assert rep.final["best_hand"]["fid"] > 0 and rep.final["baseline"] != rep.final["best_hand"]["fid"]
