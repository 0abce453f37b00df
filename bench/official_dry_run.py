"""Full-size dry run of the authors' released systems on this CPU, without their weights: random
tensors with the exact released key names and shapes (tests/fixtures/official/released_keys) are
saved as .pth files, converted with `autonat convert`, and sampled with `autonat sample` (T = 8,
one 256 x 256 image through the converted VQGAN). Each sampling runs in its own process so its
peak memory (ru_maxrss) is its own. Also counts FLOPs per image (FlopCounterMode, both guidance
passes, tokenizer excluded) for AutoNAT-L with its released strategy and ENAT-L with its released
schedule, with and without feature reuse.

    python bench/official_dry_run.py --out runs/official-dry      (~10 min, ~6 GB of disk)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

KEYS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official" / "released_keys"


def random_checkpoint(name: str, path: Path, seed: int) -> None:
    """N(0, 0.02) weights (LayerNorm/GroupNorm scales 1) under the released names and shapes."""
    spec = json.loads((KEYS / f"{name}.keys.json").read_text())["state_dict"]
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in spec.items():
        norm_scale = k.endswith(".weight") and len(shape) == 1
        state[k] = torch.ones(shape) if norm_scale else torch.randn(shape, generator=g) * 0.02
    torch.save(state, path)


def run(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return {"seconds": round(time.perf_counter() - t0, 2),
            "last_line": json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}}


def measure(model_dir: Path, strategy: str, out: Path, reuse: bool) -> dict:
    """`autonat sample --n 1 --steps 8` in a child process (written to `out`), then the same image
    again in that process (warm: the bf16 copy is made): wall-clock of both, and the child's
    peak resident memory (VmHWM; ru_maxrss would include the parent's peak, inherited at fork)."""
    code = (
        "import json, time, torch\n"
        "from autonat.generate import SampleConfig, generate_to_dir\n"
        "from autonat.pipeline import Pipeline\n"
        "t = time.perf_counter()\n"
        f"s = generate_to_dir(SampleConfig(model={str(model_dir)!r}, strategy={strategy!r}, steps=8, n=1, "
        f"reuse={reuse}, device='cpu'), {str(out)!r}, show_progress=False)\n"
        "first = time.perf_counter() - t\n"
        f"pipe = Pipeline.from_pretrained({str(model_dir)!r})\n"
        f"pipe([0], num_steps=8, strategy={strategy!r}, reuse={reuse}, progress=False)\n"
        "t = time.perf_counter()\n"
        f"pipe([0], num_steps=8, strategy={strategy!r}, reuse={reuse}, progress=False,"
        " generator=torch.Generator().manual_seed(1))\n"
        "warm = time.perf_counter() - t\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'first_command_seconds': round(first, 2), 'first_sampling_seconds': s['seconds'],"
        " 'warm_image_seconds': round(warm, 2), 'peak_rss_gb': round(int(hwm) / 2**20, 2)}))\n")
    return run([sys.executable, "-c", code])["last_line"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, seed in (("maskgit-vqgan-f16", 3), ("autonat-L-imagenet256", 1), ("enat-L-imagenet256", 2)):
        if not (out / f"{name}.pth").is_file():
            random_checkpoint(name, out / f"{name}.pth", seed)
    autonat = [sys.executable, "-m", "autonat"]
    for name, model in (("autonat-L-imagenet256", "autonat-L"), ("enat-L-imagenet256", "enat-L")):
        if not (out / model).is_dir():
            rows[f"convert {model}"] = run(autonat + ["convert", "--checkpoint", str(out / f"{name}.pth"), "--vqgan",
                                                      str(out / "maskgit-vqgan-f16.pth"), "--out", str(out / model)])
    rows["sample autonat-L"] = measure(out / "autonat-L", "autonat", out / "samples-autonat-L", True)
    rows["sample enat-L (reuse)"] = measure(out / "enat-L", "enat", out / "samples-enat-L", True)
    rows["sample enat-L (no reuse)"] = measure(out / "enat-L", "enat", out / "samples-enat-L-noreuse", False)
    from autonat.bundle import Bundle
    from autonat.metrics.cost import sampling_flops
    from autonat.presets import autonat_imagenet_t8, enat
    uvit, en = Bundle.load(out / "autonat-L"), Bundle.load(out / "enat-L")
    one = uvit.conditioner.condition([0])
    flops = {"autonat-L (released T=8 strategy)": sampling_flops(uvit.model, autonat_imagenet_t8(), one),
             "enat-L (released schedule, reuse)": sampling_flops(en.model, enat(8), one),
             "enat-L (released schedule, no reuse)": sampling_flops(en.model.without_reuse(), enat(8), one)}
    del uvit, en
    rows["tflops_per_image"] = {k: round(v / 1e12, 3) for k, v in flops.items()}
    rows["enat_over_autonat_flops"] = round(flops["enat-L (released schedule, reuse)"]
                                            / flops["autonat-L (released T=8 strategy)"], 3)
    rows["threads"] = torch.get_num_threads()
    print(json.dumps(rows, indent=1))
    (out / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
