"""Shared pieces of the diffusion baseline: configs, the UNet, the noise schedule, data, file I/O.

The baseline is a class-conditional pixel-space DDPM (diffusers `UNet2DModel`) on Fashion-MNIST
padded to 32x32, trained with v-prediction (TrainConfig; epsilon was tried) on a 1000-step
cosine (`squaredcos_cap_v2`) schedule. Class id 10 is the null class used for classifier-free guidance (label dropout during
training, the unconditional branch at sampling time).

Pixel convention: uint8 [0, 255] -> float [-1, 1]; 28x28 images are padded by 2 pixels on every
side with -1 (black, the Fashion-MNIST background) to 32x32; samples are cropped back to 28x28
before they are scored.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from autonat.io import _fsync_dir
from autonat.models.registry import count_parameters  # noqa: F401  (evaluate.py, train.py)

NUM_CLASSES = 10
NULL_CLASS = NUM_CLASSES          # index of the "no label" embedding (CFG)
PAD = 2                           # 28 + 2 * 2 = 32


@dataclass
class ModelConfig:
    """Architecture of the diffusers UNet2DModel (saved as model_config in config.json)."""
    sample_size: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 128, 256)
    layers_per_block: int = 1
    attention: tuple[bool, ...] = (False, False, True, True)   # self-attention at 8x8 and 4x4
    attention_head_dim: int = 32
    norm_num_groups: int = 32
    dropout: float = 0.0


@dataclass
class TrainConfig:
    """One training run. Saved as config.json next to every checkpoint and the final weights."""
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 2300
    batch_size: int = 128
    lr: float = 2e-4
    min_lr_ratio: float = 0.1          # cosine decay from lr to lr * min_lr_ratio after warm-up
    warmup: int = 200
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ema: float = 0.999                 # EMA decay (with the usual (1 + s) / (10 + s) ramp-up)
    label_dropout: float = 0.1         # P(label -> null class) for classifier-free guidance
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"   # v = alpha eps - sigma x0 (see README: why not eps)
    hflip: bool = False                # off: shoes and bags face one way in Fashion-MNIST
    bf16: bool = True                  # bf16 autocast on CPU (measured 2x faster than fp32)
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 200


def _from_dict(cls, d: dict):
    """Build a (nested) dataclass from a dict, ignoring unknown keys, lists -> tuples."""
    kw = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name == "model" and isinstance(v, dict):
            v = _from_dict(ModelConfig, v)
        elif isinstance(v, list):
            v = tuple(v)
        kw[f.name] = v
    return cls(**kw)


def config_from_dict(d: dict) -> TrainConfig:
    return _from_dict(TrainConfig, d)


def build_unet(mc: ModelConfig):
    """The class-conditional UNet2DModel (NUM_CLASSES + 1 class embeddings)."""
    from diffusers import UNet2DModel
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in mc.attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(mc.attention))
    return UNet2DModel(
        sample_size=mc.sample_size, in_channels=1, out_channels=1,
        block_out_channels=tuple(mc.block_out_channels), layers_per_block=mc.layers_per_block,
        down_block_types=down, up_block_types=up, num_class_embeds=NUM_CLASSES + 1,
        attention_head_dim=mc.attention_head_dim, norm_num_groups=mc.norm_num_groups,
        dropout=mc.dropout)


def train_scheduler(cfg: TrainConfig):
    """The DDPM scheduler that defines the forward process (alphas_cumprod) used in training."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type, clip_sample=False)


def to_model_space(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 1, 28, 28] -> float [B, 1, 32, 32] in [-1, 1], padded with -1 (black)."""
    x = images_u8.float().div(127.5).sub(1.0)
    return torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD), value=-1.0)


def to_uint8_28(x: torch.Tensor) -> torch.Tensor:
    """float [B, 1, 32, 32] in [-1, 1] -> uint8 [B, 1, 28, 28] (centre crop, rounded, clamped)."""
    x = x[..., PAD:x.shape[-2] - PAD, PAD:x.shape[-1] - PAD].float()
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def keyed_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by a hash of integers, e.g. (seed, step, stream) or (seed, index)."""
    h = hashlib.blake2b(repr(tuple(int(k) for k in key)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(h, "little") & ((1 << 63) - 1))


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def _fsync_tree(path: Path) -> None:
    for p in path.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


def atomic_write_dir(final: Path, write) -> None:
    """Call write(tmp_dir), fsync it, then swap it in place of `final` (old copy removed last)."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: Path, record: dict) -> None:
    """Append one whole line with a single write (O_APPEND), then fsync."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model_dir(out: Path, model: torch.nn.Module, cfg: TrainConfig, extra: dict) -> None:
    """Final model dir: model.safetensors (EMA weights, fp32) + config.json, atomically."""
    from safetensors.torch import save_file

    def write(tmp: Path):
        save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        write_json(tmp / "config.json", {**asdict(cfg), **extra})
    atomic_write_dir(out, write)


def load_model_dir(path: str | os.PathLike, device: str = "cpu"):
    """(UNet with the saved EMA weights in eval mode, TrainConfig, full config dict)."""
    from safetensors.torch import load_file
    path = Path(path)
    d = json.loads((path / "config.json").read_text())
    cfg = config_from_dict(d)
    model = build_unet(cfg.model)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.to(device).eval(), cfg, d


# ----------------------------------------------------------------------------------------------
# Sharing the 2 cores
# ----------------------------------------------------------------------------------------------

class ThreadGuard:
    """Pick torch's intra-op thread count from what OTHER processes used since the last check.

    Measured on this 2-core machine (bf16 training step, batch 128): 1.28 s with 2 threads when
    the machine is free, but 1.2-45 s (erratic) with 2 threads while another process keeps one
    core busy (the two threads wait for each other at every parallel region), and a steady
    2.1 s with 1 thread. So: 2 threads while others use < `busy` cores, 1 thread otherwise.
    `others_cpu` (cores used by other processes, averaged over the interval) is logged so
    contention is visible afterwards.
    """

    def __init__(self, mode: str = "auto", busy: float = 0.3):
        self.mode, self.busy = mode, busy
        self.max_threads = torch.get_num_threads()
        self.others_cpu = 0.0
        self._last = self._sample()
        if mode != "auto":
            torch.set_num_threads(int(mode))

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        """(wall seconds, busy CPU seconds of the whole machine, CPU seconds of this process)."""
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / tick      # minus idle and iowait
        own = sum(os.times()[:2])
        import time as _t
        return _t.monotonic(), busy, own

    def check(self) -> int:
        """Update others_cpu and (in auto mode) the thread count; returns the thread count."""
        now = self._sample()
        dt = max(now[0] - self._last[0], 1e-6)
        self.others_cpu = max(0.0, ((now[1] - self._last[1]) - (now[2] - self._last[2])) / dt)
        self._last = now
        if self.mode == "auto":
            torch.set_num_threads(1 if self.others_cpu >= self.busy else self.max_threads)
        return torch.get_num_threads()


def add_runtime_args(p) -> None:
    """The options every bench/diffusion command shares."""
    p.add_argument("--threads", default="auto",
                   help="torch threads: auto (2, or 1 while other processes use a core), 1, 2")
    p.add_argument("--quiet", action="store_true")
