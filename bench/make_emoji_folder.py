"""A real captioned colour image set, offline: Google's Noto colour emoji from the npm package
`emoji-datasource-google` (64x64 RGBA PNGs; names, short names and categories in emoji.json),
written as a captioned image folder (Hugging Face imagefolder convention) with a held-out split.

    python bench/make_emoji_folder.py data/emoji                 # runs `npm pack` itself
    python bench/make_emoji_folder.py data/emoji --tgz PATH.tgz  # or from a packed tarball

Captions of an emoji: its name ("red apple"), each short name ("apple"), and "<name>, <category>"
("red apple, food & drink"); a skin-tone variant adds the tone ("waving hand: medium skin tone").
Each image's `label` is its category (10 classes; `autonat featnet train` learns them, which gives
the folder its own FID feature space, `fid_emoji`, independent of the text encoder).
Held-out split: every 10th *base* emoji in sort order, with all its skin-tone variants, goes to
`test/`; their names never occur in `train/`, so prompts from `test/` were never seen in training.
The package's 16.0.0 tarball has sha256 checked below (as the Fashion-MNIST loader does).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "emoji-datasource-google@16.0.0"
SHA256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"
TONES = {"1F3FB": "light skin tone", "1F3FC": "medium-light skin tone", "1F3FD": "medium skin tone",
         "1F3FE": "medium-dark skin tone", "1F3FF": "dark skin tone"}


def _captions(entry: dict, tone: str | None) -> list[str]:
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


def build(package: Path, out: Path, holdout_every: int = 10) -> dict:
    data = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    images = package / "img" / "google" / "64"
    rows = {"train": [], "test": []}
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
            rows[split].append({"file_name": image, "text": _captions(e, tone), "label": e["category"]})
    for split, r in rows.items():
        (out / split / "metadata.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in r),
                                                    encoding="utf-8")
    return {s: len(r) for s, r in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--tgz", help="a tarball from `npm pack emoji-datasource-google@16.0.0`")
    ap.add_argument("--sha256", default=SHA256, help="expected sha256 of the tarball (default: 16.0.0's)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new directory")
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(args.tgz) if args.tgz else None
        if tgz is None:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True)
            tgz = next(Path(tmp).glob("emoji-datasource-google-*.tgz"))
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if digest != args.sha256:
            raise SystemExit(f"{tgz}: sha256 {digest}, expected {args.sha256}")
        with tarfile.open(tgz) as t:
            t.extractall(tmp, filter="data")
        counts = build(Path(tmp) / "package", out)
    print(json.dumps({"out": str(out), "images": counts, "tarball_sha256": digest}))


if __name__ == "__main__":
    main()
