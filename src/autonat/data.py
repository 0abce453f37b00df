"""Image datasets: Fashion-MNIST IDX files (Debian package, explicit path or verified download)
and image folders. Every dataset yields `(uint8 tensor [C, H, W], int label)`.

Data sources are named by a string so the CLI and configs can carry them:
  * ``fashion-mnist``            - IDX files found in the standard places (see `find_fashion_mnist`)
  * a directory with IDX files   - ``train-images-idx3-ubyte[.gz]`` etc. (any MNIST-format data)
  * a directory of images        - ``root/<class>/*.png`` (class-conditional) or flat (one class);
                                   if ``root/<split>/`` exists it is used for that split; with a
                                   ``metadata.jsonl`` the images are captioned (`autonat.captions`).
The image-folder reader lives in `image_folder.py`, the dataset type in `dataset.py`.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .dataset import ArrayDataset, to_float, to_uint8
from .image_folder import DEFAULT_BACKGROUND, load_image_folder, parse_background
from .io import AutonatError

# the names other modules import from here (the front door of every data source)
__all__ = ["ArrayDataset", "DEFAULT_BACKGROUND", "load_dataset", "load_image_folder", "parse_background",
           "to_float", "to_uint8", "has_split", "find_fashion_mnist", "download_fashion_mnist",
           "load_idx_dataset", "default_cache_dir", "FASHION_MNIST_CLASSES", "FASHION_MNIST_SHA256"]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# sha256 of the *decompressed* IDX payloads. Mirrors differ in gzip headers: Debian's package drops
# the stored file name (each of its .gz files is exactly len(name)+1 bytes shorter than zalando's,
# whose MD5s torchvision lists), so its .gz bytes differ while the payload is the same bytes.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("AUTONAT_CACHE", Path.home() / ".cache" / "autonat"))


# ----------------------------------------------------------------------------------------------
# IDX files (Fashion-MNIST and any MNIST-format data)
# ----------------------------------------------------------------------------------------------

def _read_idx(raw: bytes, path: Path, expect_dims: int) -> np.ndarray:
    if len(raw) < 4:
        raise AutonatError(f"{path}: truncated IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim != expect_dims:
        raise AutonatError(f"{path}: not a uint8 IDX file with {expect_dims} dims "
                           f"(magic {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AutonatError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    need = int(np.prod(dims))
    if len(raw) - header != need:
        raise AutonatError(f"{path}: IDX payload has {len(raw) - header} bytes, header says {need} "
                           f"(truncated or corrupt file)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_maybe_gz(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise AutonatError(f"{path}: unreadable or corrupt file ({e})") from None


def _find_idx(root: Path, stem: str) -> Path | None:
    for cand in (root / (stem + ".gz"), root / stem, root / stem.replace("-idx", ".idx")):
        if cand.is_file():
            return cand
    return None


def is_idx_dir(root: Path) -> bool:
    return root.is_dir() and any(_find_idx(root, s) for pair in IDX_FILES.values() for s in pair)


def find_fashion_mnist() -> Path | None:
    """Where Fashion-MNIST is found without being told: $AUTONAT_FASHION_MNIST, Debian's package
    directory, then a previous `--download` into the cache."""
    candidates = [os.environ.get("AUTONAT_FASHION_MNIST"), DEBIAN_FASHION_MNIST,
                  default_cache_dir() / "fashion-mnist"]
    for c in candidates:
        if c and is_idx_dir(Path(c)):
            return Path(c)
    return None


def load_idx_dataset(root: str | os.PathLike, split: str, verify: bool = False) -> ArrayDataset:
    """Load an MNIST-format split (`train` or `test`) from a directory of IDX (.gz) files.

    `verify=True` checks both payloads against Fashion-MNIST's sha256 (used when the source is
    named `fashion-mnist`); other MNIST-format data loads unverified with numeric class names.
    """
    root = Path(root)
    if split not in IDX_FILES:
        raise AutonatError(f"unknown split {split!r} for IDX data; use one of {sorted(IDX_FILES)}")
    img_stem, lab_stem = IDX_FILES[split]
    img_path, lab_path = _find_idx(root, img_stem), _find_idx(root, lab_stem)
    if img_path is None or lab_path is None:
        raise AutonatError(f"{root}: missing {img_stem}[.gz] or {lab_stem}[.gz] for split {split!r}")
    img_raw, lab_raw = _read_maybe_gz(img_path), _read_maybe_gz(lab_path)
    digest = hashlib.sha256(img_raw).hexdigest()
    if verify:
        for stem, raw, p in ((img_stem, img_raw, img_path), (lab_stem, lab_raw, lab_path)):
            if hashlib.sha256(raw).hexdigest() != FASHION_MNIST_SHA256[stem]:
                raise AutonatError(f"{p}: sha256 of the payload does not match Fashion-MNIST's")
    images = _read_idx(img_raw, img_path, 3)
    labels = _read_idx(lab_raw, lab_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise AutonatError(f"{root}: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise AutonatError(f"{img_path}: holds no images")
    fmnist = digest == FASHION_MNIST_SHA256[img_stem]
    n_cls = _idx_num_classes(root, labels if split == "train" else None)
    if int(labels.max()) >= n_cls:
        raise AutonatError(f"{lab_path}: label {int(labels.max())} is outside the {n_cls} classes of the "
                           f"train split (labels must be 0..{n_cls - 1})")
    names = FASHION_MNIST_CLASSES if fmnist else tuple(str(i) for i in range(n_cls))
    return ArrayDataset(images=torch.from_numpy(images.copy()).unsqueeze(1),
                        labels=torch.from_numpy(labels.astype(np.int64)),
                        class_names=names, identity=f"idx:{split}:{digest[:16]}")


def _idx_num_classes(root: Path, train_labels: np.ndarray | None) -> int:
    """The number of classes of an IDX directory: those of its train labels, which must use every
    id 0..C-1 (a gap means a corrupt or mislabelled file, not a class with no examples)."""
    if train_labels is None:
        path = _find_idx(root, IDX_FILES["train"][1])
        if path is None:
            raise AutonatError(f"{root}: no train labels ({IDX_FILES['train'][1]}[.gz]) to define the classes")
        train_labels = _read_idx(_read_maybe_gz(path), path, 1)
    present = np.unique(train_labels)
    n = int(present.max()) + 1 if present.size else 0
    if present.size != n:
        gaps = sorted(set(range(n)) - set(present.tolist()))[:10]
        raise AutonatError(f"{root}: train labels never use class id(s) {gaps} below the largest id {n - 1}; "
                           f"IDX labels must be the ids 0..C-1 of C classes")
    return n


def download_fashion_mnist(dest: str | os.PathLike | None = None, base_url: str = FASHION_MNIST_URL,
                           progress: bool = True) -> Path:
    """Download the four Fashion-MNIST files, verify each payload's sha256, then move them into
    `dest`. A mismatch (or any failure) raises and leaves nothing behind in `dest`."""
    dest = Path(dest) if dest is not None else default_cache_dir() / "fashion-mnist"
    dest.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    try:
        for stem, want in FASHION_MNIST_SHA256.items():
            target = dest / (stem + ".gz")
            if target.is_file() and hashlib.sha256(_read_maybe_gz(target)).hexdigest() == want:
                continue
            url = base_url + stem + ".gz"
            if progress:
                print(f"downloading {url}", flush=True)
            tmp = stage / (stem + ".gz")
            try:
                with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as e:
                raise AutonatError(f"download of {url} failed: {e}") from None
            got = hashlib.sha256(_read_maybe_gz(tmp)).hexdigest()
            if got != want:
                raise AutonatError(f"checksum mismatch for {url}: sha256 {got}, expected {want}; "
                                   f"nothing was saved")
        for f in stage.iterdir():
            os.replace(f, dest / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest


# ----------------------------------------------------------------------------------------------
# Front door
# ----------------------------------------------------------------------------------------------

def load_dataset(source: str = "fashion-mnist", split: str = "train", *, resolution: int | None = None,
                 channels: int | None = None, download: bool = False, skip_bad: bool = False,
                 background: str = DEFAULT_BACKGROUND) -> ArrayDataset:
    """Open a dataset by name or path (see module docstring)."""
    if source in ("fashion-mnist", "fmnist"):
        root = find_fashion_mnist()
        if root is None:
            if not download:
                raise AutonatError(
                    "Fashion-MNIST not found. Install Debian's package (apt-get install "
                    "dataset-fashion-mnist), pass --data PATH to a directory with the IDX files, "
                    "or pass --download to fetch it from the official source (sha256-verified).")
            root = download_fashion_mnist()
        ds = load_idx_dataset(root, split, verify=True)
    else:
        path = Path(source)
        if not path.exists():
            raise AutonatError(f"data source {source!r} is neither 'fashion-mnist' nor an existing path")
        if is_idx_dir(path):
            ds = load_idx_dataset(path, split)
        else:
            return load_image_folder(path, split, resolution, channels, skip_bad, background)
    if channels not in (None, 1):
        ds.images = ds.images.expand(-1, channels, -1, -1).contiguous()
    if resolution is not None and resolution != ds.images.shape[-1]:
        x = torch.nn.functional.interpolate(ds.images.float(), size=(resolution, resolution),
                                            mode="bilinear", antialias=True, align_corners=False)
        ds.images = x.round().clamp(0, 255).to(torch.uint8)
    return ds


def has_split(source: str, split: str) -> bool:
    """Whether a data source has this split (Fashion-MNIST and IDX directories: train and test;
    an image folder: a `split/` sub-folder, or `train` = the folder itself)."""
    if source in ("fashion-mnist", "fmnist"):
        return split in IDX_FILES
    path = Path(source)
    if is_idx_dir(path):
        return split in IDX_FILES and _find_idx(path, IDX_FILES[split][0]) is not None
    return (path / split).is_dir() or split == "train"


