"""ENAT: disentangling, reuse equivalences, FLOPs, guidance caches."""
from __future__ import annotations

import torch

from autonat.metrics.cost import sampling_flops
from autonat.models.enat import ENATCache, fold_class_conditioning
from autonat.models.registry import count_parameters, load_model, save_model
from autonat.presets import maskgit
from autonat.sampling import IndexedNoise, sample

from conftest import cc, tiny_enat

K, N = 32, 49


def _canvas(seed=0, visible=20):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, K, (2, N), generator=g)
    mask = torch.ones(2, N, dtype=torch.bool)
    for b in range(2):
        mask[b, torch.randperm(N, generator=g)[:visible]] = False
    return torch.where(mask, torch.full_like(ids, K), ids), mask


def _query(mask):
    return mask.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :int(mask[0].sum())]


def test_visible_features_ignore_mask_positions():
    """Disentangling: encoded visible features do not depend on what sits at [MASK] positions
    (the encoder never sees them), e.g. the query set or a different mask embedding."""
    m = tiny_enat()
    ids, mask = _canvas()
    lab = torch.tensor([1, 2])
    _, c1 = m.step(ids, cc(lab), _query(mask), None)
    with torch.no_grad():
        m.token_emb.weight[K] += 1.0         # change the [MASK] embedding
    _, c2 = m.step(ids, cc(lab), _query(mask)[:, :3], None)
    assert torch.equal(c1.encoded, c2.encoded)
    assert torch.allclose(c1.features[~mask], c2.features[~mask], atol=1e-6)


def test_reuse_with_empty_cache_equals_full_computation():
    m = tiny_enat()
    ids, mask = _canvas()
    lab = torch.tensor([3, 10])
    full, _ = m.step(ids, cc(lab), _query(mask), None)
    empty = ENATCache(torch.zeros(2, N, m.config.dim), torch.zeros(2, N, dtype=torch.bool))
    reuse, _ = m.step(ids, cc(lab), _query(mask), empty)
    assert torch.allclose(full, reuse, atol=1e-6)


def test_cache_with_nothing_new_matches_recompute_or_projects_it():
    """When no token was decoded since the cache was made: with the raw cache nothing changes
    (the logits equal those of the step that made it); with the projected cache (the authors'
    semantics) every cached feature moves one more projection, P(f), and nothing is encoded."""
    ids, mask = _canvas()
    lab = torch.tensor([0, 4])
    raw = tiny_enat(reuse_mode="raw")
    a, cache = raw.step(ids, cc(lab), _query(mask), None)
    b, _ = raw.step(ids, cc(lab), _query(mask), cache)
    assert torch.allclose(a, b, atol=1e-6)
    proj = tiny_enat(reuse_mode="projected")
    seen = _encoder_inputs(proj)
    with torch.no_grad():
        _, c1 = proj.step(ids, cc(lab), _query(mask), None)
        _, c2 = proj.step(ids, cc(lab), _query(mask), c1)
        vis = ~mask
        assert torch.allclose(c2.features[vis], proj.project(c1.features[vis].unsqueeze(0))[0], atol=1e-5)
    assert len(seen) == 1                                 # the second step encoded nothing


class _Recorder:
    """Wraps a model and records (canvas, condition, query, logits) of every decode_step."""

    def __init__(self, m):
        self.m, self.calls = m, []
        self.seq_len, self.codebook_size, self.mask_id = m.seq_len, m.codebook_size, m.mask_id

    def parameters(self):
        return self.m.parameters()

    def decode_step(self, ids, cond, query, cache):
        logits, cache = self.m.decode_step(ids, cond, query, cache)
        self.calls.append((ids.clone(), cond, query.clone(), logits.clone()))
        return logits, cache


def test_reuse_off_runs_as_plain_disentangled_model():
    """Without reuse, every step's logits are exactly a from-scratch step on that step's canvas."""
    m = tiny_enat()
    rec = _Recorder(m.without_reuse())
    out = sample(rec, maskgit(4), cc(torch.arange(3)), IndexedNoise(0, (0, 1, 2)), trace=True)
    assert not bool((out.ids == K).any()) and len(rec.calls) == 4   # s > 0: cond+uncond batched
    for ids, cond, query, logits in rec.calls:
        with torch.inference_mode():
            fresh, cache = m.step(ids, cond, query, None)
        assert torch.equal(logits, fresh)
        assert int(cache.encoded.sum()) == int((ids != K).sum())


