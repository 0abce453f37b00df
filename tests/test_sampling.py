"""The decoding loop: the behaviours that silently break NATs."""
from __future__ import annotations

import pytest
import torch

from autonat.sampling import IndexedNoise, choose_remask, guided_logits, sample, sample_tokens
from autonat.presets import maskgit
from autonat.strategy import Strategy

from conftest import cc, tiny_uvit

K, N = 32, 49


@pytest.fixture(scope="module")
def model():
    return tiny_uvit(codebook_size=K, seq_len=N)


def test_counts_mask_id_and_never_remasking(model):
    st = maskgit(6)
    out = sample(model, st, cc(torch.arange(5) % 10), torch.Generator().manual_seed(0), trace=True)
    want = st.masked_counts(N)
    assert out.masked_counts == want and want[0] == N and want[-1] == 0
    prev_ids = torch.full((5, N), model.mask_id)
    for t, step in enumerate(out.trace):
        assert step["mask"].sum(1).tolist() == [want[t + 1]] * 5      # exactly as specified
        decoded_before = prev_ids != model.mask_id
        # a decoded token keeps its value and is never masked again
        assert torch.equal(step["ids"][decoded_before], prev_ids[decoded_before])
        prev_ids = step["ids"]
    assert not bool((out.ids == model.mask_id).any())              # all decoded after T steps
    assert int(out.ids.max()) < K and int(out.ids.min()) >= 0       # [MASK] id is never produced


def test_mask_id_outside_codebook(model):
    assert model.mask_id == K
    logits = model(torch.full((2, N), model.mask_id), cc([0, 1]))
    assert logits.shape[-1] == K   # the head cannot emit [MASK]


def test_neutral_guidance_equals_conditional_logits(model):
    lc, lu = torch.randn(2, 3, K), torch.randn(2, 3, K)
    assert torch.equal(guided_logits(lc, lu, 0.0), lc)
    assert torch.allclose(guided_logits(lc, lu, 2.0), 3 * lc - 2 * lu)


class _CondOnly:
    """Wraps a model and fails if an unconditional (null-condition) pass is requested."""

    def __init__(self, m):
        self.m = m
        self.seq_len, self.codebook_size, self.mask_id = m.seq_len, m.codebook_size, m.mask_id

    def parameters(self):
        return self.m.parameters()

    def decode_step(self, ids, cond, query, cache):
        assert not bool((cond.labels == cond.null_id).any()), "s = 0 must skip the unconditional pass"
        return self.m.decode_step(ids, cond, query, cache)


def test_s0_runs_only_the_conditional_path(model):
    st = maskgit(4).with_guidance(0.0)
    a = sample(_CondOnly(model), st, cc(torch.arange(4)), IndexedNoise(1, (0, 1, 2, 3))).ids
    b = sample(model, st, cc(torch.arange(4)), IndexedNoise(1, (0, 1, 2, 3))).ids
    assert torch.equal(a, b)


def test_tau2_zero_is_deterministic_topk():
    conf = torch.tensor([[0.5, -1.0, 3.0, -2.0, 0.0]])
    u1, u2 = torch.rand(1, 5), torch.rand(1, 5)
    lowest2 = {3, 1}
    assert set(choose_remask(conf, 0.0, 2, u1)[0].tolist()) == lowest2
    assert set(choose_remask(conf, 0.0, 2, u2)[0].tolist()) == lowest2
    # with tau2 > 0 the choice is random (Gumbel-top-k)
    picks = {tuple(sorted(choose_remask(conf, 5.0, 2, torch.rand(1, 5))[0].tolist())) for _ in range(50)}
    assert len(picks) > 1


def test_tau2_zero_sampling_ignores_gumbel_noise(model):
    st = Strategy(r=maskgit(4).r, tau1=(1.0,) * 4, tau2=(0.0,) * 4, s=(0.5,) * 4)

    class OtherGumbel(IndexedNoise):
        def uniforms(self, step, kind, n):
            u = super().uniforms(step, kind, n)
            return torch.rand_like(u) if kind == 1 else u

    a = sample(model, st, cc(torch.arange(3)), IndexedNoise(7, (0, 1, 2))).ids
    b = sample(model, st, cc(torch.arange(3)), OtherGumbel(7, (0, 1, 2))).ids
    assert torch.equal(a, b)


