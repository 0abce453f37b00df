"""Training strategy p(r): exact masked counts, uniform positions, distribution moments."""
from __future__ import annotations

import math

import pytest
import torch

from autonat.io import AutonatError
from autonat.masking import (Arccos, Beta, Fixed, Uniform, masked_count, parse_mask_dist, random_mask,
                             sample_training_mask)


@pytest.mark.parametrize("n", [1, 49, 64, 256])
def test_masked_count_is_exactly_ceil_rN(n):
    r = torch.tensor([0.0, 1e-4, 0.1, 0.5, 0.8, 0.999, 1.0])
    k = masked_count(r, n)
    want = [min(n, max(1, math.ceil(v * n - 1e-6))) for v in r.tolist()]
    assert k.tolist() == want
    mask = random_mask(k, n, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == want


def test_training_masks_match_their_ratios():
    g = torch.Generator().manual_seed(0)
    mask, r = sample_training_mask(Beta(12, 3), 500, 49, g)
    assert mask.sum(1).tolist() == masked_count(r, 49).tolist()


def test_positions_are_uniform():
    g = torch.Generator().manual_seed(0)
    mask = random_mask(torch.full((20000,), 10), 49, g)
    freq = mask.float().mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 10 / 49), atol=0.012)


def test_beta_matches_moments():
    a, b = 12.0, 3.0
    x = Beta(a, b).sample(200000, torch.Generator().manual_seed(0)).double()
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    assert abs(float(x.mean()) - mean) < 2e-3
    assert abs(float(x.var()) - var) < 2e-4 and math.isclose(Beta(a, b).variance, var)


def test_arccos_and_others():
    g = torch.Generator().manual_seed(0)
    x = Arccos().sample(200000, g)
    assert abs(float(x.mean()) - 2 / math.pi) < 3e-3   # E[sin(pi u / 2)] = 2 / pi
    assert abs(float(x.double().var()) - Arccos().variance) < 2e-3
    assert bool((Fixed(0.8).sample(10, g) == 0.8).all())
    u = Uniform(0.2, 0.4).sample(1000, g)
    assert float(u.min()) >= 0.2 and float(u.max()) <= 0.4


def test_same_generator_same_draws():
    a = Beta(2, 5).sample(10, torch.Generator().manual_seed(3))
    b = Beta(2, 5).sample(10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_parse_specs_and_errors():
    assert parse_mask_dist("beta:12,3") == Beta(12, 3)
    assert parse_mask_dist("arccos") == Arccos()
    assert parse_mask_dist("fixed:0.8") == Fixed(0.8)
    assert parse_mask_dist("uniform").spec == "uniform"
    for bad in ("beta:1", "gauss:1,2", "fixed:2", "beta:-1,2", "beta:a,b"):
        with pytest.raises(AutonatError):
            parse_mask_dist(bad)


def test_every_p_r_draws_through_an_increasing_inverse_cdf():
    """Quantile coupling: the same uniforms give ordered ratios under every p(r)."""
    u = torch.linspace(0, 1, 1001, dtype=torch.float64)
    for dist in (Beta(12, 3), Beta(0.5, 0.5), Arccos(), Uniform(0.1, 0.9), Fixed(0.8)):
        r = dist.icdf(u)
        assert bool((r[1:] >= r[:-1]).all()), dist.spec
    # arccos: F(r) = (2 / pi) arcsin(r) inverts its icdf
    assert torch.allclose(torch.asin(Arccos().icdf(u)) * 2 / math.pi, u, atol=1e-12)


def test_same_seed_couples_arccos_with_its_moment_matched_beta():
    """Same training seed, two nearly equal p(r): nearly every example gets the same masked count
    and the same positions (only the count can differ). Drawing arccos as cos(pi u / 2) (decreasing)
    would pair a high ratio with a low one."""
    from autonat.search.training_strategy import moment_matched_beta
    beta = Beta(*moment_matched_beta(Arccos().mean, Arccos().variance))
    ma, _ = sample_training_mask(Arccos(), 4096, 49, torch.Generator().manual_seed(5))
    mb, _ = sample_training_mask(beta, 4096, 49, torch.Generator().manual_seed(5))
    diff = (ma.sum(1) - mb.sum(1)).abs()
    assert float((diff <= 1).float().mean()) > 0.97
    same = diff == 0
    assert float(same.float().mean()) > 0.5 and torch.equal(ma[same], mb[same])


def test_distribution_bounds_are_inclusive_and_named():
    assert float(Fixed(1.0).sample(3, torch.Generator()).max()) == 1.0 and Fixed(0.0).mean == 0.0
    u = Uniform(0.3, 0.3)                                  # a degenerate uniform is a fixed ratio
    assert bool((u.sample(5, torch.Generator()) == 0.3).all()) and u.variance == 0.0
    assert Uniform(0.0, 1.0).spec == "uniform" and Uniform(0.2, 0.4).spec == "uniform:0.2,0.4"
    for bad, match in ((lambda: Fixed(1.01), r"\[0, 1\]"), (lambda: Fixed(-0.1), r"\[0, 1\]"),
                       (lambda: Uniform(0.5, 0.4), "low <= high"), (lambda: Uniform(0.5, 1.5), "low <= high"),
                       (lambda: Beta(0, 1), "alpha, beta > 0")):
        with pytest.raises(AutonatError, match=match):
            bad()


def test_mask_dist_spec_messages_and_uniform_bounds():
    assert parse_mask_dist("uniform:0.2,0.8") == Uniform(0.2, 0.8) and parse_mask_dist("uniform") == Uniform()
    cases = {"beta:a,b": "bad mask-ratio distribution 'beta:a,b': arguments must be numbers",
             "gamma:1": "unknown mask-ratio distribution 'gamma:1'; use beta:A,B | arccos | fixed:R | uniform[:LO,HI]",
             "beta:1": "mask-ratio distribution beta takes 2 number(s), got 'beta:1'",
             "uniform:0.5": "uniform takes no arguments or LO,HI; got 'uniform:0.5'"}
    for spec, msg in cases.items():
        with pytest.raises(AutonatError) as e:
            parse_mask_dist(spec)
        assert str(e.value) == msg


def test_training_masks_draw_r_per_example_unless_per_batch():
    from autonat.masking import sample_training_mask
    g = torch.Generator().manual_seed(0)
    mask, r = sample_training_mask(Uniform(), 64, 49, g)
    assert len(set(r.tolist())) == 64 and len(set(mask.sum(1).tolist())) > 10
    mask, r = sample_training_mask(Uniform(), 64, 49, g, per_batch=True)
    assert len(set(r.tolist())) == 1 and len(set(mask.sum(1).tolist())) == 1


def test_beta_needs_both_parameters_positive():
    for a, b in ((1.0, 0.0), (0.0, 1.0)):
        with pytest.raises(AutonatError):
            Beta(a, b)