def test_reuse_differs_from_recompute_after_the_first_step():
    """With reuse, step 1 (nothing cached) equals a recompute exactly; later steps use cached
    features of earlier tokens, so they are close to, but not, a full recompute."""
    m = tiny_enat()
    a, b = _Recorder(m), _Recorder(m.without_reuse())
    st = maskgit(4)
    sample(a, st, cc(torch.arange(3)), IndexedNoise(4, (0, 1, 2)))
    sample(b, st, cc(torch.arange(3)), IndexedNoise(4, (0, 1, 2)))
    assert torch.equal(a.calls[0][3], b.calls[0][3])
    diffs = [float((x[3] - y[3]).abs().max()) for x, y in zip(a.calls[1:], b.calls[1:])
             if torch.equal(x[0], y[0])]
    assert diffs and max(diffs) > 1e-5            # the cache is actually used


def test_reuse_flops_lower_and_first_step_identical():
    m = tiny_enat()
    st = maskgit(8)
    with_reuse = sampling_flops(m, st, cc([0]))
    without = sampling_flops(m.without_reuse(), st, cc([0]))
    assert with_reuse < without
    one = maskgit(8)
    a = sample(m, one, cc(torch.arange(2)), IndexedNoise(5, (0, 1)), trace=True)
    b = sample(m.without_reuse(), one, cc(torch.arange(2)), IndexedNoise(5, (0, 1)), trace=True)
    assert torch.equal(a.trace[0]["ids"], b.trace[0]["ids"])     # step 1: nothing cached, same result


def test_guidance_caches_do_not_mix():
    """Conditional and unconditional passes keep separate caches: sampling a batch with guidance
    equals sampling each example alone (its cond/uncond caches never see another pass)."""
    m = tiny_enat()
    st = maskgit(4).with_guidance(1.5)
    both = sample(m, st, cc(torch.tensor([1, 7])), IndexedNoise(2, (0, 1))).ids
    one = sample(m, st, cc(torch.tensor([7])), IndexedNoise(2, (1,))).ids
    assert torch.equal(both[1:], one)
    # guidance skipped at some steps (s = 0) still works: the stale unconditional cache catches up
    st2 = maskgit(4).with_guidance([0.0, 1.0, 0.0, 2.0])
    out = sample(m, st2, cc(torch.tensor([1, 7])), IndexedNoise(2, (0, 1)))
    assert not bool((out.ids == K).any())


def test_flops_scale_with_steps_and_guidance_uvit():
    from conftest import tiny_uvit
    m = tiny_uvit()
    f4, f8 = sampling_flops(m, maskgit(4), cc([0])), sampling_flops(m, maskgit(8), cc([0]))
    assert abs(f8 / f4 - 2.0) < 0.05                       # linear in the number of steps
    f8_noguid = sampling_flops(m, maskgit(8).with_guidance(0.0), cc([0]))
    assert abs(f8 / f8_noguid - 2.0) < 0.05                # guidance off halves the cost


def test_chunked_calls_with_caches_match():
    m = tiny_enat()
    st = maskgit(4).with_guidance([0.0, 1.0, 0.0, 2.0])
    a = sample(m, st, cc(torch.arange(5)), IndexedNoise(1, tuple(range(5)))).ids
    b = sample(m, st, cc(torch.arange(5)), IndexedNoise(1, tuple(range(5))), chunk=2).ids
    assert torch.equal(a, b)


def test_cached_modulations_are_exact_and_label_checked():
    """At inference the adaLN modulations ride in the cache: same logits as recomputing them,
    never reused for other labels, and never under autograd (training recomputes)."""
    m = tiny_enat()
    ids, mask = _canvas(visible=10)
    lab = torch.tensor([2, 7])
    with torch.no_grad():
        _, cache = m.step(ids, cc(lab), _query(mask), None)
        assert cache.mod is not None and cache.mod.shape == (2, 3, 8 * m.config.dim)
        ids2 = ids.scatter(1, _query(mask)[:, :5], 1)   # decode a few more tokens
        mask2 = ids2 == K
        fresh = ENATCache(cache.features, cache.encoded)          # no modulations cached
        a, _ = m.step(ids2, cc(lab), _query(mask2), cache)
        b, _ = m.step(ids2, cc(lab), _query(mask2), fresh)
        assert torch.allclose(a, b, atol=1e-6)
        other = torch.tensor([5, 1])
        c, _ = m.step(ids2, cc(other), _query(mask2), cache)          # labels differ: recomputed
        d, _ = m.step(ids2, cc(other), _query(mask2), fresh)
        assert torch.allclose(c, d, atol=1e-6) and not torch.allclose(a, c)
    poisoned = ENATCache(cache.features, cache.encoded, cc(lab), torch.zeros_like(cache.mod),
                         torch.zeros_like(cache.out_mod))
    e = m.step(ids2, cc(lab), _query(mask2), poisoned)[0]             # grad enabled: recomputed
    assert torch.allclose(e, b, atol=1e-5)


