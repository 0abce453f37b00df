"""Train the class-conditional pixel-space DDPM baseline on Fashion-MNIST (32x32, padded).

    python bench/diffusion/train.py --out runs/diffusion/lr2e-4 --lr 2e-4 --steps 2300
    python bench/diffusion/train.py --out runs/diffusion/lr2e-4 --lr 2e-4 --steps 2300 --resume
    python bench/diffusion/train.py --smoke --out runs/diffusion/smoke     # tiny UNet, seconds

Everything random is drawn from generators keyed by (seed, ...): the data order from
(seed, epoch), the timesteps, noise and label dropout of step s from (seed, s). A run killed at
any point and continued with --resume therefore sees exactly the batches and noise it would have
seen. Checkpoints (OUT/ckpt: state.pt + config.json) are written to a temporary directory,
fsynced and renamed. The log is OUT/log.jsonl (one line per --log-every steps, with the
per-step wall-clock and the 1-minute load average so contention is visible afterwards). The
final EMA weights go to OUT/model (model.safetensors + config.json), which evaluate.py reads.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (add_runtime_args, NULL_CLASS, ModelConfig, ThreadGuard, TrainConfig, append_jsonl,  # noqa: E402
                    atomic_write_dir, build_unet, config_from_dict, count_parameters, keyed_generator,
                    save_model_dir, to_model_space, train_scheduler, write_json)

SMOKE_MODEL = ModelConfig(block_out_channels=(16, 32), layers_per_block=1, attention=(False, True),
                          attention_head_dim=16, norm_num_groups=8)
# fields that may differ between a checkpoint and a --resume invocation
RESUMABLE_CHANGES = {"log_every", "ckpt_every"}


class DataOrder:
    """Sample index of global position p = step * batch + j: epoch e = p // N is a permutation
    drawn from (seed, e), so the order depends only on (seed, step), never on when we resumed."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self._perms = n, seed, {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(self.n, generator=keyed_generator(self.seed, epoch, 0))}
        return self._perms[epoch]

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        pos = torch.arange(step * batch_size, (step + 1) * batch_size)
        out = torch.empty(batch_size, dtype=torch.long)
        for e in pos.div(self.n, rounding_mode="floor").unique().tolist():
            sel = pos.div(self.n, rounding_mode="floor") == e
            out[sel] = self._perm(e)[pos[sel] % self.n]
        return out


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_ratio at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def step_inputs(cfg: TrainConfig, step: int, x0: torch.Tensor, labels: torch.Tensor, acp: torch.Tensor):
    """Noisy input, timesteps, (possibly dropped) labels and target of one step, from (seed, step)."""
    g = keyed_generator(cfg.seed, step, 1)
    b = x0.shape[0]
    t = torch.randint(0, cfg.num_train_timesteps, (b,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    drop = torch.rand(b, generator=g) < cfg.label_dropout
    flip = torch.rand(b, generator=g) < 0.5
    if cfg.hflip:
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    labels = torch.where(drop, torch.full_like(labels, NULL_CLASS), labels)
    a = acp[t].sqrt()[:, None, None, None]
    s = (1 - acp[t]).sqrt()[:, None, None, None]
    xt = a * x0 + s * noise
    target = noise if cfg.prediction_type == "epsilon" else a * noise - s * x0   # v-prediction
    return xt, t, labels, target


def save_checkpoint(out: Path, cfg: TrainConfig, model, ema, opt, step: int, train_seconds: float) -> None:
    def write(tmp: Path):
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "step": step, "train_seconds": train_seconds}, tmp / "state.pt")
        write_json(tmp / "config.json", asdict(cfg))
    atomic_write_dir(out / "ckpt", write)