def test_inverse_cdf_sampling_matches_probabilities():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.7])).expand(20000, 3)
    x = sample_tokens(logits, 1.0, torch.rand(20000, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(x, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.015)
    assert bool((sample_tokens(logits[:3], 0.0, torch.rand(3)) == 2).all())   # tau1 = 0: argmax


def test_seeds(model):
    st = maskgit(4)
    lab = torch.arange(4)
    a = sample(model, st, cc(lab), torch.Generator().manual_seed(0)).ids
    b = sample(model, st, cc(lab), torch.Generator().manual_seed(0)).ids
    c = sample(model, st, cc(lab), torch.Generator().manual_seed(1)).ids
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_indexed_noise_independent_of_batch_composition(model):
    st = maskgit(4)
    big = sample(model, st, cc(torch.arange(8) % 10), IndexedNoise(3, tuple(range(8)))).ids
    small = sample(model, st, cc(torch.tensor([5, 6])), IndexedNoise(3, (5, 6))).ids
    assert torch.equal(big[5:7], small)


def test_chunked_model_calls_give_the_same_tokens(model):
    st = maskgit(4)
    lab = torch.arange(7) % 10
    a = sample(model, st, cc(lab), IndexedNoise(0, tuple(range(7)))).ids
    b = sample(model, st, cc(lab), IndexedNoise(0, tuple(range(7))), chunk=3).ids
    assert torch.equal(a, b)


def test_halton_order_is_the_published_one():
    """The 2-D Halton order (bases 2, 3 from index 1, row = base 2, first visit wins) over a 16x16
    and a 24x24 grid: SHA-1 of the flat order as in valeoai/Halton-MaskGIT's sampler."""
    import hashlib
    from autonat.sampling import halton_order
    for side, sha1 in ((16, "770d0648ebf164f8393a9ac10371a5e8cdbd4170"), (24, "57d546ad632c32b79d5f2a641f81707f0152a880")):
        order = halton_order(side * side).tolist()
        assert sorted(order) == list(range(side * side))
        assert hashlib.sha1(",".join(map(str, order)).encode()).hexdigest() == sha1
    assert halton_order(49).tolist()[:4] == [23, 11, 35, 3]    # 7x7: (3,2), (1,4), (5,0), (0,3)


def test_halton_reveals_tokens_in_its_order_whatever_the_confidence(model):
    """With order='halton', the canvas after step t holds exactly the first N - masked[t] positions
    of the Halton order, for every image; the counts follow N (2/pi) arcsin(t/T), at least t."""
    import math
    from autonat.presets import halton
    from autonat.sampling import halton_order
    T = 6
    st = halton(T, guidance=1.5, randomize=0)
    assert st.order == "halton"
    out = sample(model, st, cc(torch.arange(5) % 10), IndexedNoise(2, tuple(range(5))), trace=True)
    order = halton_order(N)
    for t, step in enumerate(out.trace):
        revealed = N - out.masked_counts[t + 1]
        assert revealed == max(t + 1, int(N * math.asin((t + 1) / T) * 2 / math.pi))
        visible = torch.zeros(N, dtype=torch.bool)
        visible[order[:revealed]] = True
        assert torch.equal(~step["mask"], visible.expand(5, -1))


def test_randomised_halton_rolls_the_order_per_image_by_a_keyed_shift(model):
    """order='halton-random' (the published `randomize`): image b reveals the Halton order rolled
    by its own shift (entry i at place (i + shift) mod N), with the same counts as the fixed order;
    the shift is floor(u N) of the image's purpose-2 uniform, so it follows the sample id and
    not the batch; images get different starts."""
    import math
    from autonat.presets import halton
    from autonat.sampling import halton_order, order_shifts
    T, B = 5, 6
    st = halton(T)                                   # the published defaults: randomised
    assert st.order == "halton-random" and st.s == (2.0,) * T
    assert st.tau1[0] == pytest.approx(1.0) and st.tau1[-1] == pytest.approx(1 / 1.2)
    noise = IndexedNoise(4, tuple(range(10, 10 + B)))
    shifts = order_shifts(noise, B, N)
    u = noise.uniforms(0, 2, 1)[:, 0]
    assert shifts.tolist() == [int(v * N) for v in u.tolist()]
    assert len(set(shifts.tolist())) > 1
    assert torch.equal(order_shifts(noise.rows(2, 4), 2, N), shifts[2:4])
    out = sample(model, st, cc(torch.arange(B) % 10), noise, trace=True)
    base = halton_order(N)
    for t, step in enumerate(out.trace):
        revealed = N - out.masked_counts[t + 1]
        assert revealed == max(t + 1, int(N * math.asin((t + 1) / T) * 2 / math.pi))
        for b in range(B):
            rolled = torch.roll(base, int(shifts[b]))
            visible = torch.zeros(N, dtype=torch.bool)
            visible[rolled[:revealed]] = True
            assert torch.equal(~step["mask"][b], visible), (t, b)
    # the same images sampled two at a time: identical tokens (the shift is keyed by sample id)
    again = torch.cat([sample(model, st, cc(torch.arange(B)[lo:lo + 2] % 10), noise.rows(lo, lo + 2)).ids
                       for lo in range(0, B, 2)])
    assert torch.equal(again, out.ids)


def test_gumbel_and_remask_choice_by_hand():
    from autonat.sampling import choose_remask, gumbel_from_uniform
    u = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(gumbel_from_uniform(u), -torch.log(-torch.log(u)))
    edges = gumbel_from_uniform(torch.tensor([0.0, 1.0]))
    assert torch.isfinite(edges).all() and edges[0] < -2.7 and edges[1] > 15.0      # clamped to [1e-7, 1 - 1e-7]
    conf = torch.tensor([[0.50, 0.10, 0.40, 0.30]])
    uu = torch.tensor([[0.01, 0.99, 0.5, 0.5]])
    # tau2 = 0: the k least confident, ties broken by position
    assert choose_remask(conf, 0.0, 2, uu).tolist() == [[1, 3]]
    assert choose_remask(torch.zeros(1, 5), 0.0, 3, uu).tolist() == [[0, 1, 2]]
    # tau2 > 0 (also below 1): the k lowest of C + tau2 * G(u), computed by hand
    for tau2 in (0.5, 2.0):
        score = conf + tau2 * -torch.log(-torch.log(uu))
        assert choose_remask(conf, tau2, 2, uu).tolist() == score.argsort(dim=-1)[..., :2].tolist()
    assert choose_remask(conf, 0.5, 2, uu).tolist() != choose_remask(conf, 0.0, 2, uu).tolist()


def test_indexed_noise_is_keyed_by_seed_sample_step_and_purpose():
    base = IndexedNoise(5, (0, 1)).uniforms(2, 0, 8)
    assert not torch.equal(base[0], base[1])                                      # per sample id
    assert torch.equal(IndexedNoise(5, (1, 0)).uniforms(2, 0, 8), base.flip(0))   # not per batch row
    for other in (IndexedNoise(6, (0, 1)).uniforms(2, 0, 8), IndexedNoise(5, (0, 1)).uniforms(3, 0, 8),
                  IndexedNoise(5, (0, 1)).uniforms(2, 1, 8)):                     # seed, step, purpose
        assert not torch.equal(other, base)


def test_chunked_model_calls_pass_each_chunk_its_cache_rows():
    from conftest import tiny_enat

    class Spy:                               # the model, recording which calls got a cache
        def __init__(self, m):
            self.m, self.cached = m, []

        def __getattr__(self, k):
            return getattr(self.m, k)

        def decode_step(self, ids, cond, query, cache=None):
            self.cached.append((ids.shape[0], cache is not None))
            return self.m.decode_step(ids, cond, query, cache)

    st = maskgit(4)
    whole, chunked = Spy(tiny_enat().eval()), Spy(tiny_enat().eval())
    sample(whole, st, cc(torch.arange(5)), IndexedNoise(1, tuple(range(5))))
    sample(chunked, st, cc(torch.arange(5)), IndexedNoise(1, tuple(range(5))), chunk=2)
    # maskgit guides every step: 5 conditional + 5 unconditional rows per step, in chunks of 2
    assert whole.cached == [(10, False)] + [(10, True)] * 3
    assert chunked.cached == [(2, False)] * 5 + [(2, True)] * 15


def test_sample_tokens_is_the_inverse_cdf_of_the_tempered_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, generator=g)                  # [B, N, K]: the vocabulary is the last dim
    u = torch.rand(2, 3, generator=g)
    for tau in (0.5, 1.0, 3.0):
        cdf = torch.softmax(logits / tau, dim=-1).cumsum(-1)
        by_hand = (cdf < u.unsqueeze(-1) * cdf[..., -1:]).sum(-1)   # first index whose cdf reaches u
        assert torch.equal(sample_tokens(logits, tau, u), by_hand)
    assert not torch.equal(sample_tokens(logits, 0.2, u), sample_tokens(logits, 5.0, u))


def test_guidance_without_unconditional_logits_is_the_conditional():
    cond = torch.randn(2, 5)
    assert torch.equal(guided_logits(cond, None, 2.0), cond)
