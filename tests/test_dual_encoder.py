"""autonat's own text encoder: the dual encoder learns which caption goes with which image, reads
prompts it never saw (bytes, not a word list), serves as a text encoder for tokenize / the NAT,
and R-precision counts what it should."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from autonat.cli import main
from autonat.io import AutonatError
from autonat.text.dual_encoder import DualEncoder
from autonat.text.alignment import r_precision
from autonat.text.dual_train import DualTrainConfig, train_dual_encoder
from autonat.text.encoders import load_text_encoder

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "black": (10, 10, 10), "white": (245, 245, 245), "purple": (140, 30, 160), "cyan": (30, 210, 210)}


def _colour_folder(root, per_colour=4, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for split, count in (("train", per_colour), ("test", 1)):
        (root / split).mkdir(parents=True)
        for name, rgb in COLOURS.items():
            for k in range(count):
                img = np.clip(np.array(rgb) + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
                f = f"{name}{k}.png"
                Image.fromarray(img).save(root / split / f)
                lines.append((split, {"file_name": f, "text": [f"a {name} square", f"{name}"]}))
        (root / split / "metadata.jsonl").write_text(
            "".join(json.dumps(o) + "\n" for s, o in lines if s == split))
    return root


TINY = dict(max_length=24, dim=32, depth=1, heads=2, embed_dim=32, image_width=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = _colour_folder(tmp_path_factory.mktemp("colours") / "set")
    from autonat.text.dual_encoder import DualEncoderConfig
    cfg = DualTrainConfig(data=str(root), steps=120, batch_size=16, lr=3e-3, warmup=10, bf16=False,
                          model=DualEncoderConfig(**TINY))
    out = root.parent / "enc"
    metrics = train_dual_encoder(cfg, out, show_progress=False)
    return root, out, metrics


def test_it_learns_which_caption_belongs_to_which_image(trained):
    _, _, metrics = trained
    # 8 colours: chance is 1/8 top-1 among the held-out captions
    assert metrics["test_retrieval"]["top1_all"] >= 0.75, metrics


def test_it_is_a_text_encoder_that_reads_unseen_prompts(trained):
    _, out, _ = trained
    enc = load_text_encoder(str(out))
    states, mask = enc.encode(["a red square", "unseen: ünï"])
    assert states.shape == (2, 24, 32) and mask.sum(1).tolist() == [14, enc.token_count("unseen: ünï")]
    with pytest.raises(AutonatError, match="tokens long"):
        enc.encode(["x" * 30])
    assert load_text_encoder(str(out)).identity == enc.identity


def test_a_captioned_cache_can_use_it(trained, tmp_path):
    from conftest import tiny_tokenizer
    from autonat.tokens import TokenizeConfig, tokenize
    root, out, _ = trained
    tok = tiny_tokenizer(image_size=16)
    tok.save_pretrained(tmp_path / "tok")
    cache = tokenize(TokenizeConfig(tokenizer=str(tmp_path / "tok"), data=str(root), channels=1,
                                    text_encoder=str(out)), tmp_path / "cache", show_progress=False)
    assert cache.text.length == 24 and cache.text.dim == 32 and len(cache.text.captions()) == 2 * 8 * 4


def test_r_precision_counts_the_true_caption_beating_the_distractors():
    sims = torch.eye(50) + 0.01 * torch.rand(50, 50, generator=torch.Generator().manual_seed(0))
    assert r_precision(sims, distractors=20) == 1.0
    assert r_precision(-sims, distractors=20) == 0.0
    half = sims.clone()
    half[:25] = -half[:25]                       # the first half ranks its own caption last
    assert r_precision(half, distractors=20) == 0.5
    # explicit true columns: image i made from prompt true[i]
    true = torch.tensor([3, 3, 7])
    s3 = torch.zeros(3, 10)
    s3[0, 3] = s3[1, 3] = s3[2, 7] = 1.0
    assert r_precision(s3, true, distractors=5) == 1.0 and abs(r_precision(s3, true.flip(0), distractors=9) - 1 / 3) < 1e-6


def test_cli_trains_and_evaluates(tmp_path, capsys):
    root = _colour_folder(tmp_path / "set", per_colour=2)
    args = ["--data", str(root), "--steps", "3", "--batch-size", "8", "--max-length", "24", "--dim", "16",
            "--depth", "1", "--heads", "2", "--embed-dim", "16", "--image-width", "8"]
    assert main(["text-encoder", "train", "--out", str(tmp_path / "e"), "--quiet", *args]) == 0
    assert main(["text-encoder", "eval", "--text-encoder", str(tmp_path / "e"), "--data", str(root)]) == 0
    assert '"r_precision"' in capsys.readouterr().out
    assert main(["text-encoder", "train", "--out", str(tmp_path / "e"), "--quiet", *args]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    bare = tmp_path / "bare"
    (bare / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bare / "a" / "x.png")
    assert main(["text-encoder", "train", "--out", str(tmp_path / "f"), "--data", str(bare), "--batch-size", "2"]) == 2
    assert "has no captions" in capsys.readouterr().err


def test_model_round_trip_keeps_every_weight(tmp_path):
    m = DualEncoder(__import__("autonat.text.dual_encoder", fromlist=["x"]).DualEncoderConfig(**TINY))
    m.save_pretrained(tmp_path / "m")
    back = DualEncoder.from_pretrained(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