def test_folded_class_conditioning_is_the_same_function(tmp_path):
    """Folding the adaLN Linears into a per-label table changes no output (every label, the
    null label included, with and without reuse) and survives save/load; fewer weights."""
    m = tiny_enat()
    f = m.compact()                                   # what is shipped: the folded model
    assert f.config.class_table and f.class_emb is None and count_parameters(f) < count_parameters(m)
    save_model(f, tmp_path / "f")
    back = load_model(tmp_path / "f")
    assert back.config.class_table
    ids, mask = _canvas(visible=12)
    for lab in (torch.tensor([0, 10]), torch.tensor([3, 3])):
        with torch.no_grad():
            a, ca = m.step(ids, cc(lab), _query(mask), None)
            for g in (f, back):
                b, cb = g.step(ids, cc(lab), _query(mask), None)
                assert torch.allclose(a, b, atol=1e-5)
                ids2 = ids.scatter(1, _query(mask)[:, :4], 2)
                a2, _ = m.step(ids2, cc(lab), _query(ids2 == K), ca)
                b2, _ = g.step(ids2, cc(lab), _query(ids2 == K), cb)
                assert torch.allclose(a2, b2, atol=1e-5)
    st = maskgit(4)
    noise = IndexedNoise(3, (0, 1, 2))
    assert torch.equal(sample(m, st, cc(torch.tensor([1, 2, 10])), noise).ids,
                       sample(f, st, cc(torch.tensor([1, 2, 10])), noise).ids)
    assert fold_class_conditioning(f) is f


# ----------------------------------------------------------------------------------------------
# Training through the reuse path (the two bugs a trainer can hide: never taking the reuse path,
# and simulating a previous step in which every visible token was already visible)
# ----------------------------------------------------------------------------------------------

def _train_batch(seed=0, ratio=0.6):
    from autonat.masking import Fixed
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, K, (4, N), generator=g)
    m = tiny_enat().train()
    mask = m.training_mask(Fixed(ratio), 4, g)
    return m, ids, mask


def _encoder_inputs(m):
    """Record the number of tokens every encoder call of `m` sees."""
    seen = []
    orig = m.encode

    def encode(ids, pos, mod, context=None, key_mask=None, prefix=None):
        seen.append((ids.shape[1], 0 if context is None else context.shape[1]))
        return orig(ids, pos, mod, context, key_mask, prefix)
    m.encode = encode
    return seen


def test_reuse_path_is_trained_when_drawn_and_only_then():
    m, ids, mask = _train_batch()
    labels = torch.arange(4)
    grads = []
    for prob in (1.0, 0.0):
        m.zero_grad()
        res = m.training_loss(ids, cc(labels), mask, torch.Generator().manual_seed(1), teacher=m, reuse_prob=prob)
        res.loss.backward()
        g = sum(float(p.grad.abs().sum()) for p in m.reuse_mlp.parameters() if p.grad is not None)
        grads.append(g)
    assert grads[0] > 0 and grads[1] == 0        # the reuse projection learns only on reuse steps


def test_reuse_training_encodes_only_the_newly_decoded_tokens():
    """The simulated previous step has strictly fewer visible tokens: the teacher encodes those,
    the online model encodes only the rest, with the teacher's features as context."""
    m, ids, mask = _train_batch()
    teacher = tiny_enat(seed=1)
    t_seen, m_seen = _encoder_inputs(teacher), _encoder_inputs(m)
    n_vis = N - int(mask[0].sum())
    m.training_loss(ids, cc(torch.arange(4)), mask, torch.Generator().manual_seed(1), teacher=teacher, reuse_prob=1.0)
    (prev, ctx0), = t_seen
    (new, ctx), = m_seen
    assert ctx0 == 0 and 0 < prev < n_vis          # the teacher saw a strict subset, from scratch
    assert new == n_vis - prev and ctx == prev      # the online model encodes only the new tokens


