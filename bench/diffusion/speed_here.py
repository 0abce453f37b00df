"""Time the pixel-diffusion peer on THIS machine, with the NAT's inference engineering and without,
and join the FIDs recorded where its trained weights were measured.

    python bench/diffusion/train.py --out runs/pixel-speed/unet --steps 2 --batch-size 8 --warmup 1 --quiet
    python bench/diffusion/speed_here.py --model runs/pixel-speed/unet/model \
        --fid bench/diffusion/recorded-fid-2026-11-26.json --out runs/frontier2/diffusion-dpmpp2m.jsonl

Sampling time does not depend on the weights, only on the architecture, the solver, the step
count and the guidance, so any model directory with the peer's UNet config times it (the first
command makes one in seconds: the default `UNetConfig`, 2 optimizer steps). For every recorded
point the time of 256 images is measured per --chunks value, bf16 weights and the same threads as
the NATs: 256 images per call (512-row forwards with guidance: how the FIDs were sampled), 32,
and 16 (32-row forwards: the NAT's chunks, which also hold the guidance pair). The fastest is the
point's `seconds_per_image` (the peer gets its best engineering); all are kept, with the batch-1
latency. FID, n and the recorded machine's time come from --fid; NFE and FLOPs are counted here
(they do not depend on the machine). One JSON line per point, replacing the file (not one that
holds points measured with their own FID, unless --force); a `fid_source` field says where the
FID was measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import sampling_flops, speed  # noqa: E402
from threads import ThreadGuard, add_runtime_args  # noqa: E402

from autonat.baselines.pixel_diffusion import inference_copy, load_unet, passes_per_step  # noqa: E402
from autonat.io import AutonatError, atomic_write_bytes  # noqa: E402
from autonat.models.registry import count_parameters  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="a train.py OUT/model directory of the peer's UNet")
    p.add_argument("--fid", required=True, type=Path, help="the recorded FIDs (JSON: scheduler, guidance, points)")
    p.add_argument("--chunks", type=int, nargs="+", default=[256, 32, 16],
                   help="images per sampling call to time (2 rows each with guidance)")
    p.add_argument("--speed-repeats", type=int, default=2)
    p.add_argument("--latency-repeats", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace --out even if it holds measured points")
    add_runtime_args(p)
    a = p.parse_args(argv)
    try:
        rec = json.loads(a.fid.read_text())
        points, scheduler, w, n = rec["points"], rec["scheduler"], float(rec["guidance"]), int(rec["n"])
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"speed_here.py: cannot read the recorded FIDs {a.fid}: {e}")
    if a.out.is_file() and not a.force and any("fid_source" not in json.loads(line)
                                                for line in a.out.read_text().splitlines() if line.strip()):
        raise SystemExit(f"speed_here.py: {a.out} holds points measured with their own FID (no fid_source); "
                         "it would replace them: choose another --out, or --force")
    if any(not 1 <= c <= 256 for c in a.chunks):
        raise SystemExit(f"speed_here.py: --chunks must be between 1 and 256 images, got {a.chunks}")
    try:
        model, schedule, _ = load_unet(a.model)
    except AutonatError as e:
        raise SystemExit(f"speed_here.py: {e}")
    net, guard = inference_copy(model, "bf16"), ThreadGuard(a.threads)
    rows = []
    for pt in points:
        steps = int(pt["steps"])
        timed = {c: speed(net, schedule, scheduler, steps, w, False, a.speed_repeats,
                          a.latency_repeats if c == a.chunks[0] else 0, guard, c) for c in a.chunks}
        ms = {c: 1000 / t["images_per_second_b256"] for c, t in timed.items()}
        best = min(ms, key=ms.get)
        flops = sampling_flops(model, schedule, scheduler, steps, w)
        rows.append({"series": f"diffusion-{scheduler}", "scheduler": scheduler, "steps": steps, "guidance": w,
                     "n": n, "fid": pt["fid"], "fid_source": f"{rec['date']}, {rec['machine']} ({a.fid.name})",
                     "nfe": steps * passes_per_step(w), "flops_per_image": flops, "gflops_per_image": round(flops / 1e9, 4),
                     "seconds_per_image": ms[best] / 1000, "speed_chunk": best,
                     **{f"ms_per_image_chunk{c}": round(v, 2) for c, v in ms.items()},
                     "seconds_per_image_recorded_machine": pt.get("seconds_per_image_there"),
                     "latency_ms_b1": timed[a.chunks[0]].get("latency_ms_b1"), "dtype": "bf16",
                     "threads": timed[a.chunks[0]].get("speed_threads"),
                     "speed_others_cpu": max(t.get("speed_others_cpu", 0.0) for t in timed.values()),
                     "loadavg_1m": round(os.getloadavg()[0], 2), "parameters": count_parameters(model),
                     "timing_model": str(a.model)})
        print(json.dumps(rows[-1]), flush=True)
    atomic_write_bytes(a.out, "".join(json.dumps(r) + "\n" for r in rows).encode())


if __name__ == "__main__":
    main()
