"""Image datasets: Fashion-MNIST IDX files (Debian package, explicit path or verified download)
and image folders. Every dataset yields `(uint8 tensor [C, H, W], int label)`.

Data sources are named by a string so the CLI and configs can carry them:
  * ``fashion-mnist``            - IDX files found in the standard places (see `find_fashion_mnist`)
  * a directory with IDX files   - ``train-images-idx3-ubyte[.gz]`` etc. (any MNIST-format data)
  * a directory of images        - ``root/<class>/*.png`` (class-conditional) or flat (one class);
                                   if ``root/<split>/`` exists it is used for that split.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .io import AutonatError

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
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def default_cache_dir() -> Path:
    return Path(os.environ.get("AUTONAT_CACHE", Path.home() / ".cache" / "autonat"))


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------

@dataclass
class ArrayDataset(torch.utils.data.Dataset):
    """Images held in memory as uint8 [N, C, H, W] with int64 labels."""
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    identity: str = ""
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


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
# Image folders
# ----------------------------------------------------------------------------------------------

DEFAULT_BACKGROUND = "white"
_NAMED_COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}


def parse_background(spec: str) -> tuple[int, int, int]:
    """The colour transparent pixels are composited on: white, black, gray, #RRGGBB or R,G,B."""
    t = str(spec).strip().lower()
    if t in _NAMED_COLOURS:
        return _NAMED_COLOURS[t]
    try:
        if t.startswith("#") and len(t) == 7:
            rgb = tuple(int(t[i:i + 2], 16) for i in (1, 3, 5))
        else:
            rgb = tuple(int(v) for v in t.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise AutonatError(f"background (--background) {spec!r}: use white, black, gray, #RRGGBB or R,G,B "
                           f"with values 0..255")
    return rgb


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey images scaled to 8 bits (0..65535 -> 0..255), not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / 257.0 if img.mode.startswith("I;16") or arr.max() > 255 else arr
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr * 255.0 if arr.max() <= 1.0 else arr
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")
    return img


def _flatten(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB (or L) with transparency composited on `background` (RGBA, LA, PA, palette or grey/RGB
    with a transparent colour key); opaque images unchanged."""
    transparent = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not transparent:
        return img
    with warnings.catch_warnings():           # PIL warns about palette transparency it converts
        warnings.simplefilter("ignore")
        rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _fit(img: Image.Image, resolution: int | None, channels: int,
         background: tuple[int, int, int] = _NAMED_COLOURS[DEFAULT_BACKGROUND]) -> np.ndarray:
    img = _flatten(_eight_bit(img), background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = img.convert("L" if channels == 1 else "RGB")
    if resolution is not None:
        w, h = img.size
        scale = resolution / min(w, h)
        if scale != 1:
            img = img.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))),
                             Image.BICUBIC)
        w, h = img.size
        left, top = (w - resolution) // 2, (h - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _detect_channels(paths: list[Path]) -> int:
    """1 if every (readable) image is grayscale, else 3 (headers only; unreadable files are
    reported when they are loaded)."""
    for path in paths:
        try:
            with Image.open(path) as im:
                if im.mode not in GRAY_MODES:
                    return 3
        except Exception:   # noqa: BLE001 - the loading pass names the bad file
            continue
    return 1


def _class_dirs(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_image_folder(root: str | os.PathLike, split: str = "train", resolution: int | None = None,
                      channels: int | None = None, skip_bad: bool = False,
                      background: str = DEFAULT_BACKGROUND) -> ArrayDataset:
    """Load `root/<class>/*` (or a flat folder = one class) resized/center-cropped to `resolution`.

    Class ids follow sorted class-directory names; `root/train` and `root/test` must hold the same
    classes. `channels` None = 1 if every image is grayscale, else 3. Transparent pixels are
    composited on `background` (default white); 16-bit images are scaled to 8 bits. A file that
    cannot be decoded, or an image lying beside the class folders, raises an error naming it,
    unless `skip_bad`, in which case it is skipped and listed in `dataset.skipped`.
    """
    root = Path(root)
    bg = parse_background(background)
    if not root.is_dir():
        raise AutonatError(f"data directory not found: {root}")
    top = root
    if (root / split).is_dir():
        root = root / split
        others = [s for s in ("train", "test") if s != split and (top / s).is_dir()]
        for other in others:
            if _class_dirs(top / other) != _class_dirs(root):
                raise AutonatError(f"{top}: {split}/ and {other}/ hold different classes ({_class_dirs(root)} vs "
                                   f"{_class_dirs(top / other)}); both splits need the same class folders")
    elif split != "train":
        raise AutonatError(f"{root}: no '{split}' subdirectory for split {split!r}")
    classes = _class_dirs(root)
    skipped: list[str] = []
    if classes:
        entries = [(p, ci) for ci, c in enumerate(classes) for p in sorted((root / c).rglob("*"))
                   if p.suffix.lower() in IMAGE_EXTENSIONS]
        empty = [c for ci, c in enumerate(classes) if not any(e[1] == ci for e in entries)]
        if empty:
            raise AutonatError(f"{root}: class folder(s) {empty} hold no images ({', '.join(IMAGE_EXTENSIONS)}); "
                               f"remove them or add images (every sub-folder is a class)")
        stray = [p for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if stray and not skip_bad:
            raise AutonatError(f"{stray[0]}: an image beside the class folders of {root} belongs to no class "
                               f"({len(stray)} such file(s)); move it into a class folder, or pass --skip-bad")
        skipped += [str(p) for p in stray]
    else:
        classes = ["all"]
        entries = [(p, 0) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not entries:
        raise AutonatError(f"{root}: no images with extensions {IMAGE_EXTENSIONS}")
    if channels is None:
        channels = _detect_channels([p for p, _ in entries])
    images, labels = [], []
    h = hashlib.sha256(f"{resolution}:{channels}:{bg}".encode())
    for path, label in entries:
        try:
            with Image.open(path) as im:
                im.load()
                arr = _fit(im, resolution, channels, bg)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
            if skip_bad:
                skipped.append(str(path))
                continue
            raise AutonatError(f"cannot read image {path}: {e} "
                               f"(pass --skip-bad to skip unreadable files)") from None
        if images and arr.shape != images[0].shape:
            raise AutonatError(f"{path}: size {arr.shape[1:]} differs from {images[0].shape[1:]}; "
                               f"set a --resolution to resize all images")
        images.append(arr)
        labels.append(label)
        h.update(str(path.relative_to(root)).encode())
        h.update(arr.tobytes())
    if not images:
        raise AutonatError(f"{root}: every image was unreadable ({len(skipped)} skipped)")
    return ArrayDataset(images=torch.from_numpy(np.stack(images)),
                        labels=torch.tensor(labels, dtype=torch.int64),
                        class_names=tuple(classes), identity=f"folder:{split}:{h.hexdigest()[:16]}",
                        skipped=skipped)


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


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 (rounded, clamped)."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)
