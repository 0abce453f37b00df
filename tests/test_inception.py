"""The FID InceptionV3 (autonat.metrics.inception) without the real weights: architecture, key names,
parameter count, save/load round trip and the error messages users see."""
import pytest
import torch

from autonat.io import AutonatError
from autonat.metrics.inception import FIDInceptionV3, load_inception

# Parameter count of pytorch-fid's FID Inception (aux head removed, 1008-way fc), by hand:
#   stem (1a, 2a, 2b, 3b, 4a)                        172,672
#   Mixed_5b / 5c / 5d                               255,904 + 277,472 + 285,152
#   Mixed_6a                                       1,153,280
#   Mixed_6b / 6c / 6d / 6e                        1,297,408 + 2 x 1,691,008 + 2,141,952
#   Mixed_7a                                       1,698,304
#   Mixed_7b / 7c                                  5,044,608 + 6,076,800
#   fc 2048 x 1008 + 1008                          2,065,392
#   total                                         23,850,960
# (each conv: cin*cout*kh*kw, no bias, + 2*cout BatchNorm affine). Cross-check: torchvision's
# inception_v3 has 27,161,264 parameters; minus its aux head (98,560 + 2,459,136 + 769,000) and
# plus 8 more fc rows (8 x 2049) gives the same 23,850,960.
FID_INCEPTION_PARAMS = 23_850_960


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return FIDInceptionV3()


@pytest.fixture(scope="module")
def rgb():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=g)


def test_shapes_and_probs(net, rgb):
    gray = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    for images in (gray, rgb):
        feats, probs = net.features_and_probs(images)
        assert feats.shape == (2, 2048) and probs.shape == (2, 1008)
        assert feats.dtype == probs.dtype == torch.float32
        assert torch.isfinite(feats).all() and torch.isfinite(probs).all()
        assert torch.allclose(probs.sum(-1), torch.ones(2), atol=1e-5)
    assert net.identity == "" and net.metric_name == "inception"
    with pytest.raises(AutonatError):
        net.features_and_probs(torch.rand(1, 4, 8, 8))


def test_bf16_autocast_outputs_float32(net):
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        feats, probs = net.features_and_probs(torch.rand(1, 3, 16, 16))
    assert feats.dtype == probs.dtype == torch.float32
    assert feats.shape == (1, 2048) and torch.isfinite(probs).all()


def test_save_load_round_trip(net, rgb, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), path)
    loaded = FIDInceptionV3.from_weights_file(path)
    assert not loaded.training and len(loaded.identity) > 0
    a = net.features_and_probs(rgb)
    b = loaded.features_and_probs(rgb)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    via_loader = load_inception(str(path))
    assert via_loader.identity == loaded.identity


def test_state_dict_keys_and_param_count(net):
    keys = set(net.state_dict())
    for k in ("Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_var", "Mixed_5b.branch5x5_2.conv.weight",
              "Mixed_6e.branch7x7dbl_5.bn.bias", "Mixed_7a.branch7x7x3_4.conv.weight",
              "Mixed_7c.branch3x3dbl_3b.conv.weight", "fc.weight", "fc.bias"):
        assert k in keys, k
    assert not any(k.startswith("AuxLogits") for k in keys)
    sd = net.state_dict()
    assert sd["fc.weight"].shape == (1008, 2048)
    assert sd["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert sd["Mixed_7b.branch3x3_2b.conv.weight"].shape == (384, 384, 3, 1)
    assert net.Conv2d_1a_3x3.bn.eps == 0.001
    assert sum(p.numel() for p in net.parameters()) == FID_INCEPTION_PARAMS


def test_load_inception_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTONAT_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(AutonatError, match="--inception-weights"):
        load_inception(None)
    with pytest.raises(AutonatError, match="--inception-weights"):
        load_inception(str(tmp_path / "nope.pth"))
    monkeypatch.setenv("AUTONAT_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(AutonatError, match="nope.pth"):
        load_inception()

    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048), "foo.bias": torch.zeros(3)}, wrong)
    with pytest.raises(AutonatError) as e:
        load_inception(str(wrong))
    msg = str(e.value)
    assert "wrong.pth" in msg and "Conv2d_1a_3x3.conv.weight" in msg and "foo.bias" in msg
    assert "fc.weight (1000, 2048)" in msg

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(AutonatError, match="garbage.pth"):
        load_inception(str(garbage))
