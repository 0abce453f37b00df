"""Summarise a train.py log.jsonl: wall-clock, step times, threads and contention.

    python bench/diffusion/log_summary.py runs/diffusion/unet-lr1e-3

Lines from an interrupted run that a later --resume re-did are dropped (the last line for each
step wins). "uncontended" steps are those run while other processes used < 0.3 core on average
over their 10-step log interval.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def summarise(run: Path) -> dict:
    rows = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            rows[r["step"]] = r                      # a resumed run overwrites the same steps
    rows = [rows[k] for k in sorted(rows)]
    steps = [s for r in rows for s in r["step_seconds"]]
    free = [s for r in rows if r.get("others_cpu", 1.0) < 0.3 for s in r["step_seconds"]]
    thr = [t for r in rows for t in r.get("threads", [])]
    batch = rows[-1]["images_seen"] // rows[-1]["step"]
    return {"run": str(run), "steps": rows[-1]["step"], "images_seen": rows[-1]["images_seen"],
            "train_seconds": round(sum(steps), 1), "train_minutes": round(sum(steps) / 60, 1),
            "step_seconds_median": round(statistics.median(steps), 3),
            "images_per_second_mean": round(batch * len(steps) / sum(steps), 1),
            "uncontended_steps": len(free),
            "uncontended_step_seconds_median": round(statistics.median(free), 3) if free else None,
            "steps_on_1_thread": sum(1 for t in thr if t == 1), "steps_on_2_threads": sum(1 for t in thr if t == 2),
            "others_cpu_mean": round(statistics.fmean(r.get("others_cpu", float("nan")) for r in rows
                                                      if "others_cpu" in r), 3) if thr else None,
            "final_loss_last100": round(statistics.fmean(r["loss"] for r in rows[-10:]), 4)}


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(json.dumps(summarise(Path(p))))
