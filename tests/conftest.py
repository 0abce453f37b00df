"""Shared fixtures: tiny random-init models and data so tests run in seconds on a CPU."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("AUTONAT_PROGRESS", "0")
torch.set_num_threads(min(2, torch.get_num_threads()))

from autonat.data import ArrayDataset, find_fashion_mnist  # noqa: E402
from autonat.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Reference-statistics and download caches go to a per-session temp dir."""
    monkeypatch.setenv("AUTONAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny_tokenizer(codebook_size: int = 32, seed: int = 0, image_size: int = 28) -> Tokenizer:
    torch.manual_seed(seed)
    tok = Tokenizer(TokenizerConfig(image_size=image_size, base_channels=8, ch_mult=(1, 2, 2),
                                    codebook_size=codebook_size, codebook_dim=8)).eval()
    tok.identity = tok.saved_identity()
    return tok


def random_images(n: int, seed: int = 0, size: int = 28) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    imgs = (torch.rand(n, 1, size, size, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(n) % 10
    return ArrayDataset(imgs, labels, tuple(str(i) for i in range(10)), identity=f"rand:{n}:{seed}")


@pytest.fixture
def tok():
    return tiny_tokenizer()


@pytest.fixture
def token_cache(tmp_path, tok):
    from autonat.tokens import write_token_cache
    return write_token_cache(tok, random_images(64), tmp_path / "cache", hflip=True, batch_size=16,
                             tokenizer_name="tiny", show_progress=False)


@pytest.fixture
def fmnist_root():
    root = find_fashion_mnist()
    if root is None:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return root


def tiny_uvit(codebook_size=32, seq_len=49, num_classes=10, seed=0, **overrides):
    from autonat.models.registry import build_model
    torch.manual_seed(seed)
    return build_model("tiny", codebook_size=codebook_size, seq_len=seq_len, num_classes=num_classes,
                       **overrides).eval()


def tiny_enat(codebook_size=32, seq_len=49, num_classes=10, seed=0, decoder_depth=1, **overrides):
    from autonat.models.registry import build_model
    torch.manual_seed(seed)
    m = build_model("enat-tiny", codebook_size=codebook_size, seq_len=seq_len, num_classes=num_classes,
                    decoder_depth=decoder_depth, **overrides).eval()
    # adaLN-Zero starts every block as the identity; perturb so tests exercise real computation.
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().sum() == 0 and p.ndim >= 1:
                p.add_(torch.randn_like(p) * 0.02)
    return m



class Killed(BaseException):
    """Stands for a kill -9 right after a checkpoint (the process simply stops)."""


def run_until_killed(monkeypatch, module, run, at_step: int) -> None:
    """Call `run()` and stop it right after `module.save_checkpoint` has written step `at_step`."""
    real = module.save_checkpoint

    def save_then_die(out_, **kw):
        real(out_, **kw)
        if kw["step"] == at_step:
            raise Killed
    monkeypatch.setattr(module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run()
    monkeypatch.setattr(module, "save_checkpoint", real)


def cc(labels, num_classes: int = 10):
    """Class ids as the models' condition (`autonat.conditioning.ClassCondition`)."""
    from autonat.conditioning import ClassCondition
    return ClassCondition(torch.as_tensor(labels, dtype=torch.long), num_classes)


@pytest.fixture
def tiny_search_parts(tok):
    """A tiny model bundle, its tokenizer and a (random) feature network for real FID evaluations."""
    from autonat.bundle import Bundle
    from autonat.metrics.features import FeatureNet, FeatureNetConfig
    torch.manual_seed(0)
    net = FeatureNet(FeatureNetConfig(channels=(4, 4, 4), feature_dim=8)).eval()
    net.identity, net.metric_name = "featnet-test", "test"
    model = tiny_uvit()
    model.identity = "model-test"
    return Bundle(model, tok), tok, net
