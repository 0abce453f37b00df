"""A real captioned colour image set, offline: Google's Noto colour emoji from the npm package
`emoji-datasource-google` (64x64 RGBA PNGs; names, short names and categories in emoji.json),
written as a captioned image folder (Hugging Face imagefolder convention) with a held-out split.

    autonat prepare emoji data/emoji                  # runs `npm pack` itself (needs npm)
    autonat prepare emoji data/emoji --tgz PATH.tgz   # or from a packed tarball

Captions of an emoji: its name ("red apple"), each short name ("apple"), and "<name>, <category>"
("red apple, food & drink"); a skin-tone variant adds the tone ("waving hand: medium skin tone").
Each image's `label` is its category (10 classes; `autonat featnet train` learns them, which gives
the folder its own FID feature space, `fid_emoji`, independent of the text encoder).
Held-out split: every 10th *base* emoji in sort order, with all its skin-tone variants, goes to
`test/`; their names never occur in `train/`, so prompts from `test/` were never seen in training.
The 16.0.0 tarball's sha256 is checked (as the Fashion-MNIST loader checks its download).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..io import AutonatError
from .common import staged_output, write_metadata

PACKAGE = "emoji-datasource-google@16.0.0"
SHA256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"
TONES = {"1F3FB": "light skin tone", "1F3FC": "medium-light skin tone", "1F3FD": "medium skin tone",
         "1F3FE": "medium-dark skin tone", "1F3FF": "dark skin tone"}


def captions(entry: dict, tone: str | None) -> list[str]:
    """The captions of one emoji.json entry (with a skin tone, of that variant)."""
    name = entry["name"].lower()
    category = entry["category"].lower()
    shorts = [s.replace("_", " ") for s in entry.get("short_names", []) if s.replace("_", " ") != name]
    caps = [name, *shorts, f"{name}, {category}"]
    if tone:
        caps = [f"{c}: {tone}" for c in caps]
    return list(dict.fromkeys(caps))


def _tones(key: str) -> str | None:
    parts = [TONES[p] for p in key.split("-") if p in TONES]
    return " and ".join(dict.fromkeys(parts)) or None


def write_folder(package: Path, out: Path, holdout_every: int = 10) -> dict:
    """The unpacked npm package's images and captions -> `out/train`, `out/test`. Returns counts."""
    try:
        data = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AutonatError(f"{package}: no readable emoji.json ({e})") from None
    images = package / "img" / "google" / "64"
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    bases = sorted((e for e in data if e.get("has_img_google")), key=lambda e: e["sort_order"])
    for k, e in enumerate(bases):
        split = "test" if k % holdout_every == holdout_every - 1 else "train"
        variants = [(e["image"], None)] + [(v["image"], _tones(key)) for key, v in
                                           sorted(e.get("skin_variations", {}).items()) if v.get("has_img_google")]
        for image, tone in variants:
            src = images / image
            if not src.is_file():
                continue
            (out / split).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, out / split / image)
            rows[split].append({"file_name": image, "text": captions(e, tone), "label": e["category"]})
    if not rows["train"]:
        raise AutonatError(f"{package}: no emoji images found under img/google/64")
    for split, r in rows.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        write_metadata(out / split, r)
    return {s: len(r) for s, r in rows.items()}


def build_emoji(out: str | Path, tgz: str | Path | None = None, sha256: str = SHA256) -> dict:
    """Pack (or take) the npm tarball, check its sha256, write the folder whole or not at all."""
    with tempfile.TemporaryDirectory() as tmp, staged_output(out) as stage:
        if tgz is None:
            try:
                subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError) as e:
                raise AutonatError(f"`npm pack {PACKAGE}` failed ({e}); pass --tgz with a packed tarball") from None
            tgz = next(Path(tmp).glob("emoji-datasource-google-*.tgz"))
        tgz = Path(tgz)
        if not tgz.is_file():
            raise AutonatError(f"--tgz {tgz}: no such file")
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if digest != sha256:
            raise AutonatError(f"{tgz}: sha256 {digest}, expected {sha256} ({PACKAGE})")
        try:
            with tarfile.open(tgz) as t:
                t.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise AutonatError(f"{tgz}: not a readable tarball ({e})") from None
        counts = write_folder(Path(tmp) / "package", stage)
    return {"out": str(out), "images": counts, "tarball_sha256": digest}
