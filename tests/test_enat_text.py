"""A text-conditional ENAT: the prompt's states are visible tokens of the encoder (encoded once
per image with reuse), read by every [MASK] token through SC-Attention, padding hidden."""
from __future__ import annotations

import pytest
import torch

from autonat.conditioning import ClassCondition, TextCondition
from autonat.io import AutonatError
from autonat.models.registry import build_model
from autonat.presets import maskgit
from autonat.sampling import IndexedNoise, sample

K, N, L, D = 32, 16, 6, 12


def _text(b: int, lengths=None, seed: int = 0) -> TextCondition:
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [2 + i % (L - 1) for i in range(b)]
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    return TextCondition(torch.randn(b, L, D, generator=g), mask,
                         torch.randn(L, D, generator=torch.Generator().manual_seed(9)), torch.arange(L) < 2)


def _model(**kw):
    torch.manual_seed(0)
    m = build_model("enat-tiny", condition="text", text_dim=D, text_len=L, codebook_size=K, seq_len=N, **kw)
    for p in m.parameters():          # adaLN-Zero starts as identity: give the blocks some effect
        with torch.no_grad():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _canvas(b: int, visible: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, K, (b, N), generator=g)
    mask = torch.ones(b, N, dtype=torch.bool)
    for i in range(b):
        mask[i, torch.randperm(N, generator=g)[:visible]] = False
    return torch.where(mask, torch.full_like(ids, K), ids), mask


def _query(mask):
    return mask.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :int(mask[0].sum())]


@pytest.mark.parametrize("pool", [1, 4])
def test_padding_is_hidden_and_every_real_text_token_reaches_the_mask_tokens(pool):
    m = _model(context_pool=pool)
    c = _text(2, lengths=[3, 5])
    ids, mask = _canvas(2, visible=5)
    with torch.no_grad():
        ref = m(ids, c, _query(mask))
        junk = c.states.clone()
        junk[~c.mask] = 1e3 * torch.randn(int((~c.mask).sum()), D)
        assert torch.allclose(m(ids, TextCondition(junk, c.mask, c.null_states, c.null_mask), _query(mask)), ref,
                              atol=1e-4)
        for pos in range(5):
            real = c.states.clone()
            real[1, pos] += 1.0
            out = m(ids, TextCondition(real, c.mask, c.null_states, c.null_mask), _query(mask))
            assert not torch.allclose(out[1], ref[1], atol=1e-4) and torch.allclose(out[0], ref[0], atol=1e-5)


def test_the_prompt_is_encoded_once_per_image_with_reuse_and_every_step_without():
    m = _model()
    seen = []
    orig = m.encode

    def encode(ids, pos, mod, context=None, key_mask=None, prefix=None):
        seen.append(None if prefix is None else tuple(prefix.shape[:2]))
        return orig(ids, pos, mod, context, key_mask, prefix)
    m.encode = encode
    c = _text(3)
    out = sample(m, maskgit(4), c, IndexedNoise(1, (0, 1, 2)))
    assert bool((out.ids < K).all())                           # every token decoded
    assert [k for k in seen if k] == [(6, L)]       # conditional + null pass (one batch), first step only
    seen.clear()
    twin = m.without_reuse()
    twin.encode = encode
    sample(twin, maskgit(4), c, IndexedNoise(1, (0, 1, 2)))
    assert [k for k in seen if k] == [(6, L)] * 4                 # every step from scratch


def test_first_step_with_reuse_equals_recompute_and_later_steps_use_the_cache():
    m = _model()
    c = _text(2)
    a = sample(m, maskgit(4), c, IndexedNoise(3, (0, 1)), trace=True)
    b = sample(m.without_reuse(), maskgit(4), c, IndexedNoise(3, (0, 1)), trace=True)
    assert torch.equal(a.trace[0]["ids"], b.trace[0]["ids"])
    ids, mask = _canvas(2, visible=6)
    with torch.no_grad():
        _, c1 = m.step(ids, c, _query(mask), None)
        assert c1.encoded.shape == (2, L + N) and bool(c1.encoded[:, :L].all())
        full = m.step(ids, c, _query(mask), None)[0]
        # nothing new since c1: the same canvas through the cache is not a recompute (projected reuse)
        again = m.step(ids, c, _query(mask), c1)[0]
    assert not torch.allclose(full, again, atol=1e-5)


def test_training_through_both_paths_reaches_the_text_projection():
    m = _model().train()
    c = _text(4)
    ids = torch.randint(0, K, (4, N), generator=torch.Generator().manual_seed(2))
    for coin_seed in range(6):                   # some seeds draw the reuse path, some do not
        g = torch.Generator().manual_seed(coin_seed)
        mask = m.training_mask(__import__("autonat.masking", fromlist=["Beta"]).Beta(2.0, 2.0), 4, g)
        m.zero_grad()
        out = m.training_loss(ids, c, mask, g)
        out.loss.backward()
        assert torch.isfinite(out.loss) and m.context_proj.weight.grad.abs().sum() > 0


def test_a_text_enat_refuses_a_class_condition_and_another_encoder_shape():
    m = _model()
    ids, mask = _canvas(1, visible=3)
    with pytest.raises(AutonatError, match="text"):
        m(ids, ClassCondition(torch.tensor([0]), 10), _query(mask))
    other = TextCondition(torch.zeros(1, L + 1, D), torch.ones(1, L + 1, dtype=torch.bool), torch.zeros(L + 1, D),
                          torch.ones(L + 1, dtype=torch.bool))
    with pytest.raises(AutonatError, match="text states of"):
        m(ids, other, _query(mask))
    with pytest.raises(AutonatError, match="text_dim and text_len"):
        build_model("enat-tiny", condition="text", codebook_size=K, seq_len=N)
    assert m.compact() is m                     # nothing to fold
