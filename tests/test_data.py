"""Data layer: IDX files, image folders, bad files, verified download."""
from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from autonat.data import (FASHION_MNIST_SHA256, download_fashion_mnist, load_dataset, load_idx_dataset,
                          load_image_folder)
from autonat.io import AutonatError


def _write_idx(path, arr: np.ndarray, gz: bool = True):
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _mnist_dir(tmp_path, n=12, gz=True):
    imgs = np.random.default_rng(0).integers(0, 256, (n, 28, 28))
    labels = np.arange(n) % 3
    _write_idx(tmp_path / "train-images-idx3-ubyte", imgs, gz)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels, gz)
    return imgs, labels


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    imgs, labels = _mnist_dir(tmp_path, gz=gz)
    ds = load_dataset(str(tmp_path), "train")
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:, 0].numpy(), imgs)
    assert ds.labels.tolist() == labels.tolist()
    assert ds.class_names == ("0", "1", "2")


def test_truncated_idx_names_the_file(tmp_path):
    _mnist_dir(tmp_path, gz=False)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(AutonatError, match="train-images-idx3-ubyte.*truncated"):
        load_dataset(str(tmp_path), "train")


def test_corrupt_gzip_names_the_file(tmp_path):
    _mnist_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(AutonatError, match="train-images-idx3-ubyte.gz"):
        load_dataset(str(tmp_path), "train")


def test_missing_split(tmp_path):
    _mnist_dir(tmp_path)
    with pytest.raises(AutonatError, match="t10k"):
        load_idx_dataset(tmp_path, "test")


def _folder(tmp_path, bad=False):
    for c, color in (("cat", 50), ("dog", 200)):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("RGB", (40 + i, 30), (color, color, color)).save(tmp_path / c / f"{i}.png")
    if bad:
        (tmp_path / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")
    return tmp_path


def test_image_folder_classes_and_resize(tmp_path):
    ds = load_image_folder(_folder(tmp_path), resolution=16, channels=1)
    assert ds.images.shape == (6, 1, 16, 16)
    assert ds.class_names == ("cat", "dog")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(ds.images[0].float().mean()) == 50


def test_image_folder_flat_is_one_class(tmp_path):
    for i in range(2):
        Image.new("L", (8, 8), 10 * i).save(tmp_path / f"{i}.png")
    ds = load_image_folder(tmp_path, channels=3)
    assert ds.images.shape == (2, 3, 8, 8) and ds.class_names == ("all",)


def test_corrupt_image_error_or_skip(tmp_path):
    root = _folder(tmp_path, bad=True)
    with pytest.raises(AutonatError, match="broken.jpg"):
        load_image_folder(root, resolution=16)
    ds = load_image_folder(root, resolution=16, skip_bad=True)
    assert len(ds) == 6 and len(ds.skipped) == 1 and ds.skipped[0].endswith("broken.jpg")


def test_mixed_sizes_need_resolution(tmp_path):
    with pytest.raises(AutonatError, match="--resolution"):
        load_image_folder(_folder(tmp_path))


def test_unknown_source():
    with pytest.raises(AutonatError, match="neither"):
        load_dataset("/no/such/place", "train")


def test_fashion_mnist_loads_verified(fmnist_root):
    ds = load_dataset("fashion-mnist", "test")
    assert ds.images.shape == (10000, 1, 28, 28) and ds.num_classes == 10
    assert ds.class_names[0] == "T-shirt/top"
    assert torch.bincount(ds.labels).tolist() == [1000] * 10


def test_download_verifies_and_leaves_nothing_on_mismatch(tmp_path, fmnist_root):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for stem in FASHION_MNIST_SHA256:
        shutil.copy(fmnist_root / f"{stem}.gz", mirror / f"{stem}.gz")
    dest = download_fashion_mnist(tmp_path / "ok", base_url=mirror.as_uri() + "/", progress=False)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in FASHION_MNIST_SHA256)
    # a tampered mirror: checksum error, and nothing is left in the destination
    with gzip.open(mirror / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    bad_dest = tmp_path / "bad"
    with pytest.raises(AutonatError, match="checksum mismatch"):
        download_fashion_mnist(bad_dest, base_url=mirror.as_uri() + "/", progress=False)
    assert list(bad_dest.iterdir()) == []
