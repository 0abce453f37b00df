"""MS-COCO captions -> a captioned image folder autonat reads (Hugging Face `imagefolder`
convention), without copying the images: `OUT/train` and `OUT/test` hold symbolic links to the
images of train2014 and val2014 and a `metadata.jsonl` with every caption of each image (5 per
image in MS-COCO) and, as `label`, the supercategory of the image's largest object when the
instances file is given (for a feature network of one's own; FID-30K uses Inception).

    python bench/make_coco_folder.py --out data/coco \\
        --train-images coco/train2014 --train-captions coco/annotations/captions_train2014.json \\
        --test-images coco/val2014 --test-captions coco/annotations/captions_val2014.json \\
        [--test-limit 30000]

`--test-limit` keeps the first N val images by id (FID-30K: 30k val captions, one per image).
Images without a caption are left out and counted. Refuses an existing --out.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: not a readable COCO annotation file ({e})")
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise SystemExit(f"{path}: a COCO annotation file has 'images' and 'annotations'")
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
    data = _read(captions)
    caps: dict[int, list[str]] = {}
    for a in data["annotations"]:
        caps.setdefault(a["image_id"], []).append(" ".join(str(a["caption"]).split()))
    labels = _labels(instances)
    rows, missing = [], 0
    for img in sorted(data["images"], key=lambda x: x["id"]):
        if limit is not None and len(rows) >= limit:
            break
        src = images / img["file_name"]
        if img["id"] not in caps or not src.is_file():
            missing += 1
            continue
        os.symlink(src.resolve(), out / img["file_name"])
        row = {"file_name": img["file_name"], "text": caps[img["id"]]}
        if labels:
            row["label"] = labels.get(img["id"], "none")
        rows.append(row)
    (out / "metadata.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                        encoding="utf-8")
    return {"images": len(rows), "captions": sum(len(r["text"]) for r in rows), "left_out": missing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    for split in ("train", "test"):
        ap.add_argument(f"--{split}-images", required=True, type=Path)
        ap.add_argument(f"--{split}-captions", required=True, type=Path)
        ap.add_argument(f"--{split}-instances", type=Path, help="instances_*.json (optional: a label per image)")
    ap.add_argument("--test-limit", type=int, default=None)
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new directory")
    report = {}
    for split in ("train", "test"):
        (out / split).mkdir(parents=True)
        report[split] = write_split(out / split, getattr(args, f"{split}_images"), getattr(args, f"{split}_captions"),
                                    getattr(args, f"{split}_instances"), args.test_limit if split == "test" else None)
    print(json.dumps({"out": str(out), **report}))


if __name__ == "__main__":
    main()
