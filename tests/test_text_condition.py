"""Text as a condition: the TextCondition batch object and the text-conditional U-ViT.

What silently breaks a text NAT: padding tokens leaking into attention (the image then depends on
how long the padding is), the null prompt not being the empty prompt's encoding, guidance rows of
the wrong prompt after stacking/slicing, and a class model quietly accepting a prompt.
"""
import pytest
import torch

from autonat.conditioning import ClassCondition, TextCondition
from autonat.io import AutonatError
from autonat.models.registry import build_model
from autonat.sampling import sample
from autonat.presets import maskgit

L, D = 6, 16


def _text(b: int, seed: int = 0, lengths=None) -> TextCondition:
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(b, L, D, generator=g)
    lengths = lengths or [2 + i % (L - 1) for i in range(b)]
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    null_states = torch.randn(L, D, generator=torch.Generator().manual_seed(99))
    null_mask = torch.arange(L) < 2
    return TextCondition(states, mask, null_states, null_mask, tuple(f"prompt {i}" for i in range(b)))


def _model(**kw):
    torch.manual_seed(0)
    return build_model("tiny", condition="text", text_dim=D, text_len=L, codebook_size=32, seq_len=16, **kw).eval()


def test_null_is_the_empty_prompt_for_every_row_and_dropped_mixes_rows():
    c = _text(4)
    n = c.null()
    assert torch.equal(n.states, c.null_states.expand(4, -1, -1)) and torch.equal(n.mask, c.null_mask.expand(4, -1))
    assert n.prompts == (None,) * 4
    d = c.dropped(torch.tensor([True, False, True, False]))
    assert torch.equal(d.states[0], c.null_states) and torch.equal(d.states[1], c.states[1])
    assert torch.equal(d.mask[2], c.null_mask) and torch.equal(d.mask[3], c.mask[3])
    assert d.prompts == (None, "prompt 1", None, "prompt 3")


def test_rows_and_cat_round_trip_and_refuse_another_encoder():
    c = _text(5)
    back = TextCondition.cat([c.rows(0, 2), c.rows(2, 5)])
    assert back.same_as(c) and back.prompts == c.prompts
    assert not c.rows(0, 2).same_as(c.rows(1, 3))
    other = TextCondition(torch.zeros(1, L, D), torch.ones(1, L, dtype=torch.bool), torch.ones(L, D),
                          torch.ones(L, dtype=torch.bool))
    with pytest.raises(AutonatError, match="different text encoders"):
        TextCondition.cat([c, other])


def test_shapes_are_checked_with_a_message():
    with pytest.raises(AutonatError, match="padding mask must be bool"):
        TextCondition(torch.zeros(2, L, D), torch.ones(2, L), torch.zeros(L, D), torch.ones(L, dtype=torch.bool))
    with pytest.raises(AutonatError, match="null text condition"):
        TextCondition(torch.zeros(2, L, D), torch.ones(2, L, dtype=torch.bool), torch.zeros(L + 1, D),
                      torch.ones(L + 1, dtype=torch.bool))


def test_padding_tokens_do_not_reach_the_image_tokens():
    """Changing the states at padding positions changes nothing; changing a real token does."""
    m = _model()
    c = _text(3, lengths=[2, 3, 4])
    ids = torch.randint(0, 33, (3, 16), generator=torch.Generator().manual_seed(1))
    ref = m(ids, c)
    junk = c.states.clone()
    junk[~c.mask] = 1e3 * torch.randn(int((~c.mask).sum()), D)
    assert torch.allclose(m(ids, TextCondition(junk, c.mask, c.null_states, c.null_mask)), ref, atol=1e-5)
    real = c.states.clone()
    real[:, 0] += 1.0
    assert not torch.allclose(m(ids, TextCondition(real, c.mask, c.null_states, c.null_mask)), ref, atol=1e-3)


def test_padding_is_hidden_in_the_bf16_inference_path_too():
    m = _model().for_inference(bf16=True)
    c = _text(2, lengths=[2, 5])
    ids = torch.randint(0, 33, (2, 16), generator=torch.Generator().manual_seed(2))
    junk = c.states.clone()
    junk[~c.mask] = 50.0
    with torch.no_grad():
        a, b = m(ids, c), m(ids, TextCondition(junk, c.mask, c.null_states, c.null_mask))
    assert torch.equal(a, b)


