"""A small real dataset that is not Fashion-MNIST, as an image folder, to try the own-data path:
scikit-learn's handwritten digits (1797 images of 8x8, 16 grey levels, 10 classes), upscaled to
16 x 16 (bicubic) and written as root/<digit>/<index>.png. Needs `pip install scikit-learn`.

    python bench/make_digits_folder.py data/digits
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(root: str) -> None:
    from sklearn.datasets import load_digits    # bundled with scikit-learn: no download
    d = load_digits()
    out = Path(root)
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new directory")
    for i, (img, label) in enumerate(zip(d.images, d.target)):
        (out / str(label)).mkdir(parents=True, exist_ok=True)
        arr = (np.asarray(img) * (255.0 / 16.0)).round().astype(np.uint8)
        Image.fromarray(arr, mode="L").resize((16, 16), Image.BICUBIC).save(out / str(label) / f"{i:04d}.png")
    print(f"wrote {len(d.images)} images in {len(set(d.target))} class folders to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/digits")
