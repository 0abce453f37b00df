"""What the dataset builders share: a fresh output directory written in full or not at all."""
from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..io import AutonatError


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A staging directory beside `out` that becomes `out` when the block ends without an error
    (and is removed when it raises): a stopped or failed build leaves no partial folder.
    Refuses an `out` that exists."""
    out = Path(out)
    if out.exists():
        raise AutonatError(f"{out} exists; choose a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield stage
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def write_metadata(folder: Path, rows: list[dict]) -> None:
    """`metadata.jsonl` (Hugging Face imagefolder convention: one JSON object per line)."""
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                          encoding="utf-8")
