"""Captioned image folders in the Hugging Face `imagefolder` convention (metadata.jsonl): several
captions per image, split folders, and every kind of bad line named by file and line (or skipped
and counted with --skip-bad)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from autonat.data import load_dataset
from autonat.io import AutonatError


def _images(root, names, size=8):
    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), 20 * i, np.uint8)).save(root / n)


def _meta(root, lines):
    (root / "metadata.jsonl").write_bytes(b"\n".join(
        line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines) + b"\n")


def test_captions_follow_the_images_in_order_with_several_per_image(tmp_path):
    root = tmp_path / "set"
    _images(root, ["b.png", "a.png", "sub/c.png"])
    _meta(root, [{"file_name": "a.png", "text": "a red  apple"}, {"file_name": "b.png", "text": ["cat", "a cat"]},
                 {"file_name": "a.png", "text": "an apple", "other": 3}, {"file_name": "sub/c.png", "text": "dog"}])
    ds = load_dataset(str(root))
    assert len(ds) == 3 and ds.captions == [("a red apple", "an apple"), ("cat", "a cat"), ("dog",)]
    # the images are in the same order as their captions: a.png (0 grey), b.png (20), sub/c.png (40)
    assert ds.images[:, 0, 0, 0].tolist() == [20, 0, 40]


def test_captions_change_the_dataset_identity(tmp_path):
    root = tmp_path / "set"
    _images(root, ["a.png"])
    _meta(root, [{"file_name": "a.png", "text": "one"}])
    first = load_dataset(str(root)).identity
    _meta(root, [{"file_name": "a.png", "text": "two"}])
    assert load_dataset(str(root)).identity != first


def test_split_folders_have_their_own_captions(tmp_path):
    root = tmp_path / "set"
    _images(root / "train", ["a.png"])
    _images(root / "test", ["z.png"])
    _meta(root / "train", [{"file_name": "a.png", "text": "train caption"}])
    _meta(root / "test", [{"file_name": "z.png", "text": "held-out caption"}])
    assert load_dataset(str(root), "test").captions == [("held-out caption",)]
    assert load_dataset(str(root), "train").captions == [("train caption",)]


BAD = [
    (b"\xff\xfe not utf-8", ":2: not UTF-8 text"),
    (b"{not json", ":2: not valid JSON"),
    (b"[1, 2]", ":2: each line must be a JSON object"),
    ({"text": "no file"}, ":2: no 'file_name'"),
    ({"file_name": "b.png"}, ":2: no 'text'"),
    ({"file_name": "b.png", "text": ""}, ":2: empty caption"),
    ({"file_name": "b.png", "text": 5}, ":2: 'text' must be a caption"),
    ({"file_name": "missing.png", "text": "x"}, ":2: file 'missing.png' not found"),
    ({"file_name": "../b.png", "text": "x"}, ":2: file_name '../b.png' must be a path inside"),
]


@pytest.mark.parametrize("line,message", BAD, ids=[m.split(": ", 1)[1][:20] for _, m in BAD])
def test_a_bad_line_is_named_by_file_and_line_or_skipped_and_counted(tmp_path, line, message):
    root = tmp_path / "set"
    _images(root, ["a.png", "b.png"])
    _meta(root, [{"file_name": "a.png", "text": "fine"}, line, {"file_name": "b.png", "text": "also fine"}])
    with pytest.raises(AutonatError, match="metadata.jsonl" + message):
        load_dataset(str(root))
    ds = load_dataset(str(root), skip_bad=True)
    assert ds.captions == [("fine",), ("also fine",)] and len(ds.skipped) == 1


def test_an_image_without_a_caption_is_an_error_or_left_out(tmp_path):
    root = tmp_path / "set"
    _images(root, ["a.png", "b.png"])
    _meta(root, [{"file_name": "a.png", "text": "only a"}])
    with pytest.raises(AutonatError, match=r"b.png: no caption in .*metadata.jsonl"):
        load_dataset(str(root))
    ds = load_dataset(str(root), skip_bad=True)
    assert len(ds) == 1 and ds.captions == [("only a",)] and any("b.png" in s for s in ds.skipped)


def test_a_folder_without_metadata_has_no_captions(tmp_path):
    root = tmp_path / "set"
    _images(root, ["a.png"])
    assert load_dataset(str(root)).captions is None


def test_a_label_column_gives_classes_shared_by_the_splits(tmp_path):
    """`label` (e.g. an emoji's category) -> class ids by sorted name over every split; the label is
    part of the identity; a folder mixing labelled and unlabelled lines is refused by line."""
    root = tmp_path / "set"
    _images(root / "train", ["a.png", "b.png", "c.png"])
    _images(root / "test", ["z.png"])
    _meta(root / "train", [{"file_name": "a.png", "text": "apple", "label": "food"},
                           {"file_name": "b.png", "text": "cat", "label": "animal"},
                           {"file_name": "c.png", "text": "pear", "label": "food"}])
    _meta(root / "test", [{"file_name": "z.png", "text": "zebra", "label": "zoo"}])
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert train.class_names == test.class_names == ("animal", "food", "zoo")
    assert train.labels.tolist() == [1, 0, 1] and test.labels.tolist() == [2]
    first = train.identity
    _meta(root / "train", [{"file_name": "a.png", "text": "apple", "label": "fruit"},
                           {"file_name": "b.png", "text": "cat", "label": "animal"},
                           {"file_name": "c.png", "text": "pear", "label": "food"}])
    assert load_dataset(str(root), "train").identity != first
    _meta(root / "train", [{"file_name": "a.png", "text": "apple", "label": "food"},
                           {"file_name": "b.png", "text": "cat"}, {"file_name": "c.png", "text": "pear"}])
    with pytest.raises(AutonatError, match=r"metadata.jsonl:2: no 'label' although earlier lines have one"):
        load_dataset(str(root), "train")
    _meta(root / "train", [{"file_name": "a.png", "text": "apple", "label": 3}])
    with pytest.raises(AutonatError, match=r":1: 'label' must be a non-empty string"):
        load_dataset(str(root), "train")
    unlabelled = tmp_path / "plain"
    _images(unlabelled, ["a.png"])
    _meta(unlabelled, [{"file_name": "a.png", "text": "apple"}])
    assert load_dataset(str(unlabelled)).class_names == ("all",)


def test_featnet_learns_the_labels_of_a_captioned_folder_and_refuses_one_without(tmp_path):
    from autonat.metrics.featnet_train import FeatureNetTrainConfig, train_featnet
    root = tmp_path / "set"
    names = [f"{k}.png" for k in range(16)]
    root.mkdir()
    for k, n in enumerate(names):      # two classes: dark and bright images
        Image.fromarray(np.full((8, 8, 3), 30 if k % 2 else 220, np.uint8)).save(root / n)
    _meta(root, [{"file_name": n, "text": f"image {k}"} for k, n in enumerate(names)])
    cfg = FeatureNetTrainConfig(data=str(root), epochs=1, batch_size=4, metric="toy")
    with pytest.raises(AutonatError, match="a 'label' on every line"):
        train_featnet(cfg, tmp_path / "f0", show_progress=False)
    assert not (tmp_path / "f0").exists()
    _meta(root, [{"file_name": n, "text": f"image {k}", "label": "dark" if k % 2 else "bright"}
                 for k, n in enumerate(names)])
    res = train_featnet(cfg, tmp_path / "f", show_progress=False)
    assert res["metric"] == "toy"
    saved = json.loads((tmp_path / "f" / "config.json").read_text())
    assert saved["num_classes"] == 2 and saved["metric"] == "toy" and saved["in_channels"] == 3
