"""VQ tokenizer: shapes and ranges, padding, persistence, codebook health."""
from __future__ import annotations

import pytest
import torch

from autonat.data import load_dataset, to_float
from autonat.io import AutonatError
from autonat.tokenizer import Tokenizer, TokenizerConfig, load

from conftest import tiny_tokenizer


def test_encode_decode_shapes_and_range(tok):
    x = torch.rand(3, 1, 28, 28)
    ids = tok.encode(x)
    assert ids.shape == (3, 7, 7) and ids.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < tok.codebook_size
    y = tok.decode(ids)
    assert y.shape == (3, 1, 28, 28) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.equal(tok.decode(ids.view(3, -1)), y)


def test_padding_handled_inside():
    # f = 8 on 28x28: padded to 32 internally, 4x4 tokens, decode returns 28x28
    tok = Tokenizer(TokenizerConfig(image_size=28, base_channels=8, ch_mult=(1, 1, 2, 2), codebook_size=16,
                                    codebook_dim=4)).eval()
    ids = tok.encode(torch.rand(2, 1, 28, 28))
    assert ids.shape == (2, 4, 4)
    assert tok.decode(ids).shape == (2, 1, 28, 28)


def test_scales_to_256_f16_by_config():
    """An f = 16 configuration really maps 256x256 RGB images to 16x16 tokens and back."""
    cfg = TokenizerConfig(image_size=256, channels=3, base_channels=4, ch_mult=(1, 1, 2, 2, 4), codebook_size=64,
                          codebook_dim=4)
    tok = Tokenizer(cfg).eval()
    ids = tok.encode(torch.rand(1, 3, 256, 256))
    assert ids.shape == (1, 16, 16) and int(ids.max()) < 64
    assert tok.decode(ids).shape == (1, 3, 256, 256) and tok.num_tokens == 256


def test_bad_inputs_are_named(tok):
    with pytest.raises(AutonatError, match=r"\[B, 1, 28, 28\]"):
        tok.encode(torch.rand(2, 3, 28, 28))
    with pytest.raises(AutonatError, match="MASK"):
        tok.decode(torch.full((1, 7, 7), tok.codebook_size))


def test_save_load_roundtrip_exact(tmp_path, tok):
    tok.save_pretrained(tmp_path / "t")
    back = load(tmp_path / "t")
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(back.encode(x), tok.encode(x))
    ids = tok.encode(x)
    assert torch.equal(back.decode(ids), tok.decode(ids))
    assert back.identity and back.codebook_size == tok.codebook_size
    # config typo is refused by name
    (tmp_path / "t" / "config.json").write_text('{"kind": "tokenizer", "codebok_size": 3}')
    with pytest.raises(AutonatError, match="codebok_size"):
        load(tmp_path / "t")


def test_missing_dir_and_unknown_name():
    with pytest.raises(AutonatError, match="not a shipped name"):
        load("/no/such/tokenizer")


@pytest.mark.slow
def test_codebook_does_not_collapse_on_real_batch(fmnist_root):
    """EMA codebook + dead-code restarts: after a few steps on real images most codes are in use."""
    torch.manual_seed(0)
    x = to_float(load_dataset("fashion-mnist", "test").images[:128])
    tok = tiny_tokenizer(codebook_size=64)
    tok.quantizer.decay = 0.8   # short run: let dead-code restarts act within a few steps
    tok.train()
    opt = torch.optim.Adam(tok.parameters(), 2e-3)
    for _ in range(30):
        rec, q = tok(x)
        loss = (rec - x).pow(2).mean() + q.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    tok.eval()
    used = tok.encode(x).unique().numel()
    assert used >= 0.75 * 64, f"only {used}/64 codes used"
    assert float(q.perplexity) > 20
