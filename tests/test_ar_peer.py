"""The autoregressive peer: causal, its KV-cache sampler agrees with teacher forcing, guidance and
top-k do what they say, and a trained model records its tokenizer (exact resume:
tests/test_other_trainers.py)."""
from __future__ import annotations

import pytest
import torch

from autonat.baselines.ar import ARConfig, ARSampling, ARTransformer, sample_ar

CFG = ARConfig(codebook_size=32, seq_len=9, num_classes=3, dim=32, depth=2, heads=2)


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = ARTransformer(CFG).eval()
    with torch.no_grad():                 # a sharper random model, so argmax decisions are clear
        m.head.weight.mul_(20)
    return m


def test_each_prediction_sees_only_the_tokens_before_it(model):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32, (2, 9), generator=g)
    labels = torch.tensor([0, 2])
    base = model(labels, ids)
    for j in range(9):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % 32
        out = model(labels, changed)
        assert torch.allclose(out[:, :j + 1], base[:, :j + 1], atol=1e-5)    # predictions 0..j never read token j
        if j < 8:
            assert not torch.allclose(out[:, j + 1:], base[:, j + 1:])
    assert not torch.allclose(model(torch.tensor([1, 2]), ids)[:, 0], base[:, 0])   # the class is read


def test_the_cached_sampler_agrees_with_teacher_forcing(model):
    labels = torch.tensor([0, 1, 2, 1])
    tokens = sample_ar(model, labels, ARSampling(temperature=0.0, guidance=0.0), torch.Generator())
    assert torch.equal(model(labels, tokens).argmax(-1), tokens)


def test_guidance_combines_conditional_and_null_logits(model):
    """With argmax, the guided sampler picks argmax of c + s (c - u) of the teacher-forced logits."""
    labels = torch.tensor([0, 2])
    s = 1.5
    tokens = sample_ar(model, labels, ARSampling(temperature=0.0, guidance=s), torch.Generator())
    c, u = model(labels, tokens), model(torch.full_like(labels, CFG.num_classes), tokens)
    assert torch.equal((c + s * (c - u)).argmax(-1), tokens)
    assert not torch.equal(tokens, sample_ar(model, labels, ARSampling(temperature=0.0, guidance=0.0),
                                             torch.Generator()))


def test_top_1_is_argmax_and_the_generator_decides_the_rest(model):
    labels = torch.tensor([0, 1, 2])
    greedy = sample_ar(model, labels, ARSampling(temperature=0.0, guidance=0.0), torch.Generator())
    top1 = sample_ar(model, labels, ARSampling(temperature=1.0, top_k=1, guidance=0.0), torch.Generator().manual_seed(5))
    assert torch.equal(greedy, top1)
    s = ARSampling(temperature=1.0, guidance=1.0)
    a = sample_ar(model, labels, s, torch.Generator().manual_seed(3))
    assert torch.equal(a, sample_ar(model, labels, s, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, sample_ar(model, labels, s, torch.Generator().manual_seed(4)))


def test_a_trained_model_loads_with_its_tokenizer_identity(tmp_path, token_cache):
    """(Exact resume: tests/test_other_trainers.py, as for every trainer.)"""
    from autonat.baselines.ar_train import ARTrainConfig, load_ar, train_ar
    cfg = ARTrainConfig(tokens=str(token_cache.path), dim=16, depth=1, heads=2, steps=2, batch_size=8,
                        warmup=0, bf16=False)
    m, meta = load_ar(train_ar(cfg, tmp_path / "run", show_progress=False))
    assert meta["tokenizer"] == token_cache.manifest["tokenizer_identity"]
    assert sample_ar(m, torch.tensor([0, 1]), ARSampling(), torch.Generator()).shape == (2, token_cache.seq_len)


def test_sampling_draws_from_the_tempered_softmax():
    from autonat.baselines.ar import _pick
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    for temp, k in ((1.0, 0), (0.5, 0), (1.0, 2)):
        got = torch.bincount(_pick(logits, ARSampling(temperature=temp, top_k=k), torch.Generator().manual_seed(0)),
                             minlength=4).float() / 20000
        want = torch.softmax(logits[0] / temp, -1)
        if k:
            want = torch.where(torch.arange(4) < k, want, 0.0)
            want = want / want.sum()
        assert torch.allclose(got, want, atol=0.015), (temp, k, got, want)
