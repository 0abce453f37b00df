"""Captions of an image folder, in the Hugging Face `imagefolder` convention.

`metadata.jsonl` lies beside the images (in the folder, or in each split folder `train/`, `test/`):
one JSON object per line with `file_name` (the image's path relative to that folder) and `text`
(its caption). An image may have several captions, as in MS-COCO: several lines with the same
`file_name`, or `text` given as a list of strings. Every image of a captioned folder needs at
least one caption. An optional `label` (a string, e.g. MS-COCO's supercategory or an emoji's
category) gives the image a class for training a feature network on the folder (`autonat featnet
train`); either every line of a folder has one or none does. Other keys are ignored.

A bad line (not UTF-8, not a JSON object, no `file_name`, no or empty `text`, a file that does not
exist) is an error naming the file and the line; with `skip_bad` it is skipped and counted
instead (`Captions.skipped`), and so is an image without a caption.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from .io import AutonatError

METADATA = "metadata.jsonl"


@dataclass(frozen=True)
class Caption:
    text: str
    line: int          # 1-based line of metadata.jsonl it came from (for messages)


@dataclass
class Captions:
    """Captions by image path (relative to `root`, POSIX spelling) and what was skipped."""
    root: Path
    by_file: dict[str, list[Caption]]
    skipped: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)   # image path -> its `label` (if the folder has them)

    @property
    def source(self) -> Path:
        return self.root / METADATA

    def where(self, caption: Caption) -> str:
        return f"{self.source}:{caption.line}"


def pick(captions: Sequence[str], u: float) -> str:
    """Caption number floor(u * count) of one image's captions (u uniform in [0, 1))."""
    return captions[min(int(u * len(captions)), len(captions) - 1)]


def has_captions(folder: str | Path) -> bool:
    return (Path(folder) / METADATA).is_file()


def _texts(value, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(t, str) for t in items):
        raise AutonatError(f"{where}: 'text' must be a caption or a list of captions, got {value!r}")
    if any(not t.strip() for t in items):
        raise AutonatError(f"{where}: empty caption")
    return [" ".join(t.split()) for t in items]


def read_captions(folder: str | Path, skip_bad: bool = False) -> Captions:
    """The captions of `folder`/metadata.jsonl (see module docstring)."""
    root = Path(folder)
    path = root / METADATA
    if not path.is_file():
        raise AutonatError(f"{root}: no {METADATA} (one JSON object per line with file_name and text)")
    out = Captions(root, {})
    labelled: bool | None = None      # decided by the first good line
    raw = path.read_bytes()
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise AutonatError(f"{where}: not UTF-8 text") from None
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise AutonatError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise AutonatError(f"{where}: each line must be a JSON object with file_name and text")
            name = obj.get("file_name")
            if not isinstance(name, str) or not name.strip():
                raise AutonatError(f"{where}: no 'file_name'")
            if "text" not in obj:
                raise AutonatError(f"{where}: no 'text' (the caption of {name})")
            rel = PurePosixPath(name.replace("\\", "/"))
            if rel.is_absolute() or ".." in rel.parts:
                raise AutonatError(f"{where}: file_name {name!r} must be a path inside {root}")
            if not (root / rel).is_file():
                raise AutonatError(f"{where}: file {name!r} not found in {root}")
            texts = _texts(obj["text"], where)
            label = obj.get("label")
            if label is not None and (not isinstance(label, str) or not label.strip()):
                raise AutonatError(f"{where}: 'label' must be a non-empty string, got {label!r}")
            if labelled is not None and (label is not None) != labelled:
                raise AutonatError(f"{where}: " + ("no 'label' although earlier lines have one" if labelled
                                                   else "a 'label' although earlier lines have none")
                                   + " (give every line a label, or none)")
            if label is not None and out.labels.get(str(rel), label) != label:
                raise AutonatError(f"{where}: label {label!r} differs from {name}'s earlier label "
                                   f"{out.labels[str(rel)]!r}")
        except AutonatError as e:
            if not skip_bad:
                raise AutonatError(f"{e} (pass --skip-bad to skip bad caption lines)") from None
            out.skipped.append(str(e))
            continue
        out.by_file.setdefault(str(rel), []).extend(Caption(t, number) for t in texts)
        labelled = label is not None
        if label is not None:
            out.labels[str(rel)] = label.strip()
    if not out.by_file:
        raise AutonatError(f"{path}: no usable captions" + (f" ({len(out.skipped)} bad lines skipped)"
                                                           if out.skipped else ""))
    return out


def label_names(roots: Sequence[str | Path]) -> list[str]:
    """The sorted `label` values over the metadata of `roots` (every split, so that a class id
    means the same class in train and test); empty when the folders have no labels."""
    names: set[str] = set()
    for r in roots:
        if has_captions(r):
            names |= set(read_captions(r, skip_bad=True).labels.values())
    return sorted(names)


def captions_for(captions: Captions, files: list[Path], skip_bad: bool = False
                 ) -> tuple[list[list[Caption]], list[int]]:
    """The captions of each image in `files` and the indices of the images that have some; an
    image without a caption is an error unless `skip_bad` (then it is left out and counted)."""
    per_file, keep = [], []
    for i, f in enumerate(files):
        rel = f.relative_to(captions.root).as_posix()
        caps = captions.by_file.get(rel)
        if not caps:
            if not skip_bad:
                raise AutonatError(f"{f}: no caption in {captions.source} (every image of a captioned "
                                   "folder needs one; pass --skip-bad to leave such images out)")
            captions.skipped.append(f"{f}: no caption")
            continue
        per_file.append(caps)
        keep.append(i)
    return per_file, keep