def load_checkpoint(out: Path, cfg: TrainConfig, model, ema, opt) -> tuple[int, float]:
    saved = config_from_dict(json.loads((out / "ckpt" / "config.json").read_text()))
    diff = {k for k, v in asdict(cfg).items() if asdict(saved)[k] != v} - RESUMABLE_CHANGES
    if diff:
        raise SystemExit(f"error: --resume with a different config ({', '.join(sorted(diff))}); "
                         f"checkpoint has {({k: asdict(saved)[k] for k in diff})}")
    st = torch.load(out / "ckpt" / "state.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(st["model"])
    ema.load_state_dict(st["ema"])
    opt.load_state_dict(st["opt"])
    return int(st["step"]), float(st["train_seconds"])


def train(cfg: TrainConfig, out: Path, resume: bool, show_progress: bool = True,
          stop_after: int | None = None, threads: str = "auto") -> dict | None:
    from autonat.data import load_dataset
    torch.manual_seed(cfg.seed)                      # weight init only
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("fashion-mnist", "train")
    data = to_model_space(ds.images)                 # [60000, 1, 32, 32] in [-1, 1]
    labels_all = ds.labels.long()
    model = build_unet(cfg.model).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    acp = train_scheduler(cfg).alphas_cumprod.float()
    order = DataOrder(len(data), cfg.seed)
    start, train_seconds = 0, 0.0
    if resume and (out / "ckpt" / "state.pt").is_file():
        start, train_seconds = load_checkpoint(out, cfg, model, ema, opt)
        # log lines after this step (from the interrupted run) are superseded by the next ones
        append_jsonl(out / "log.jsonl", {"event": "resume", "step": start, "time": time.time()})
    elif (out / "ckpt").exists() and not resume:
        raise SystemExit(f"error: {out}/ckpt exists; pass --resume to continue it or use a new --out")
    write_json(out / "config.json", asdict(cfg))
    n_params = count_parameters(model)
    bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not show_progress,
               dynamic_ncols=True, mininterval=5)
    losses, times, nthreads, others = [], [], [], []
    guard = ThreadGuard(threads)
    for step in range(start, cfg.steps):
        nthreads.append(guard.check())
        others.append(guard.others_cpu)
        t0 = time.perf_counter()
        idx = order.batch(step, cfg.batch_size)
        xt, t, lab, target = step_inputs(cfg, step, data[idx], labels_all[idx], acp)
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = model(xt, t, class_labels=lab).sample
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, cfg.ema, step)
        dt = time.perf_counter() - t0
        train_seconds += dt
        losses.append(loss.item())
        times.append(dt)
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            rec = {"step": done, "loss": statistics.fmean(losses), "lr": lr_at(cfg, step),
                   "grad_norm": float(gnorm), "step_seconds_median": statistics.median(times),
                   "step_seconds_max": max(times), "step_seconds": [round(x, 4) for x in times],
                   "images_per_second": cfg.batch_size / statistics.median(times),
                   "images_seen": done * cfg.batch_size, "train_seconds": round(train_seconds, 2),
                   "threads": nthreads, "others_cpu": round(statistics.fmean(others), 3),
                   "loadavg_1m": os.getloadavg()[0], "time": time.time()}
            append_jsonl(out / "log.jsonl", rec)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", ips=f"{rec['images_per_second']:.0f}")
            losses, times, nthreads, others = [], [], [], []
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            save_checkpoint(out, cfg, model, ema, opt, done, train_seconds)
        if stop_after is not None and done - start >= stop_after and done < cfg.steps:
            save_checkpoint(out, cfg, model, ema, opt, done, train_seconds)
            bar.close()
            return None                              # interrupted on purpose (resume tests)
    bar.close()
    summary = {"parameters": n_params, "steps": cfg.steps, "images_seen": cfg.steps * cfg.batch_size,
               "train_seconds": round(train_seconds, 1), "weights": "ema"}
    save_model_dir(out / "model", ema, cfg, summary)
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--ema", type=float, default=d.ema)
    p.add_argument("--label-dropout", type=float, default=d.label_dropout)
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], default=d.prediction_type)
    p.add_argument("--beta-schedule", choices=["squaredcos_cap_v2", "linear"], default=d.beta_schedule)
    p.add_argument("--hflip", action="store_true")
    p.add_argument("--no-bf16", action="store_true", help="train in fp32 (default: bf16 autocast)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, default=None,
                   help="checkpoint and exit after this many steps (to test --resume)")
    p.add_argument("--smoke", action="store_true", help="tiny UNet, 6 steps of 8 images")
    add_runtime_args(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse_args(argv)
    cfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup, ema=a.ema,
                      label_dropout=a.label_dropout, prediction_type=a.prediction_type,
                      beta_schedule=a.beta_schedule, hflip=a.hflip, bf16=not a.no_bf16, seed=a.seed,
                      log_every=a.log_every, ckpt_every=a.ckpt_every)
    if a.smoke:
        cfg.model, cfg.steps, cfg.batch_size, cfg.warmup = SMOKE_MODEL, 6, 8, 2
        cfg.log_every, cfg.ckpt_every = 2, 3
    summary = train(cfg, a.out, a.resume, show_progress=not a.quiet, stop_after=a.stop_after,
                    threads=a.threads)
    print(json.dumps(summary if summary else {"stopped": True}))


if __name__ == "__main__":
    main()
