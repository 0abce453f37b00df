"""The one place the diffusion peer's learning rate and guidance are chosen: the (model, w) with
the best n = 2000 FID among run_all.sh's evaluations (lr-choice.jsonl, guidance.jsonl).

    python bench/diffusion/choice.py runs/diffusion [--tag unet-v]   # prints: MODEL_DIR W
"""
from __future__ import annotations

import argparse
from pathlib import Path

from autonat.io import AutonatError
from autonat.jobs import JsonlLog


def choose(runs: str | Path = "runs/diffusion", tag: str = "", model: str | None = None) -> tuple[str, float]:
    """(model dir, guidance w): the best model (of `tag`'s runs, or `model` as given), then its best w."""
    runs = Path(runs)
    rows = [r for f in ("lr-choice.jsonl", "guidance.jsonl") for r in JsonlLog(runs / f, enabled=False).records()]
    if model is None:
        cands = [r for r in rows if f"/{tag}" in r["model"]] if tag else rows
        if not cands:
            raise AutonatError(f"no evaluations of diffusion runs{' ' + tag if tag else ''} in {runs}/lr-choice.jsonl; "
                               f"run bash bench/diffusion/run_all.sh first")
        model = min(cands, key=lambda r: r["fid"])["model"]
    mine = [r for r in rows if r["model"] == model]
    return model, (min(mine, key=lambda r: r["fid"])["guidance"] if mine else 2.0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    m, w = choose(a.runs, a.tag)
    print(m, w)