def test_a_model_refuses_the_other_kind_of_condition_by_name():
    text_model, class_model = _model(), build_model("tiny", codebook_size=32, seq_len=16).eval()
    ids = torch.zeros(2, 16, dtype=torch.long)
    with pytest.raises(AutonatError, match="conditioned on text prompts, but was given class labels"):
        text_model(ids, ClassCondition(torch.tensor([0, 1]), 10))
    with pytest.raises(AutonatError, match="conditioned on class labels, but was given text prompts"):
        class_model(ids, _text(2))
    wrong = TextCondition(torch.zeros(2, L + 1, D), torch.ones(2, L + 1, dtype=torch.bool),
                          torch.zeros(L + 1, D), torch.ones(L + 1, dtype=torch.bool))
    with pytest.raises(AutonatError, match=f"text states of {L} tokens x {D}"):
        text_model(ids, wrong)


def test_text_config_needs_the_encoder_shape():
    with pytest.raises(AutonatError, match="needs text_dim and text_len"):
        build_model("tiny", condition="text")


def test_guided_sampling_of_a_text_model_decodes_everything_and_is_row_independent():
    """The sampler stacks [cond ; null] for guidance: each row's tokens depend on its own prompt
    only (sampling 3 prompts together = sampling each alone, with per-sample noise)."""
    from autonat.sampling import IndexedNoise
    m = _model()
    st = maskgit(4, guidance_scale=2.0)
    c = _text(3)
    out = sample(m, st, c, IndexedNoise(7, list(range(3)))).ids
    assert out.shape == (3, 16) and int(out.max()) < 32
    alone = sample(m, st, c.rows(1, 2), IndexedNoise(7, [1])).ids
    assert torch.equal(out[1:2], alone)
    # guidance uses the null prompt: another null changes the guided scores, no guidance ignores it
    other_null = TextCondition(c.states, c.mask, c.null_states + 1.0, c.null_mask, c.prompts)

    def first_scores(strategy, cond):
        return sample(m, strategy, cond, IndexedNoise(7, list(range(3))), trace=True).trace[0]["confidence"]
    assert not torch.equal(first_scores(st, other_null), first_scores(st, c))
    plain = maskgit(4, guidance_scale=0.0)
    assert torch.equal(first_scores(plain, other_null), first_scores(plain, c))


def test_pooled_context_is_the_masked_mean_of_each_window():
    c = _text(3, lengths=[1, 3, 6])
    states, mask = c.pooled(4)                       # L = 6 -> windows [0, 4), [4, 6) (+2 padding)
    assert states.shape == (3, 2, D) and mask.tolist() == [[True, False], [True, False], [True, True]]
    assert torch.allclose(states[0, 0], c.states[0, 0])                  # one real token: itself
    assert torch.allclose(states[1, 0], c.states[1, :3].mean(0))         # padding left out of the mean
    assert torch.allclose(states[2, 1], c.states[2, 4:6].mean(0))
    assert c.pooled(1)[0] is c.states


def test_a_pooled_text_model_hides_padding_and_sees_every_real_token():
    m = _model(context_pool=4)
    assert m.config.context_len == 2 and m.pos_emb.shape[1] == 2 + 16
    c = _text(2, lengths=[3, 5])
    ids = torch.randint(0, 33, (2, 16), generator=torch.Generator().manual_seed(1))
    ref = m(ids, c)
    junk = c.states.clone()
    junk[~c.mask] = 1e3 * torch.randn(int((~c.mask).sum()), D)
    assert torch.allclose(m(ids, TextCondition(junk, c.mask, c.null_states, c.null_mask)), ref, atol=1e-5)
    for pos in (0, 4):      # a token in the first window, and in the second (row 1 only)
        real = c.states.clone()
        real[1, pos] += 1.0
        assert not torch.allclose(m(ids, TextCondition(real, c.mask, c.null_states, c.null_mask))[1], ref[1],
                                  atol=1e-3)