def test_reuse_training_draws_exactly_the_specified_previous_step():
    """The generator's first two draws are the coin and the fraction: the online model encodes
    exactly max(1, round(frac * #visible)) tokens; the teacher (itself when none is given) the
    rest; the same seed gives the same loss whatever the global RNG does."""
    m, ids, mask = _train_batch()
    m.eval()                                            # no dropout: the loss is a function of its inputs
    n_vis = N - int(mask[0].sum())
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        coin, frac = float(torch.rand(1, generator=g)), float(torch.rand(1, generator=g))
        seen = _encoder_inputs(m)
        torch.manual_seed(seed + 100)
        a = m.training_loss(ids, cc(torch.arange(4)), mask, torch.Generator().manual_seed(seed), reuse_prob=0.5)
        m.encode = type(m).encode.__get__(m)            # unhook
        if coin < 0.5:
            want = max(1, round(frac * n_vis))
            assert seen == [(n_vis - want, 0), (want, n_vis - want)], (seed, seen)
        else:
            assert seen == [(n_vis, 0)], (seed, seen)
        torch.manual_seed(seed + 999)
        b = m.training_loss(ids, cc(torch.arange(4)), mask, torch.Generator().manual_seed(seed), reuse_prob=0.5)
        assert torch.equal(a.loss, b.loss)
    drawn = {float(torch.rand(1, generator=torch.Generator().manual_seed(s))) < 0.5 for s in range(20)}
    assert drawn == {True, False}          # the default reuse probability takes both paths


def test_a_rank_slice_of_the_batch_sees_its_rows_of_the_global_noise():
    """DDP: each rank computes its slice of the global batch with the global batch's noise, so two
    half-batch losses average to the one-process loss."""
    m, ids, mask = _train_batch()
    m.eval()
    lab = torch.arange(4)
    full = m.training_loss(ids, cc(lab), mask, torch.Generator().manual_seed(3), reuse_prob=1.0)
    halves = [m.training_loss(ids[lo:hi], cc(lab[lo:hi]), mask[lo:hi], torch.Generator().manual_seed(3),
                              reuse_prob=1.0, rows=(lo, hi, 4)) for lo, hi in ((0, 2), (2, 4))]
    assert torch.allclose((halves[0].loss + halves[1].loss) / 2, full.loss, atol=1e-5)


def test_training_mask_rounding_and_one_ratio_per_batch():
    from autonat.masking import Fixed
    m = tiny_enat()
    for rounding, want in (("ceil", 25), ("floor", 24), ("round", 24)):     # 0.5 * 49 = 24.5 (half to even)
        mask = m.training_mask(Fixed(0.5), 3, torch.Generator().manual_seed(0), rounding)
        assert mask.sum(1).tolist() == [want] * 3


def test_reusing_a_cache_whose_token_was_masked_again_is_refused():
    import pytest
    from autonat.io import AutonatError
    m = tiny_enat().eval()
    ids, _ = _canvas(seed=3, visible=20)
    labels = torch.arange(ids.shape[0]) % 10
    cache = m.extend_cache(ids, cc(labels), None)
    again = ids.clone()
    again[0, int((ids[0] != m.mask_id).nonzero()[0])] = m.mask_id
    with pytest.raises(AutonatError, match="masked again .decoded tokens must never be re-masked"):
        m.extend_cache(again, cc(labels), cache)


def test_config_names_an_indivisible_width():
    import pytest
    from autonat.io import AutonatError
    from autonat.models.enat import ENATConfig
    with pytest.raises(AutonatError) as e:
        ENATConfig(dim=30, heads=4)
    assert str(e.value) == "dim 30 must be divisible by heads 4"


def test_nfe_counts_the_passes_the_sampler_actually_runs():
    """function_evaluations = rows the network sees per image: one pass per step, two where the
    guidance pass runs (s != 0), two at every step with always_uncond."""
    from dataclasses import replace

    from conftest import tiny_uvit

    from autonat.metrics.cost import function_evaluations
    m = tiny_uvit()
    rows = []
    real = m.decode_step

    def counting(ids, cond, query, cache=None):
        rows.append(ids.shape[0])
        return real(ids, cond, query, cache)
    m.decode_step = counting
    for st in (maskgit(4).with_guidance(0.0), maskgit(4).with_guidance([0.0, 1.0, 0.0, 2.0]), maskgit(6),
               replace(maskgit(4).with_guidance(0.0), always_uncond=True)):
        rows.clear()
        sample(m, st, cc([1, 2, 3]), IndexedNoise(0, (0, 1, 2)))
        assert sum(rows) / 3 == function_evaluations(st), st
    assert function_evaluations(maskgit(4).with_guidance([0.0, 1.0, 0.0, 2.0])) == 6
