"""The tokenizer (plain and adversarial), feature-network and peer (pixel diffusion, latent diffusion,
autoregressive) trainers share the NAT trainer's skeleton: an interrupted run
resumed with `resume=True` must end exactly where the uninterrupted run ends, and it must really
continue from the checkpoint (tampered checkpoint weights change the result; a restart would not)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from autonat.checkpoint import find_latest
from autonat.io import atomic_save_tensors, load_tensors


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from conftest import random_images
    root = tmp_path_factory.mktemp("imgs")
    data = random_images(80)
    for i, (im, y) in enumerate(zip(data.images, data.labels)):
        (root / str(int(y))).mkdir(exist_ok=True)
        Image.fromarray(im[0].numpy(), mode="L").save(root / str(int(y)) / f"{i}.png")
    return root


def _tokenizer(folder):
    from autonat.tokenizer.model import TokenizerConfig
    from autonat.tokenizer.train import TokenizerTrainConfig, train_tokenizer
    mcfg = TokenizerConfig(base_channels=4, ch_mult=(1, 2), codebook_size=16, codebook_dim=4)
    cfg = TokenizerTrainConfig(data=str(folder), batch_size=8, steps=6, warmup=1, ckpt_every=3, log_every=1,
                               eval_every=100, eval_samples=8, bf16=False, device="cpu")
    import autonat.tokenizer.train as module
    return module, lambda out, resume=False: train_tokenizer(mcfg, cfg, out, resume=resume, show_progress=False)


def _adversarial_tokenizer(folder):
    """The discriminator and its optimizer state must survive the checkpoint too."""
    from autonat.tokenizer.model import TokenizerConfig
    from autonat.tokenizer.train import TokenizerTrainConfig, train_tokenizer
    mcfg = TokenizerConfig(base_channels=4, ch_mult=(1, 2), codebook_size=16, codebook_dim=4)
    cfg = TokenizerTrainConfig(data=str(folder), batch_size=8, steps=6, warmup=1, ckpt_every=3, log_every=1,
                               eval_every=100, eval_samples=8, bf16=False, device="cpu", adv_weight=0.5,
                               adv_start=1, disc_channels=8)
    import autonat.tokenizer.train as module
    return module, lambda out, resume=False: train_tokenizer(mcfg, cfg, out, resume=resume, show_progress=False)


def _diffusion(folder):
    pytest.importorskip("diffusers")
    from dataclasses import replace

    from autonat.baselines.diffusion_train import DiffusionTrainConfig, train_diffusion
    from autonat.baselines.pixel_diffusion import SMOKE_UNET
    cfg = DiffusionTrainConfig(data=str(folder), unet=replace(SMOKE_UNET), steps=6, batch_size=8, warmup=1,
                               ckpt_every=3, log_every=1, bf16=False, device="cpu")
    import autonat.baselines.peer_loop as module       # where the peers save their checkpoints

    def run(out, resume=False):
        train_diffusion(cfg, out, resume=resume, show_progress=False)
        (out / "model.safetensors").write_bytes((out / "model" / "model.safetensors").read_bytes())
    return module, run


def _peer_on_tokens(folder, train, config):
    """A peer trained on a token cache of 64 random images (in pytest's temporary directory)."""
    from autonat.tokens import TokenCache, write_token_cache
    from conftest import random_images, tiny_tokenizer
    path = Path(tempfile.mkdtemp(prefix="peer-cache-", dir=folder.parent)) / "cache"
    cache = write_token_cache(tiny_tokenizer(), random_images(64), path, hflip=True, batch_size=16,
                              tokenizer_name="tiny", show_progress=False)
    assert isinstance(cache, TokenCache)
    cfg = config(tokens=str(path), dim=16, depth=1, heads=2, steps=6, batch_size=8, warmup=0, ckpt_every=3,
                 log_every=1, bf16=False)
    import autonat.baselines.peer_loop as module           # where the peers save their checkpoints

    def run(out, resume=False):
        train(cfg, out, resume=resume, show_progress=False)
        (out / "model.safetensors").write_bytes((out / "model" / "model.safetensors").read_bytes())
    return module, run


def _ar(folder):
    from autonat.baselines.ar_train import ARTrainConfig, train_ar
    return _peer_on_tokens(folder, train_ar, ARTrainConfig)


def _latent(folder):
    pytest.importorskip("diffusers")
    from autonat.baselines.latent_train import LatentTrainConfig, train_latent
    return _peer_on_tokens(folder, train_latent, LatentTrainConfig)


def _featnet(folder):
    from autonat.metrics.featnet_train import FeatureNetTrainConfig, train_featnet
    cfg = FeatureNetTrainConfig(data=str(folder), epochs=2, batch_size=16, ckpt_every=3, log_every=1,
                                bf16=False, device="cpu")
    import autonat.metrics.featnet_train as module
    return module, lambda out, resume=False: train_featnet(cfg, out, resume=resume, show_progress=False)


def _until_killed(monkeypatch, module, run, out, at_step):
    from conftest import run_until_killed
    run_until_killed(monkeypatch, module, lambda: run(out), at_step)


@pytest.mark.parametrize("which", [_tokenizer, _adversarial_tokenizer, _featnet, _diffusion, _ar, _latent],
                         ids=["tokenizer", "adversarial-tokenizer", "featnet", "diffusion", "ar", "latent-diffusion"])
def test_resume_equals_uninterrupted_and_uses_the_checkpoint(tmp_path, folder, which, monkeypatch):
    module, run = which(folder)
    run(tmp_path / "full")
    _until_killed(monkeypatch, module, run, tmp_path / "cut", at_step=3)
    run(tmp_path / "cut", resume=True)
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    _until_killed(monkeypatch, module, run, tmp_path / "tampered", at_step=3)
    ck = find_latest(tmp_path / "tampered")
    w = load_tensors(ck / "model.safetensors")
    atomic_save_tensors(ck / "model.safetensors", {k: v + 0.01 if v.is_floating_point() else v for k, v in w.items()})
    run(tmp_path / "tampered", resume=True)
    c = load_tensors(tmp_path / "tampered" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)
