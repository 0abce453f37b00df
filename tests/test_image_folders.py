"""Image folders as people have them: every PIL mode, transparency composited on a documented
background (a flag chooses it), 16-bit images scaled rather than clipped, no library warning per
file, stray images and mismatched splits refused with their names."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from autonat.data import load_image_folder, parse_background
from autonat.io import AutonatError


def _folder(tmp_path, images: dict[str, Image.Image]):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    for name, im in images.items():
        im.save(root / "a" / name)
    return root


def _transparent_rgba() -> Image.Image:
    """Left half opaque red; right half fully transparent but *storing* green (what PIL's plain
    convert would show)."""
    a = np.zeros((8, 8, 4), np.uint8)
    a[:, :4] = (255, 0, 0, 255)
    a[:, 4:] = (0, 255, 0, 0)
    return Image.fromarray(a, "RGBA")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_the_background(tmp_path, mode):
    im = _transparent_rgba()
    if mode == "LA":
        im = im.convert("LA")
    elif mode == "P":   # palette + tRNS: PIL warns about it on a plain convert
        im = im.convert("P", palette=Image.ADAPTIVE, colors=4)
        pal = im.getpalette()[:12]
        green = next(i for i in range(4) if pal[3 * i:3 * i + 3] == [0, 255, 0])
        im.info["transparency"] = bytes(255 if i != green else 0 for i in range(4))
    root = _folder(tmp_path, {"x.png": im})
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no library warning may leak
        white = load_image_folder(root, channels=3).images[0]
        black = load_image_folder(root, channels=3, background="black").images[0]
        grey = load_image_folder(root, channels=3, background="#808080").images[0]
    assert white[:, :, 6].tolist() == [[255] * 8] * 3, white[:, :, 6]       # transparent -> background
    assert black[:, :, 6].tolist() == [[0] * 8] * 3
    assert grey[:, :, 6].tolist() == [[128] * 8] * 3
    assert white[:, 0, 1].tolist() == black[:, 0, 1].tolist() != [255, 255, 255]     # the opaque half stays


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "I;16", "I", "F", "LA", "RGBA"])
def test_every_pil_mode_loads_without_warnings(tmp_path, mode):
    base = Image.fromarray((np.arange(64, dtype=np.uint8).reshape(8, 8) * 4), "L")
    im = base.convert(mode) if mode not in ("I;16", "I", "F") else base
    suffix = ".tiff" if mode in ("CMYK", "I", "F") else ".png"
    if mode == "I;16":
        im = Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040))
    elif mode == "I":
        im = Image.fromarray((np.arange(64, dtype=np.int32).reshape(8, 8) * 1040), "I")
    elif mode == "F":
        im = Image.fromarray((np.arange(64, dtype=np.float32).reshape(8, 8) / 63), "F")
    root = _folder(tmp_path, {f"x{suffix}": im})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_image_folder(root)
    assert ds.images.dtype.is_floating_point is False and ds.images.shape[-2:] == (8, 8)
    if mode in ("I;16", "I"):            # 0 .. 65520: scaled to 0 .. 255, not clipped at 255
        assert int(ds.images.max()) == 255 and 100 < float(ds.images.float().mean()) < 160
    if mode == "F":
        assert int(ds.images.max()) == 255 and int(ds.images.min()) == 0


def test_a_16_bit_ramp_keeps_its_mean(tmp_path):
    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    root = _folder(tmp_path, {"r.png": Image.fromarray(ramp)})
    ds = load_image_folder(root)
    assert abs(float(ds.images.float().mean()) - 127.5) < 1.0      # clipping gave 254


def test_an_image_beside_the_class_folders_is_named_or_skipped(tmp_path):
    root = _folder(tmp_path, {"x.png": Image.new("L", (8, 8), 3)})
    Image.new("L", (8, 8), 5).save(root / "stray.png")
    with pytest.raises(AutonatError, match="stray.png"):
        load_image_folder(root)
    ds = load_image_folder(root, skip_bad=True)
    assert len(ds) == 1 and any(s.endswith("stray.png") for s in ds.skipped)


def test_train_and_test_with_other_classes_are_refused(tmp_path):
    for split, classes in (("train", ("coat", "shoe")), ("test", ("coat", "bag"))):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("L", (8, 8), 1).save(tmp_path / split / c / "0.png")
    for split in ("train", "test"):
        with pytest.raises(AutonatError, match="different classes"):
            load_image_folder(tmp_path, split)


def test_background_spec_is_checked_before_any_work():
    assert parse_background("white") == (255, 255, 255) and parse_background("10,20,30") == (10, 20, 30)
    for bad in ("purple", "#12345", "1,2", "300,0,0"):
        with pytest.raises(AutonatError, match="--background"):
            parse_background(bad)
    from autonat.tokenizer.train import TokenizerTrainConfig
    with pytest.raises(AutonatError, match="--background"):
        TokenizerTrainConfig(background="purple")


def test_no_empty_progress_bar_while_reading_a_folder(tmp_path, capfd):
    from autonat.tokenizer.model import TokenizerConfig
    from autonat.tokenizer.train import TokenizerTrainConfig, train_tokenizer
    root = _folder(tmp_path, {f"{i}.png": Image.new("L", (8, 8), i * 20) for i in range(8)})
    cfg = TokenizerTrainConfig(data=str(root), steps=2, batch_size=4, eval_every=100, eval_samples=4, bf16=False,
                               device="cpu")
    train_tokenizer(TokenizerConfig(base_channels=4, ch_mult=(1, 2), codebook_size=8, codebook_dim=4), cfg,
                    tmp_path / "tok", show_progress=True)
    err = capfd.readouterr().err
    assert "0it [" not in err and "warning: tokenizer train: 2 steps is a smoke test" in err
