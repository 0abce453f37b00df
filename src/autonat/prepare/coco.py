"""MS-COCO captions -> a captioned image folder (Hugging Face `imagefolder` convention), without
copying the images: `OUT/train` and `OUT/test` hold symbolic links to the images of train2014 and
val2014 and a `metadata.jsonl` with every caption of each image (5 per image in MS-COCO) and, as
`label`, the supercategory of the image's largest object when the instances file is given (for a
feature network of one's own; FID-30K uses Inception).

    autonat prepare coco --out data/coco \\
        --train-images coco/train2014 --train-captions coco/annotations/captions_train2014.json \\
        --test-images coco/val2014 --test-captions coco/annotations/captions_val2014.json \\
        [--test-limit 30000]

`--test-limit` keeps the first N val images by id (FID-30K: 30k val captions, one per image).
Images without a caption or without a file are left out and counted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..io import AutonatError
from .common import staged_output, write_metadata


def _read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AutonatError(f"{path}: not a readable COCO annotation file ({e})") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise AutonatError(f"{path}: a COCO annotation file has 'images' and 'annotations'")
    return data


def _labels(instances: Path | None) -> dict[int, str]:
    """image id -> supercategory of its largest annotated object."""
    if instances is None:
        return {}
    data = _read(instances)
    sup = {c["id"]: c["supercategory"] for c in data.get("categories", [])}
    best: dict[int, tuple[float, str]] = {}
    for a in data["annotations"]:
        area = float(a.get("area", 0.0))
        if a["image_id"] not in best or area > best[a["image_id"]][0]:
            best[a["image_id"]] = (area, sup.get(a["category_id"], "other"))
    return {k: v[1] for k, v in best.items()}


def write_split(out: Path, images: Path, captions: Path, instances: Path | None = None,
                limit: int | None = None) -> dict:
    """One split: links to its captioned images and their metadata.jsonl. Returns the counts."""
    if not Path(images).is_dir():
        raise AutonatError(f"{images}: not a directory of COCO images")
    data = _read(captions)
    caps: dict[int, list[str]] = {}
    for a in data["annotations"]:
        caps.setdefault(a["image_id"], []).append(" ".join(str(a["caption"]).split()))
    labels = _labels(instances)
    rows, missing = [], 0
    out.mkdir(parents=True)
    for img in sorted(data["images"], key=lambda x: x["id"]):
        if limit is not None and len(rows) >= limit:
            break
        src = Path(images) / img["file_name"]
        if img["id"] not in caps or not src.is_file():
            missing += 1
            continue
        os.symlink(src.resolve(), out / img["file_name"])
        row = {"file_name": img["file_name"], "text": caps[img["id"]]}
        if labels:
            row["label"] = labels.get(img["id"], "none")
        rows.append(row)
    write_metadata(out, rows)
    return {"images": len(rows), "captions": sum(len(r["text"]) for r in rows), "left_out": missing}


def build_coco(out: str | Path, splits: dict[str, dict], test_limit: int | None = None) -> dict:
    """`splits` = {"train": {images, captions, instances}, "test": {...}}; writes `out` whole or
    not at all. Returns {out, train: counts, test: counts}."""
    if test_limit is not None and test_limit < 1:
        raise AutonatError(f"--test-limit must be >= 1, got {test_limit}")
    report = {}
    with staged_output(out) as stage:
        for split, src in splits.items():
            report[split] = write_split(stage / split, src["images"], src["captions"], src.get("instances"),
                                        test_limit if split == "test" else None)
    return {"out": str(out), **report}
