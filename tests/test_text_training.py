"""A captioned folder through tokenize (caption states pre-extracted with the tokens) and training
(a text-conditional U-ViT, one caption per image drawn from a keyed stream)."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

if os.environ.get("AUTONAT_REQUIRE_TEXT") != "1":   # .ci/run sets it: never skipped there
    pytest.importorskip("transformers")

from autonat.io import AutonatError  # noqa: E402
from autonat.models.registry import load_model  # noqa: E402
from autonat.text.encoders import load_text_encoder  # noqa: E402
from autonat.tokens import TokenCache, TokenizeConfig, tokenize  # noqa: E402
from autonat.training import TrainConfig, train  # noqa: E402
from conftest import tiny_tokenizer  # noqa: E402
from text_fixtures import tiny_clip_dir  # noqa: E402

CAPTIONS = {"a.png": ["red apple", "an apple"], "b.png": ["cat face"], "c.png": ["a cat", "cat", "red cat"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    folder = root / "set"
    folder.mkdir()
    for i, name in enumerate(CAPTIONS):
        Image.fromarray(np.full((28, 28), 60 * i, np.uint8)).save(folder / name)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f, "text": t}) + "\n"
                                                   for f, t in CAPTIONS.items()))
    tiny_tokenizer().save_pretrained(root / "tok")
    clip = tiny_clip_dir(root / "clip")
    cache = tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder), text_encoder=str(clip)),
                     root / "cache", show_progress=False)
    return root, folder, clip, cache


def test_every_caption_is_stored_with_its_image_and_picked_by_u(setup):
    root, _, clip, cache = setup
    enc = load_text_encoder(str(clip))
    assert cache.text is not None and cache.text.captions() == [c for caps in CAPTIONS.values() for c in caps]
    assert cache.text.offsets.tolist() == [0, 2, 3, 6]
    want, mask = enc.encode(["red cat"])
    got = cache.text.condition(torch.tensor([2]), torch.tensor([0.99]))
    assert torch.allclose(got.states[0], want[0], atol=2e-3) and torch.equal(got.mask[0], mask[0])
    first = cache.batch(torch.tensor([2, 0]), caption=torch.tensor([0.0, 0.6]))[1]
    assert torch.allclose(first.states[0], enc.encode(["a cat"])[0][0], atol=2e-3)
    assert torch.allclose(first.states[1], enc.encode(["an apple"])[0][0], atol=2e-3)
    assert torch.allclose(first.null_states, enc.encode([""])[0][0], atol=2e-3)
    assert TokenCache.open(root / "cache").text.manifest["encoder_identity"] == enc.identity


def test_a_captioned_folder_needs_a_text_encoder_and_nothing_is_written(setup, tmp_path):
    root, folder, _, _ = setup
    with pytest.raises(AutonatError, match="is captioned .*--text-encoder"):
        tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder)), tmp_path / "out",
                 show_progress=False)
    assert not (tmp_path / "out").exists()


def test_a_caption_longer_than_the_encoder_is_refused_before_writing(setup, tmp_path):
    root, _, clip, _ = setup
    folder = tmp_path / "long"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "red apple " * 20}) + "\n")
    with pytest.raises(AutonatError, match="tokens long"):
        tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder), text_encoder=str(clip)),
                 tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_a_text_model_trains_on_the_captions_and_records_its_encoder(setup, tmp_path):
    root, _, clip, cache = setup
    cfg = TrainConfig(tokens=str(root / "cache"), model="tiny", batch_size=3, steps=3, warmup=1)
    m = load_model(train(cfg, tmp_path / "m", show_progress=False))
    assert m.config.condition == "text" and (m.config.text_len, m.config.text_dim) == (16, 32)
    assert m.meta["training"]["text_encoder"]["identity"] == load_text_encoder(str(clip)).identity
    with pytest.raises(AutonatError, match="not yet for ENAT"):
        train(TrainConfig(tokens=str(root / "cache"), model="enat-tiny", batch_size=3, steps=1),
              tmp_path / "e", show_progress=False)
