"""Token cache: round trip, resume after interruption, refusal of a foreign tokenizer."""
from __future__ import annotations

import pytest
import torch

from autonat.io import AutonatError
from autonat.tokens import TokenCache, write_token_cache

from conftest import random_images, tiny_tokenizer


def test_roundtrip(token_cache, tok):
    ds = random_images(64)
    assert len(token_cache) == 64 and token_cache.tokens.shape == (64, 2, 49)
    x = ds.images[:5].float() / 255
    assert torch.equal(torch.from_numpy(token_cache.tokens[:5, 0].astype("int64")), tok.encode(x).flatten(1))
    assert torch.equal(torch.from_numpy(token_cache.tokens[:5, 1].astype("int64")),
                       tok.encode(x.flip(-1)).flatten(1))
    ids, cond = token_cache.batch(torch.tensor([3, 1]), torch.tensor([1, 0]))
    assert ids.shape == (2, 49) and cond.labels.tolist() == [3, 1] and cond.null_id == 10
    assert token_cache.manifest["tokenizer_identity"] == tok.identity
    assert token_cache.manifest["count"] == 64 and token_cache.manifest["grid"] == [7, 7]
    assert TokenCache.open(token_cache.path).manifest == token_cache.manifest


def test_interrupted_run_resumes(tmp_path):
    tok = tiny_tokenizer()
    ds = random_images(40)
    calls = {"n": 0}
    real = tok.encode

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(x)

    tok.encode = flaky
    with pytest.raises(KeyboardInterrupt):
        write_token_cache(tok, ds, tmp_path / "c", batch_size=10, chunk=10, show_progress=False)
    with pytest.raises(AutonatError, match="unfinished"):
        TokenCache.open(tmp_path / "c")
    calls["n"] = 0
    cache = write_token_cache(tok, ds, tmp_path / "c", batch_size=10, chunk=10, show_progress=False)
    assert calls["n"] == 1           # the 3 finished chunks were not encoded again, only the 4th
    tok.encode = real
    ref = write_token_cache(tiny_tokenizer(), ds, tmp_path / "ref", batch_size=10, show_progress=False)
    assert (cache.tokens == ref.tokens).all()
    assert not (tmp_path / "c" / "progress.json").exists()
    assert (tmp_path / "c" / "tokenizer" / "config.json").is_file()    # the cache carries its tokenizer


def test_errors_leave_nothing_and_caches_are_checked(tmp_path):
    import numpy as np
    tok = tiny_tokenizer()
    with pytest.raises(AutonatError, match="--channels 1 --resolution 28"):
        write_token_cache(tok, random_images(8, size=32), tmp_path / "bad", show_progress=False)
    assert not (tmp_path / "bad").exists()
    cache = write_token_cache(tok, random_images(8), tmp_path / "ok", show_progress=False)
    bad = np.array(cache.tokens)
    bad[0, 0, 0] = 32                               # an id outside the 32-code codebook
    np.save(tmp_path / "ok" / "tokens.npy", bad)
    with pytest.raises(AutonatError, match="token ids span"):
        TokenCache.open(tmp_path / "ok")
    np.save(tmp_path / "ok" / "tokens.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(AutonatError, match="not a numeric .npy"):
        TokenCache.open(tmp_path / "ok")


def test_foreign_tokenizer_refused(token_cache):
    other = tiny_tokenizer(seed=1)
    with pytest.raises(AutonatError, match="made by tokenizer 'tiny'"):
        write_token_cache(other, random_images(64), token_cache.path, show_progress=False)
    with pytest.raises(AutonatError, match="tiny"):
        token_cache.check_tokenizer(other.identity, "other")
