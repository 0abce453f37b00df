"""The latent-diffusion peer: its latents are the tokenizer's own code vectors (decoding them is
decoding the tokens), the denoiser reads time, class and every position, the solver loop leaves
latents unclipped, and a trained model loads only with its own tokenizer (exact resume:
tests/test_other_trainers.py)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from autonat.baselines.latent_diffusion import LatentCodec, LatentUViT, LatentUViTConfig  # noqa: E402

CFG = LatentUViTConfig(latent_dim=8, seq_len=49, num_classes=10, dim=32, depth=3, heads=2)


def _model(seed=0):
    torch.manual_seed(seed)
    m = LatentUViT(CFG).eval()
    with torch.no_grad():                        # the read-out starts at zero; give it weights
        m.out_proj.weight.normal_(0, 0.2)
    return m


def test_latents_are_the_code_vectors_and_decode_like_the_tokens(tok):
    ids = torch.randint(0, 32, (3, 7, 7), generator=torch.Generator().manual_seed(0))
    scale = LatentCodec.data_scale(tok, ids)
    codec = LatentCodec(tok, scale)
    z = codec.encode(ids)
    assert z.shape == (3, 8, 7, 7) and 0.3 < float(z.std()) < 3.0
    assert torch.allclose(z * scale, tok.quantizer.lookup(ids))
    assert torch.equal(codec.nearest_ids(z), ids)
    want = tok.decode(ids)
    assert torch.allclose(codec.decode(z), want, atol=1e-5)              # on the sphere: the codes themselves
    assert torch.allclose(codec.decode(z * 3.7), want, atol=1e-5)        # the length of a vector does not matter
    assert torch.equal(codec.decode(z + 0.05 * torch.randn_like(z), snap=True), want)
    assert not torch.allclose(codec.decode(z + 0.5 * torch.randn_like(z)), want, atol=1e-3)
    with pytest.raises(Exception, match="positive"):
        LatentCodec(tok, 0.0)


def test_the_denoiser_reads_time_class_and_every_position():
    m = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 7, 7, generator=g)
    t = torch.tensor([10, 500])
    lab = torch.tensor([1, 10])                                       # 10 = the null class
    base = m(x, t, class_labels=lab).sample
    assert base.shape == x.shape
    assert not torch.allclose(m(x, torch.tensor([11, 500]), class_labels=lab).sample[0], base[0])
    assert torch.allclose(m(x, torch.tensor([11, 500]), class_labels=lab).sample[1], base[1], atol=1e-6)
    assert not torch.allclose(m(x, t, class_labels=torch.tensor([2, 10])).sample[0], base[0])
    x2 = x.clone()
    x2[0, :, 6, 6] += 1.0                                               # one position changes all outputs
    assert not torch.allclose(m(x2, t, class_labels=lab).sample[0, :, 0, 0], base[0, :, 0, 0])
    assert torch.equal(LatentUViT(CFG)(x, t, class_labels=lab).sample, torch.zeros_like(x))   # zero read-out at init
    with pytest.raises(Exception, match="latents of 8 channels"):
        m(torch.randn(1, 4, 7, 7), torch.tensor([3]), class_labels=torch.tensor([0]))


def test_the_solver_loop_leaves_latents_unclipped_and_guides():
    from autonat.baselines.pixel_diffusion import ScheduleConfig, sample
    m, sch = _model(), ScheduleConfig()
    noise = torch.randn(4, 8, 7, 7, generator=torch.Generator().manual_seed(2)) * 3
    lab = torch.tensor([0, 1, 2, 3])
    free = sample(m, sch, "dpmpp2m", 4, 2.0, lab, noise, 10, clip=False)
    clipped = sample(m, sch, "dpmpp2m", 4, 2.0, lab, noise, 10)
    assert free.shape == noise.shape and float(free.abs().max()) > 1.5 and float(clipped.abs().max()) <= 1.0 + 1e-5
    assert torch.equal(free, sample(m, sch, "dpmpp2m", 4, 2.0, lab, noise, 10, clip=False))
    assert not torch.allclose(free, sample(m, sch, "dpmpp2m", 4, 1.0, lab, noise, 10, clip=False))


def test_a_trained_model_loads_only_with_its_tokenizer(tmp_path, token_cache):
    """(Exact resume: tests/test_other_trainers.py, as for every trainer.)"""
    from autonat.baselines.latent_train import LatentTrainConfig, load_latent, train_latent
    from autonat.io import AutonatError
    from conftest import tiny_tokenizer
    cfg = LatentTrainConfig(tokens=str(token_cache.path), dim=16, depth=1, heads=2, steps=2, batch_size=8,
                            warmup=0, bf16=False)
    full = train_latent(cfg, tmp_path / "run", show_progress=False)
    model, schedule, codec, meta = load_latent(full)
    assert meta["tokenizer"] == token_cache.manifest["tokenizer_identity"] and codec.scale == meta["latent_scale"] > 0
    assert model.config.latent_dim == 8 and model.config.seq_len == token_cache.seq_len
    other = tmp_path / "other-tok"
    tiny_tokenizer(seed=5).save_pretrained(other)
    with pytest.raises(AutonatError, match="latent space of tokenizer"):
        load_latent(full, tokenizer=str(other))
