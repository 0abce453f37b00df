"""The FID-vs-cost frontier in one run, every point measured here, now, the same way:
NATs (U-ViT and ENAT with MaskGIT's heuristic, their searched AutoNAT strategies, the Halton
scheduler and Halton + AutoNAT search) and the diffusion baseline (DPM-Solver++ 2M over steps,
DDIM at 50, a guidance sweep), all scored with `fid_fmnist` on n fresh samples against the 60k
training images, with FLOPs per image, images/s at batch 256 and batch-1 latency (both end to end:
token decoding + tokenizer decoding for the NATs, the whole solver loop for diffusion).

    python bench/frontier.py --out runs/frontier [--n 10000] [--diffusion auto|DIR|""]
    python bench/frontier.py --out runs/frontier --retime runs/retime/nat.jsonl [--series ...]   # times only

One JSONL file per series in OUT (resumable: points already there are skipped), then
OUT/frontier.png (FID vs GFLOPs and vs seconds/image) and OUT/table.md (every point, then the
comparison of `autonat.metrics.frontier`: equal-FID ratios where they exist, named points where not;
then, if OUT/seeds/*.jsonl holds evaluations of second training seeds, the seed table).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from autonat.metrics.frontier import peer_family

NAT_SERIES = [  # (series, model, strategy, steps); hand presets at T = 2, 3 (no searched strategy there)
    ("uvit-maskgit", "fashion-mnist", "maskgit", [2, 3, 4, 8]),
    ("uvit-enat-preset", "fashion-mnist", "enat", [2, 3, 4, 8]),
    ("uvit-autonat", "fashion-mnist", "autonat", [4, 8]),
    ("uvit-halton", "fashion-mnist", "halton:1,1,1,0", [4, 8, 16]),             # fixed order, no ramp, w = 1
    ("uvit-halton-published", "fashion-mnist", "halton", [2, 3, 4, 8, 16]),     # the published sampler's settings
    ("enat-maskgit", "fashion-mnist-enat", "maskgit", [4, 8]),
    ("enat-autonat", "fashion-mnist-enat", "autonat", [4, 8]),
    ("enat-halton", "fashion-mnist-enat", "halton:1,1,1,0", [8]),
    ("enat-halton-published", "fashion-mnist-enat", "halton", [4, 8]),
]


def arccos_series(root: Path) -> list[tuple]:
    """The Halton sampler on the U-ViT trained with the arccos p(r) of the Halton paper: the
    published settings, the plain order, and its Halton + AutoNAT search, at T = 8."""
    model, search = root / "uvit-small", root / "search-T8" / "best_strategy.json"
    if not (model / "model.safetensors").is_file():
        return []
    rows = [("arccos-halton-published", str(model), "halton", [8]), ("arccos-halton", str(model), "halton:1,1,1,0", [8])]
    return rows + ([("arccos-halton+autonat", str(model), str(search), [8])] if search.is_file() else [])


def done(path: Path, key: dict) -> bool:
    if not path.is_file():
        return False
    return any(all(r.get(k) == v for k, v in key.items()) for r in map(json.loads, path.read_text().splitlines()))


def latency_ms(pipe, strategy, steps: int, repeats: int = 20) -> float:
    """Median end-to-end time of one image (sampling + tokenizer decoding), bf16."""
    gen = torch.Generator()
    times = []
    for i in range(repeats + 2):
        t = time.perf_counter()
        pipe([i % 10], num_steps=steps, strategy=strategy, generator=gen.manual_seed(i), progress=False)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[2:])


def nat_point(series: str, model: str, strategy: str, steps: int, n: int, seed: int, out: Path, ref, net) -> None:
    from autonat.evaluation import EvalConfig, evaluate_model
    from autonat.pipeline import Pipeline
    path = out / f"{series}.jsonl"
    if done(path, {"steps": steps, "n": n, "strategy_spec": strategy}):
        return
    pipe = Pipeline.from_pretrained(model)
    st = pipe.strategy(strategy, steps)
    r = evaluate_model(pipe.bundle, st, net, EvalConfig(n=n, seed=seed, batch_size=256), ref, False)
    r.update({"series": series, "strategy_spec": strategy, "model_name": model,
              "seconds_per_image": r["sample_seconds"] / n, "images_per_second_b256": r["images_per_second"],
              "latency_ms_b1": round(latency_ms(pipe, st, steps), 2), "threads": torch.get_num_threads(),
              "loadavg_1m": round(os.getloadavg()[0], 2), "batch_size": 256, "chunk": 32})
    with open(path, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(f"{series} T={steps}: FID {r['fid']:.2f}, {r['gflops_per_image']:.2f} GFLOPs, "
          f"{r['images_per_second']:.0f} img/s, {r['latency_ms_b1']:.0f} ms", flush=True)


def retime(out: Path, series: list[str] | None, path: Path, repeats: int = 3) -> None:
    """Time each NAT series' best point in OUT again, now, without FID: batch 256 end to end (token
    and tokenizer decoding, as in the FID run) and batch-1 latency. Rows go to PATH (keep it outside
    OUT), so NAT and peer timings can be compared within one window of this shared machine."""
    from autonat.metrics.cost import time_call
    from autonat.pipeline import Pipeline
    best = {k: r for k, r in best_nat_points(read_rows(out)).items() if series is None or k in series}
    if missing := sorted(set(series or []) - set(best)):
        sys.exit(f"error: --series {' '.join(missing)}: no NAT point of that series in {out}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, r in sorted(best.items()):
        pipe = Pipeline.from_pretrained(r["model_name"])
        st = pipe.strategy(r["strategy_spec"], r["steps"])
        gen = torch.Generator()
        sec = time_call(lambda: pipe([i % 10 for i in range(256)], num_steps=r["steps"], strategy=st,
                                     generator=gen.manual_seed(0), progress=False), repeats, warmup=1)["median_s"]
        row = {"series": name, "steps": r["steps"], "fid_in_out": r["fid"], "seconds_per_image": sec / 256,
               "seconds_per_image_in_out": r["seconds_per_image"], "latency_ms_b1": round(latency_ms(pipe, st, r["steps"]), 2),
               "threads": torch.get_num_threads(), "loadavg_1m": round(os.getloadavg()[0], 2), "time": time.time()}
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name} T={r['steps']}: {1000 * sec / 256:.1f} ms / image now ({1000 * r['seconds_per_image']:.1f} in OUT), "
              f"latency {row['latency_ms_b1']:.0f} ms", flush=True)


def diffusion_points(model: str, n: int, seed: int, out: Path, guidance: float, sweep_steps: int,
                     sweep: list[float], sweep_n: int, steps: list[int], ddim_steps: list[int],
                     speed: list[str]) -> None:
    """The diffusion points, sampled in calls of 16 images (32-row model calls with guidance, as the
    NATs' chunks); the point's time is the batch-256 speed run in such calls (with --speed-repeats 0:
    the FID run's)."""
    py = [sys.executable, str(Path(__file__).parent / "diffusion" / "evaluate.py"), "--model", model, "--seed", str(seed),
          "--batch-size", "16", "--chunk", "16", *speed]
    todo = [("dpmpp2m", s, guidance, n) for s in steps] + [("ddim", s, guidance, n) for s in ddim_steps]
    todo += [("dpmpp2m", sweep_steps, w, sweep_n) for w in sweep if w != guidance]
    for sched, steps, w, npts in todo:
        swept = w != guidance
        name = f"diffusion-{sched}" + (f"-w{w:g}" if swept else "")
        path = out / f"{name}.jsonl"
        if done(path, {"steps": steps, "guidance": w, "n": npts}):
            continue
        subprocess.run(py + ["--scheduler", sched, "--steps", str(steps), "--guidance", str(w), "--n", str(npts),
                             "--out", str(path), "--quiet"], check=True)
        r = json.loads(path.read_text().splitlines()[-1])
        if swept:
            r["series"], r["label"] = f"diffusion-dpmpp2m (w sweep, T={steps})", f"w={w:g}"
        else:
            r["series"] = name
        r.setdefault("images_per_second_b256", r["images_per_second"])
        lines = path.read_text().splitlines()[:-1] + [json.dumps(r)]
        path.write_text("\n".join(lines) + "\n")
        print(f"{name} T={steps} w={w}: FID {r['fid']:.2f}, {r['gflops_per_image']:.1f} GFLOPs", flush=True)


def read_rows(out: Path) -> list[dict]:
    """Every measured point of every series file in OUT (an AR point is labelled by its sampler setting:
    all its points have the same T = 49)."""
    rows = [r for f in sorted(out.glob("*.jsonl")) for r in map(json.loads, f.read_text().splitlines())]
    for r in rows:
        if "temperature" in r and "label" not in r:
            r["label"] = f"t={r['temperature']:g}, s={r['guidance']:g}" + (f", top-k {r['top_k']}" if r.get("top_k") else "")
    return rows


def table(rows: list[dict]) -> str:
    """Every point: FID with precision / recall, NFE (network passes per image), FLOPs (generator
    only; the tokenizer decoder is extra for the token models), time per image in the FID run,
    batch-1 latency."""
    lines = ["| series | T | guidance | n | FID | precision / recall | NFE | GFLOPs / image | s / image (batched) "
             "| latency b1 (ms) |", "|---|---|---|---|---|---|---|---|---|---|"]

    def pr(r: dict) -> str:
        return f"{r['precision']:.3f} / {r['recall']:.3f}" if "precision" in r else "-"
    for r in sorted(rows, key=lambda r: (r["series"], r["steps"], r.get("guidance", 0))):
        lines.append(f"| {r['series']} | {r['steps']} | {r.get('guidance', '')} | {r['n']} | {r['fid']:.2f} | {pr(r)} | "
                     f"{r.get('nfe', '-')} | {r['flops_per_image'] / 1e9:.2f} | {r['seconds_per_image'] * 1000:.1f} ms | "
                     f"{r.get('latency_ms_b1', 0):.0f} |")
    return "\n".join(lines) + "\n"


def best_nat_points(rows: list[dict]) -> dict[str, dict]:
    """Each NAT series' lowest-FID point (peer-family series left out)."""
    best = {}
    for r in rows:
        if peer_family(r["series"]) is None and (r["series"] not in best or r["fid"] < best[r["series"]]["fid"]):
            best[r["series"]] = r
    return best


def comparison(rows: list[dict]) -> str:
    """ONE table: each NAT series' best point against each peer family's frontier (pixel diffusion
    without its guidance sweep; the latent and AR peers over every setting measured)."""
    from autonat.metrics.frontier import PEER_FAMILIES, comparison_table
    nats = best_nat_points(rows)
    families = {name: [r for r in rows if peer_family(r["series"]) == name and "sweep" not in r["series"]]
                for name in PEER_FAMILIES}
    return comparison_table(nats, families) if nats else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=10**6, help="fresh seeds, never used by a search")
    ap.add_argument("--halton-search", default="runs/search-halton-T8/best_strategy.json",
                    help="Halton + AutoNAT strategy file (skipped if absent)")
    ap.add_argument("--halton-arccos", default="runs/halton-arccos", type=Path,
                    help="the U-ViT trained with Halton's arccos p(r) (DIR/uvit-small) and its Halton + AutoNAT "
                         "search (DIR/search-T8/best_strategy.json): their T = 8 points (skipped if absent)")
    ap.add_argument("--series", nargs="*", default=None,
                    help="NAT series to measure (default: all; none: only diffusion / the table)")
    ap.add_argument("--steps", type=int, nargs="*", default=None, help="only these T of the NAT series")
    ap.add_argument("--diffusion", default="auto",
                    help="diffusion model dir; 'auto' = the learning rate bench/diffusion/run_all.sh chose; '' = skip")
    ap.add_argument("--guidance", type=float, default=None,
                    help="diffusion guidance w of the step sweep (default: the one run_all.sh chose)")
    ap.add_argument("--sweep", type=float, nargs="*", default=[1.0, 1.5, 2.0, 3.0],
                    help="guidance values of the sweep at --sweep-steps (none: skip the sweep)")
    ap.add_argument("--sweep-steps", type=int, default=10)
    ap.add_argument("--sweep-n", type=int, default=10000)
    ap.add_argument("--diffusion-steps", type=int, nargs="+", default=[5, 8, 10, 15, 20, 50],
                    help="DPM-Solver++ step counts, run in this order")
    ap.add_argument("--ddim-steps", type=int, nargs="*", default=[50], help="DDIM step counts (none: skip DDIM)")
    ap.add_argument("--speed-repeats", type=int, default=3,
                    help="diffusion batch-256 speed runs per point, after the thread guard re-checked what "
                         "else uses the CPU (0: the FID sampling run is the throughput measurement)")
    ap.add_argument("--latency-repeats", type=int, default=10, help="diffusion batch-1 latency runs per point")
    ap.add_argument("--table-only", action="store_true", help="measure nothing: rewrite OUT/table.md and the plot")
    ap.add_argument("--retime", type=Path, default=None, metavar="FILE",
                    help="only re-time the best point of each NAT series in OUT (or of --series) into FILE")
    args = ap.parse_args()
    out = Path(args.out)
    if args.table_only:
        return write_table(out)
    if args.retime is not None:
        if args.retime.resolve().parent == out.resolve():
            ap.error(f"--retime {args.retime}: keep it outside {out} (its *.jsonl files are the frontier's points)")
        return retime(out, args.series, args.retime)
    if args.diffusion:
        sys.path.insert(0, str(Path(__file__).parent / "diffusion"))
        from choice import choose
        model, w = choose(model=None if args.diffusion == "auto" else args.diffusion)
        args.diffusion, args.guidance = model, w if args.guidance is None else args.guidance
    out.mkdir(parents=True, exist_ok=True)
    from autonat.metrics.reference import load_extractor, reference_features
    net = load_extractor("fmnist")
    ref = reference_features(net, show_progress=False)
    series = list(NAT_SERIES)
    if Path(args.halton_search).is_file():
        series.append(("uvit-halton+autonat", "fashion-mnist", args.halton_search, [8]))
    series += arccos_series(args.halton_arccos)
    for name, model, strategy, steps in series:
        if args.series is not None and name not in args.series:
            continue
        for T in steps:
            if args.steps is not None and T not in args.steps:
                continue
            nat_point(name, model, strategy, T, args.n, args.seed, out, ref, net)
    if args.diffusion:
        diffusion_points(args.diffusion, args.n, args.seed, out, args.guidance, args.sweep_steps, args.sweep,
                         args.sweep_n, args.diffusion_steps, args.ddim_steps, ["--speed-repeats", str(args.speed_repeats),
                                                             "--latency-repeats", str(args.latency_repeats)])
    write_table(out)


def seeds(rows: list[dict], out: Path) -> str:
    """The training-seed repeats: points in OUT/seeds/*.jsonl (evaluations of a second training seed's
    weights, each row naming its `train_seed`) beside the same settings in OUT (the frontier's models,
    all trained with seed 0)."""
    from autonat.metrics.frontier import seed_table
    repeats = read_rows(out / "seeds") if (out / "seeds").is_dir() else []
    text = seed_table(rows, repeats) if repeats else ""
    return "Training seeds (same sampler setting, n and sampling seed; only the weights differ):\n\n" + text \
        if text else ""


def write_table(out: Path) -> None:
    """OUT/table.md (every point, the one comparison table, the training-seed repeats) and
    OUT/frontier.png."""
    rows = read_rows(out)
    text = table(rows) + "\n" + comparison(rows)
    if s := seeds(rows, out):
        text += "\n" + s
    (out / "table.md").write_text(text)
    subprocess.run([sys.executable, "-m", "autonat", "plot", "frontier", *map(str, sorted(out.glob("*.jsonl"))),
                    "--out", str(out / "frontier.png")], check=True)
    print(text)


if __name__ == "__main__":
    main()
