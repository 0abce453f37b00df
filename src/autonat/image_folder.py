"""Image folders as people have them: `root/<class>/*` (class-conditional) or flat (one class),
split folders `root/train`, `root/test`, captions in `metadata.jsonl` (`autonat.captions`), any
PIL-readable format (transparency composited on a documented background, 16-bit and float images
scaled to 8 bits), resized and centre-cropped to a resolution.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .captions import captions_for, has_captions, label_names, read_captions
from .dataset import ArrayDataset
from .io import AutonatError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

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
    """Load `root/<class>/*` (or a flat folder = one class) resized/center-cropped to `resolution`;
    a folder with a `metadata.jsonl` is captioned instead (`dataset.captions`, sub-folders are
    not classes there).

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
    captioned = has_captions(root)
    # a captioned folder is conditioned on its captions: sub-folders only organise its files
    classes = [] if captioned else _class_dirs(root)
    skipped: list[str] = []
    if captioned:
        classes = ["all"]
        entries = [(p, 0) for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
    elif classes:
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
    captions = read_captions(root, skip_bad) if captioned else None
    images, labels, loaded = [], [], []
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
        loaded.append(path)
    texts = None
    if captions is not None:
        per_file, keep = captions_for(captions, loaded, skip_bad)
        images, loaded = [images[i] for i in keep], [loaded[i] for i in keep]
        texts = [tuple(c.text for c in caps) for caps in per_file]
        skipped += captions.skipped
        if captions.labels:   # `label` column: classes for a feature network, shared by every split
            classes = label_names([root] + [top / s for s in ("train", "test") if top / s != root])
            ids = {c: i for i, c in enumerate(classes)}
            labels = [ids[captions.labels[p.relative_to(root).as_posix()]] for p in loaded]
        else:
            labels = [0] * len(loaded)
    if not images:
        raise AutonatError(f"{root}: no usable image ({len(skipped)} skipped)")
    for i, (path, arr) in enumerate(zip(loaded, images)):
        h.update(str(path.relative_to(root)).encode())
        h.update(arr.tobytes())
        if texts is not None:
            h.update("\x00".join(texts[i]).encode() + b"\x01")
            if captions.labels:
                h.update(classes[labels[i]].encode() + b"\x02")
    return ArrayDataset(images=torch.from_numpy(np.stack(images)),
                        labels=torch.tensor(labels, dtype=torch.int64),
                        class_names=tuple(classes), identity=f"folder:{split}:{h.hexdigest()[:16]}",
                        skipped=skipped, captions=texts)
