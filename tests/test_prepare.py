"""`autonat prepare coco|emoji`: public captioned sets -> captioned folders autonat reads, written
whole or not at all."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
from PIL import Image

from autonat.cli import main
from autonat.data import load_dataset


def _png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgba = np.random.default_rng(seed).integers(0, 255, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(path)


def _coco(tmp_path):
    for split in ("train", "val"):
        for k in range(3):
            _png(tmp_path / split / f"{split}{k}.png", k)
        imgs = [{"id": 10 + k, "file_name": f"{split}{k}.png"} for k in range(3)]
        anns = [{"image_id": 10, "caption": "a cat  on a mat"}, {"image_id": 10, "caption": "cat"},
                {"image_id": 11, "caption": "two dogs"}]          # image 12 has no caption: left out
        (tmp_path / f"cap_{split}.json").write_text(json.dumps({"images": imgs, "annotations": anns}))
        inst = {"images": imgs, "categories": [{"id": 1, "supercategory": "animal"}, {"id": 2, "supercategory": "food"}],
                "annotations": [{"image_id": 10, "category_id": 2, "area": 5.0},
                                {"image_id": 10, "category_id": 1, "area": 50.0}]}
        (tmp_path / f"inst_{split}.json").write_text(json.dumps(inst))
    args = []
    for split, src in (("train", "train"), ("test", "val")):
        args += [f"--{split}-images", str(tmp_path / src), f"--{split}-captions", str(tmp_path / f"cap_{src}.json"),
                 f"--{split}-instances", str(tmp_path / f"inst_{src}.json")]
    return args


def test_coco_writes_every_caption_the_largest_objects_label_and_links(tmp_path, capsys):
    args = _coco(tmp_path)
    out = tmp_path / "coco"
    assert main(["prepare", "coco", "--out", str(out), *args]) == 0
    assert json.loads(capsys.readouterr().out)["train"] == {"images": 2, "captions": 3, "left_out": 1}
    ds = load_dataset(str(out), "test")
    assert ds.captions == [("a cat on a mat", "cat"), ("two dogs",)]
    assert [ds.class_names[i] for i in ds.labels] == ["animal", "none"]
    assert (out / "train" / "train0.png").is_symlink()
    assert main(["prepare", "coco", "--out", str(out), *args]) == 2       # refuses an existing --out


def test_coco_with_a_bad_annotation_file_leaves_no_folder(tmp_path, capsys):
    args = _coco(tmp_path)
    (tmp_path / "cap_val.json").write_text("{not json")
    out = tmp_path / "coco"
    assert main(["prepare", "coco", "--out", str(out), *args]) == 2
    assert "cap_val.json: not a readable COCO annotation file" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".coco")] == []


def _emoji_tarball(path):
    """A miniature of the npm package: emoji.json + img/google/64/*.png, 12 base emoji, one with a tone."""
    entries = []
    for k in range(12):
        e = {"name": f"THING {k}", "short_names": [f"thing_{k}", f"t{k}"], "category": "Objects" if k % 2 else "Food",
             "image": f"{k:04x}.png", "has_img_google": True, "sort_order": k}
        if k == 9:
            e["skin_variations"] = {"1F3FD": {"image": f"{k:04x}-1f3fd.png", "has_img_google": True}}
        entries.append(e)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        def add(name, data):
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        add("emoji.json", json.dumps(entries).encode())
        for e in entries:
            for img in [e["image"], *(v["image"] for v in e.get("skin_variations", {}).values())]:
                b = io.BytesIO()
                Image.new("RGBA", (64, 64), (200, 10, 10, 128)).save(b, format="PNG")
                add(f"img/google/64/{img}", b.getvalue())
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def test_emoji_holds_out_every_tenth_name_with_its_tones(tmp_path):
    from autonat.prepare.emoji import build_emoji
    tgz = tmp_path / "e.tgz"
    digest = _emoji_tarball(tgz)
    res = build_emoji(tmp_path / "emoji", tgz, sha256=digest)
    assert res["images"] == {"train": 11, "test": 2}           # base 9 and its medium-skin-tone variant
    test = load_dataset(str(tmp_path / "emoji"), "test")
    assert sorted(test.captions) == [("thing 9", "t9", "thing 9, objects"),
                             ("thing 9: medium skin tone", "t9: medium skin tone", "thing 9, objects: medium skin tone")]
    assert [test.class_names[i] for i in test.labels] == ["Objects", "Objects"]
    train = load_dataset(str(tmp_path / "emoji"), "train")
    assert not any("thing 9" in c for caps in train.captions for c in caps)   # a held-out name never trains


def test_emoji_refuses_a_tarball_with_another_checksum_and_writes_nothing(tmp_path, capsys):
    tgz = tmp_path / "e.tgz"
    _emoji_tarball(tgz)
    out = tmp_path / "emoji"
    assert main(["prepare", "emoji", str(out), "--tgz", str(tgz)]) == 2
    assert "sha256" in capsys.readouterr().err and not out.exists()
