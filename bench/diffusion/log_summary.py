"""Summarise a diffusion training log (train.py's OUT/log.jsonl): wall-clock, throughput, threads.

    python bench/diffusion/log_summary.py runs/diffusion/unet-v-lr1e-3

The log is autonat's trainer log: a resumed run has dropped the lines after its checkpoint, so
every step appears once.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from autonat.jobs import JsonlLog


def summarise(run: Path) -> dict:
    rows = [r for r in JsonlLog(run / "log.jsonl", enabled=False).records() if "loss" in r]
    ips = [r["images_per_s"] for r in rows]
    thr = [r.get("threads") for r in rows]
    return {"run": str(run), "steps": rows[-1]["step"], "wall_minutes": round((rows[-1]["time"] - rows[0]["time"]) / 60, 1),
            "images_per_second_median": round(statistics.median(ips), 1),
            "log_intervals_on_1_thread": thr.count(1), "log_intervals_on_2_threads": thr.count(2),
            "final_loss_last10": round(statistics.fmean(r["loss"] for r in rows[-10:]), 4)}


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(json.dumps(summarise(Path(p))))
