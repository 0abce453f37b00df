"""Train the pixel-space diffusion peer (`autonat.baselines.diffusion_train`) from the command line.

    python bench/diffusion/train.py --out runs/diffusion/unet-v-lr1e-3 --lr 1e-3 --steps 2100
    python bench/diffusion/train.py --out runs/diffusion/unet-v-lr1e-3 --lr 1e-3 --steps 2100 --resume
    python bench/diffusion/train.py --smoke --out runs/diffusion/smoke     # tiny UNet, seconds

Every flag is a field of `DiffusionTrainConfig` (same names and defaults as the library); the run
directory, log, checkpoints and resume are autonat's trainer skeleton. --threads auto re-chooses
the thread count before every step from what other processes use (threads.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threads import ThreadGuard, add_runtime_args  # noqa: E402

from autonat.baselines.diffusion_train import DiffusionTrainConfig, train_diffusion  # noqa: E402
from autonat.baselines.pixel_diffusion import SMOKE_UNET  # noqa: E402
from autonat.cli.options import add_config_args, config_from_args  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny UNet, 6 steps of 8 images")
    add_config_args(p, DiffusionTrainConfig, exclude=("unet",))     # the UNet: the default (or --smoke)
    add_runtime_args(p)
    a = p.parse_args(argv)
    cfg = config_from_args(DiffusionTrainConfig, a)
    if a.smoke:
        cfg = replace(cfg, unet=SMOKE_UNET, steps=6, batch_size=8, warmup=2, log_every=2, ckpt_every=3)
    guard = ThreadGuard(a.threads)
    model_dir = train_diffusion(cfg, a.out, resume=a.resume, show_progress=not a.quiet, before_step=guard.check)
    print(json.dumps({"model": str(model_dir)}))


if __name__ == "__main__":
    main()
