"""Evaluation sanity: FID math, real-vs-real floor vs garbage, CRN determinism, npz stats."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autonat.data import load_dataset, to_uint8
from autonat.bundle import Bundle
from autonat.conditioning import ClassConditioner
from autonat.evaluation import EvalConfig, evaluate_model
from autonat.metrics.fid import FeatureStats, frechet_distance, inception_score, kid, precision_recall
from autonat.metrics.reference import extract, load_extractor
from autonat.presets import maskgit
from autonat.tokenizer import load

from conftest import tiny_tokenizer, tiny_uvit


def test_identical_sets_give_zero():
    f = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))
    s = FeatureStats.from_features(f)
    assert abs(frechet_distance(s, s)) < 1e-6


def test_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    d = 8
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    a, b = FeatureStats(mu1, np.diag(v1), 0), FeatureStats(mu2, np.diag(v2), 0)
    want = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    # and from samples of shifted Gaussians (same covariance): FID -> |shift|^2
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20000, 4, generator=g), torch.randn(20000, 4, generator=g) + 1.0
    assert frechet_distance(FeatureStats.from_features(x), FeatureStats.from_features(y)) == pytest.approx(4.0, abs=0.1)


def test_singular_covariance_is_handled():
    f = torch.randn(10, 32, generator=torch.Generator().manual_seed(0))   # n < D: singular
    g = torch.randn(10, 32, generator=torch.Generator().manual_seed(1))
    v = frechet_distance(FeatureStats.from_features(f), FeatureStats.from_features(g))
    assert np.isfinite(v) and v > 0


def test_is_kid_pr_basic():
    uniform = torch.full((100, 10), 0.1)
    assert inception_score(uniform)[0] == pytest.approx(1.0)
    confident = torch.eye(10).repeat(10, 1)
    assert inception_score(confident)[0] == pytest.approx(10.0, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 8, generator=g), torch.randn(500, 8, generator=g)
    assert abs(kid(a, b, subsets=5, subset_size=200)[0]) < 0.05
    p, r = precision_recall(a, b, k=3)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(a, b + 10, k=3)
    assert p == 0 and r == 0


def test_npz_roundtrip(tmp_path):
    s = FeatureStats.from_features(torch.randn(50, 6))
    s.save_npz(tmp_path / "ref.npz")
    with np.load(tmp_path / "ref.npz") as d:
        assert set(d.files) >= {"mu", "sigma"}
    back = FeatureStats.load_npz(tmp_path / "ref.npz")
    assert np.array_equal(back.mu, s.mu) and np.array_equal(back.sigma, s.sigma)


def test_class_balanced_evaluation_labels():
    lab = ClassConditioner(10).for_evaluation(1003, seed=0).labels
    counts = torch.bincount(lab, minlength=10)
    assert int(counts.max() - counts.min()) <= 1
    assert torch.equal(lab, ClassConditioner(10).for_evaluation(1003, seed=0).labels)
    assert not torch.equal(lab, ClassConditioner(10).for_evaluation(1003, seed=1).labels)


@pytest.mark.slow
def test_real_floor_far_below_random_token_decodes(fmnist_root):
    net = load_extractor("fmnist")
    train = load_dataset("fashion-mnist", "train").images[:4000]
    test = load_dataset("fashion-mnist", "test").images[:1000]
    ref = FeatureStats.from_features(extract(net, train)[0])
    real = frechet_distance(FeatureStats.from_features(extract(net, test)[0]), ref)
    tok = load("fashion-mnist")
    ids = torch.randint(0, tok.codebook_size, (1000, 7, 7), generator=torch.Generator().manual_seed(0))
    junk = frechet_distance(FeatureStats.from_features(extract(net, to_uint8(tok.decode(ids)))[0]), ref)
    assert real < 5 and junk > 20 * real, (real, junk)


@pytest.mark.slow
def test_crn_gives_bit_identical_fid(fmnist_root):
    net = load_extractor("fmnist")
    tok = tiny_tokenizer()
    model = tiny_uvit()
    ref = extract(net, load_dataset("fashion-mnist", "test").images[:500])[0]
    cfg = EvalConfig(n=48, seed=3, batch_size=16, bf16=False, precision_recall=False, count_flops=False)
    bundle = Bundle(model, tok)
    a = evaluate_model(bundle, maskgit(4), net, cfg, ref, show_progress=False)
    b = evaluate_model(bundle, maskgit(4), net, cfg, ref, show_progress=False)
    assert a["fid"] == b["fid"] and a["is"] == b["is"]
    c = evaluate_model(bundle, maskgit(4), net, EvalConfig(**{**cfg.__dict__, "seed": 4}), ref, show_progress=False)
    assert c["fid"] != a["fid"]


def test_real_images_reach_the_feature_network_at_the_generators_side(tmp_path):
    """A folder stored at 16 px scored for a 12 px generator: the reference images are resized to
    12 px first (as the generated ones are), and tokenizer reconstructions work at that side."""
    import numpy as np
    from PIL import Image
    from autonat.data import load_dataset
    from autonat.evaluation import EvalConfig, evaluate_reconstructions, load_feature_extractor
    from autonat.metrics.reference import extract, reference_features
    from conftest import tiny_tokenizer
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for k in range(6):
                Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / split / c / f"{k}.png")
    ext = load_feature_extractor("fmnist")
    got = reference_features(ext, str(tmp_path), "train", show_progress=False, resolution=12)
    want = extract(ext, load_dataset(str(tmp_path), "train", resolution=12).images)[0]
    native = reference_features(ext, str(tmp_path), "train", show_progress=False)
    assert torch.allclose(got, want) and not torch.allclose(got, native, atol=1e-3)
    res = evaluate_reconstructions(tiny_tokenizer(image_size=12), ext, EvalConfig(
        n=4, reference_data=str(tmp_path), precision_recall=False), show_progress=False)
    assert res["n"] == 4 and res["fid"] == res["fid"]
