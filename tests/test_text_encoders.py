"""Text encoders from transformers (tiny random CLIP built offline) and the prompt conditioner."""
import os
import shutil

import pytest
import torch

if os.environ.get("AUTONAT_REQUIRE_TEXT") != "1":   # .ci/run sets it: never skipped there
    pytest.importorskip("transformers")   # installed by `make setup` (the [text] extra)

from autonat.io import AutonatError  # noqa: E402
from autonat.text.conditioner import TextConditioner  # noqa: E402
from autonat.text.encoders import load_text_encoder  # noqa: E402
from text_fixtures import tiny_clip_dir  # noqa: E402


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip_dir(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def enc(clip_dir):
    return load_text_encoder(str(clip_dir))


def test_states_have_the_encoder_shape_and_the_mask_counts_the_tokens(enc):
    states, mask = enc.encode(["red apple", "a cat", ""])
    assert states.shape == (3, 16, 32) and states.dtype == torch.float32 and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [enc.token_count(p) for p in ("red apple", "a cat", "")]
    assert enc.token_count("red apple") == 4      # <start> red apple <end>: the merges hold
    assert mask[:, 0].all() and not mask[2, 2:].any()


def test_encoding_is_per_prompt_and_deterministic(enc):
    both, _ = enc.encode(["red apple", "a cat face"])
    one, _ = enc.encode(["a cat face"])
    assert torch.allclose(both[1], one[0], atol=1e-6)
    assert not torch.allclose(both[0], both[1])


def test_a_prompt_longer_than_the_encoder_takes_is_refused(enc):
    with pytest.raises(AutonatError, match=r"is \d+ tokens long; .* takes at most 16"):
        enc.encode(["red apple " * 10])


def test_identity_names_the_weights(tmp_path, clip_dir, enc):
    other = load_text_encoder(str(tiny_clip_dir(tmp_path / "other", seed=1)))
    assert other.identity != enc.identity
    assert load_text_encoder(str(clip_dir)).identity == enc.identity


def test_a_diffusers_pipeline_layout_loads_its_text_encoder(tmp_path, clip_dir):
    pipe = tmp_path / "pipe"
    tiny_clip_dir(pipe / "text_encoder", projection=True)
    shutil.move(str(pipe / "text_encoder" / "tokenizer.json"), str(pipe / "tokenizer.json"))
    (pipe / "tokenizer").mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = pipe / f if f == "tokenizer.json" else pipe / "text_encoder" / f
        shutil.move(str(src), str(pipe / "tokenizer" / f))
    e = load_text_encoder(str(pipe))
    assert e.encode(["red apple"])[0].shape == (1, 16, 32)


@pytest.mark.parametrize("make,match", [
    (lambda p: p, "no text encoder directory"),
    (lambda p: (p.mkdir(), p)[1], "not a text encoder directory"),
    (lambda p: (p.write_text("x"), p)[1], "is not a directory"),
])
def test_bad_encoder_paths_are_named(tmp_path, make, match):
    with pytest.raises(AutonatError, match=match):
        load_text_encoder(str(make(tmp_path / "enc")))


def test_conditioner_null_is_the_empty_prompt_and_evaluation_prompts_are_a_pure_function(enc):
    captions = [f"cat {i}" for i in range(7)]
    c = TextConditioner(enc, captions)
    s, m = enc.encode([""])
    assert torch.equal(c.null_states, s[0]) and torch.equal(c.null_mask, m[0])
    a, b = c.for_evaluation(20, seed=3), c.for_evaluation(9, seed=3)
    assert a.prompts[:9] == b.prompts and torch.equal(a.states[:9], b.states)
    assert sorted(a.prompts[:7]) == sorted(captions)          # every caption once before repeats
    assert c.for_evaluation(7, seed=4).prompts != a.prompts[:7]
    cond = c.condition(["red apple", "red apple"])
    assert torch.equal(cond.states[0], cond.states[1]) and cond.prompts == ("red apple", "red apple")


def test_conditioner_parse_repeats_and_refuses(enc):
    c = TextConditioner(enc)
    assert c.parse(["a", "b"], n=5) == ["a", "b", "a", "b", "a"]
    assert c.parse("red apple") == ["red apple"]
    with pytest.raises(AutonatError, match="needs a prompt"):
        c.parse(None)
    with pytest.raises(AutonatError, match="prompts must be text"):
        c.parse(["a", 3])
    with pytest.raises(AutonatError, match="held-out captions"):
        c.for_evaluation(4, 0)


def test_clip_score_is_100_times_the_clipped_cosine_of_clips_own_embeddings(tmp_path):
    """Against CLIPModel's own forward (logits_per_image / logit_scale = cosines); grayscale
    images are repeated over RGB; a text-only encoder is refused as a CLIP scorer by name."""
    from text_fixtures import tiny_clip_dir, tiny_clip_model_dir
    from autonat.text.clip_score import ClipScorer
    d = tiny_clip_model_dir(tmp_path / "clip")
    s = ClipScorer(str(d))
    img = torch.randint(0, 256, (3, 3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prompts = ["red apple", "cat face", "red cat"]
    tok = s.tokenizer(prompts, padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        out = s.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=s._pixels(img))
    want = torch.diagonal(out.logits_per_image / s.model.logit_scale.exp())
    got = s.cosines(img, prompts)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(s.scores(img, prompts), 100 * want.clamp(min=0), atol=1e-3)
    gray = img[:, :1]
    assert torch.allclose(s.cosines(gray, prompts), s.cosines(gray.repeat(1, 3, 1, 1), prompts), atol=1e-6)
    with pytest.raises(AutonatError, match="vision tower"):
        ClipScorer(str(tiny_clip_dir(tmp_path / "text-only")))
