"""Late refinement: more samples late, a small-step compass search, a noise-aware acceptance rule."""
from __future__ import annotations

import pytest
import torch

from autonat.presets import resolve_strategy
from autonat.search.pattern import fit_family, late_refinement
from autonat.strategy import Strategy

START = resolve_strategy("enat", 4)
KNOBS = ("r", "tau1", "tau2", "s")
# The optimum sits just beside the start: 0.1 in s(T) and 0.06 in tau1(1), well below the first
# stage's steps (0.5 and 0.25), where a full-size compass move only overshoots.
GOAL = {**fit_family(START), "s_end": fit_family(START)["s_end"] + 0.1,
        "tau1_start": fit_family(START)["tau1_start"] - 0.06}


def bowl(st: Strategy) -> float:
    th = fit_family(st)
    return 1.0 + sum((th[k] - GOAL[k]) ** 2 for k in GOAL)


def test_finds_a_small_improvement_and_accepts_it_when_the_validation_agrees():
    out = late_refinement(bowl, bowl, START, KNOBS, budget=16)
    assert out["accepted"] and out["strategy"] is not START
    assert bowl(out["strategy"]) < bowl(START) - 0.005          # most of the 0.0136 available
    assert len(out["history"]) <= 16
    assert out["candidate_validation"] < out["incumbent_validation"]


def test_the_first_stage_steps_find_nothing_with_that_budget():
    """Why the late stage uses small steps: at full size every move overshoots the optimum."""
    out = late_refinement(bowl, bowl, START, KNOBS, budget=16, step_scale=1.0)
    assert not out["accepted"] and out["strategy"] is START


def test_a_candidate_that_loses_on_the_validation_noise_is_refused():
    out = late_refinement(bowl, _lucky_on_search_seeds, START, KNOBS, budget=16)   # the "improvement" is noise
    assert out["candidate_search"] < out["incumbent_search"]
    assert not out["accepted"] and out["strategy"] is START


def _lucky_on_search_seeds(st: Strategy) -> float:
    th, th0 = fit_family(st), fit_family(START)
    return bowl(st) + 5.0 * sum(abs(th[k] - th0[k]) for k in th)


def test_when_the_two_noise_sets_disagree_more_samples_decide():
    """The U-ViT T = 4 case: the candidate wins on the search seeds and loses on the validation
    seeds. A confirmation with more samples that shows it better on both sets accepts it; one
    that shows it worse refuses it; without a confirmation the first mean decides (refused)."""
    calls = []

    def better_with_more_samples(st):
        calls.append(st)
        return bowl(st), bowl(st)
    out = late_refinement(bowl, _lucky_on_search_seeds, START, KNOBS, budget=16, confirm=better_with_more_samples)
    assert out["candidate_validation"] > out["incumbent_validation"]            # the sets split
    assert len(calls) == 2 and out["accepted"] and out["strategy"] is not START
    assert sum(out["candidate_confirm"]) < sum(out["incumbent_confirm"])
    worse = late_refinement(bowl, _lucky_on_search_seeds, START, KNOBS, budget=16,
                            confirm=lambda st: (_lucky_on_search_seeds(st),) * 2)
    assert not worse["accepted"] and worse["strategy"] is START
    assert not late_refinement(bowl, _lucky_on_search_seeds, START, KNOBS, budget=16)["accepted"]


def test_no_confirmation_when_the_two_noise_sets_agree():
    calls = []
    out = late_refinement(bowl, bowl, START, KNOBS, budget=16, confirm=lambda st: calls.append(st) or (0.0, 0.0))
    assert out["accepted"] and calls == [] and "candidate_confirm" not in out


def test_no_validation_evaluations_when_nothing_beats_the_incumbent():
    calls = []

    def validation(st):
        calls.append(st)
        return 0.0
    at_goal = lambda st: 1.0 + sum((fit_family(st)[k] - fit_family(START)[k]) ** 2 for k in GOAL)   # noqa: E731
    out = late_refinement(at_goal, validation, START, KNOBS, budget=10)
    assert not out["accepted"] and out["strategy"] is START and calls == []


def test_searcher_runs_it_with_more_samples_and_counts_its_evaluations(tmp_path, tiny_search_parts, monkeypatch):
    import autonat.search.loop as L
    from autonat.search.generation import GenSearchConfig
    from autonat.search.loop import SearchConfig, Searcher
    model, tok, net = tiny_search_parts
    ns = []
    real = L.evaluate_model
    monkeypatch.setattr(L, "evaluate_model", lambda b, st, ex, ecfg, *a, **kw: (ns.append(ecfg.n),
                                                                               real(b, st, ex, ecfg, *a, **kw))[1])
    cfg = SearchConfig(only="generation", steps=4, n=8, n_final=100, batch_size=8, bf16=False, validate_top=1,
                       late_evals=5, gen=GenSearchConfig(method="spsa", max_updates=2))
    s = Searcher(tmp_path, cfg, tok, net, torch.randn(40, 8), log=lambda *_: None)
    res = s.search_generation(model, resolve_strategy("maskgit", 4))
    late = s.store.events("late_refinement")
    assert len(late) == 1 and late[0]["n"] == 32                 # 4 x n
    assert ns.count(32) == len(late[0]["history"]) + 2 * ("candidate_validation" in late[0])
    assert ns.count(100) == 4 * ("candidate_confirm" in late[0]) and late[0]["n_confirm"] == 100   # n_final
    assert len(ns) == res.evaluations                              # every evaluation is counted


@pytest.mark.parametrize("late_n, expected", [(0, 100), (50, 50)])
def test_late_n_defaults_to_four_times_n_capped_at_n_final(tmp_path, tiny_search_parts, late_n, expected):
    from autonat.search.generation import GenSearchConfig
    from autonat.search.loop import SearchConfig, Searcher
    model, tok, net = tiny_search_parts
    cfg = SearchConfig(only="generation", steps=4, n=30, n_final=100, batch_size=30, bf16=False, validate_top=1,
                       late_evals=2, late_n=late_n, gen=GenSearchConfig(method="spsa", max_updates=1))
    s = Searcher(tmp_path, cfg, tok, net, torch.randn(40, 8), log=lambda *_: None)
    s.search_generation(model, resolve_strategy("maskgit", 4))
    assert s.store.events("late_refinement")[0]["n"] == expected
