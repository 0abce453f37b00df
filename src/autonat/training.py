"""NAT training loop (`autonat train`): AdamW + warm-up, EMA, gradient clipping, bf16 autocast,
JSONL metrics, atomic checkpoints with exact `--resume`, and DDP under `torchrun`.

Determinism: everything random about step `s` (which examples, which flip view, mask ratios and
positions, label dropout, dropout inside the model) is drawn from generators seeded by
(seed, s) - for the *global* batch, of which each rank takes its contiguous slice. A resumed
run therefore replays exactly the steps an uninterrupted one would, and the data order does not
depend on the number of processes. Each example is drawn once per epoch (no discarded batches).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import distributed as D
from .io import AutonatError, atomic_write_json, config_from_dict, config_to_dict, load_json
from .jobs import (JsonlLog, Throughput, autocast, load_checkpoint, pick_device, progress,
                   save_checkpoint)
from .losses import batch_mask, drop_labels, enat_loss, nat_loss
from .masking import parse_mask_dist, sample_training_mask
from .models.registry import build_model, count_parameters, load_model, model_config, save_model
from .sampling import _mix64
from .tokens import TokenCache


@dataclass(frozen=True)
class TrainConfig:
    """How a NAT is trained (saved as train_config.json; part of the model's identity)."""
    tokens: str = ""
    arch: str = "uvit"
    size: str = "small"
    mask_dist: str = "beta:12,3"       # p(r): beta:A,B | arccos | fixed:R | uniform
    batch_size: int = 256              # global batch (split across ranks)
    max_steps: int = 10000
    lr: float = 1e-3
    lr_schedule: str = "cosine"        # "cosine" (to 10%) or "constant" (as released, after warm-up)
    warmup_steps: int = 500
    weight_decay: float = 0.03
    betas: tuple[float, float] = (0.9, 0.99)
    ema_decay: float = 0.999
    label_smoothing: float = 0.1
    label_dropout: float = 0.15
    grad_clip: float = 1.0
    hflip: bool = True                 # use the mirrored view of the cache (if stored) half the time
    reuse_prob: float = 0.5            # ENAT only: probability of training through the reuse path
    init_from: str = ""                # warm start from a saved model directory (search proxies)
    log_every: int = 50
    ckpt_every: int = 1000
    seed: int = 0
    bf16: bool = True
    device: str = "auto"

    def __post_init__(self):
        if self.lr_schedule not in ("cosine", "constant"):
            raise AutonatError(f"lr_schedule must be cosine or constant, got {self.lr_schedule!r}")
        parse_mask_dist(self.mask_dist)
        if self.batch_size < 1 or self.max_steps < 1:
            raise AutonatError("batch_size and max_steps must be >= 1")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def _step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(_mix64(seed, step, stream))


def batch_indices(cfg: TrainConfig, n: int, step: int) -> torch.Tensor:
    """Global example indices of `step`: epoch-wise permutations, each example once per epoch."""
    per_epoch = n // cfg.batch_size
    if per_epoch < 1:
        raise AutonatError(f"batch size {cfg.batch_size} exceeds the {n} cached examples")
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=_step_generator(cfg.seed, epoch, 1))
    return perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]


class EMA:
    """Exponential moving average of the parameters: a frozen fp32 copy of the model in eval
    mode (ENAT's reuse training runs it; sampling uses its weights)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        import copy
        self.decay = decay
        self.module = copy.deepcopy(model).float().eval().requires_grad_(False)

    @property
    def shadow(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm start: follow closely early on
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.is_floating_point():
                v.mul_(d).add_(src[k].detach().float(), alpha=1 - d)
            else:
                v.copy_(src[k])


def _check_resume(out: Path, cfg: TrainConfig) -> None:
    saved = config_from_dict(TrainConfig, load_json(out / "train_config.json"))
    if saved != cfg:
        diff = {k: (v, getattr(cfg, k)) for k, v in asdict(saved).items() if getattr(cfg, k) != v}
        raise AutonatError(f"--resume: options differ from the run in {out}: {diff}")


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, show_progress: bool = True,
          stop_after: int | None = None) -> Path:
    """Train a NAT on a token cache; returns the output directory (a loadable model directory).
    `stop_after` ends the process's work after that many steps (tests use it to simulate a kill)."""
    out = Path(out)
    device = D.local_device(pick_device(cfg.device))
    D.init_from_env(device)
    rank, world = D.rank(), D.world_size()
    if cfg.batch_size % world:
        raise AutonatError(f"global batch {cfg.batch_size} is not divisible by {world} processes")
    cache = TokenCache.open(cfg.tokens)
    dims = dict(codebook_size=cache.codebook_size, seq_len=cache.seq_len, num_classes=cache.num_classes)
    mcfg = model_config(cfg.arch, cfg.size, **dims)
    dist = parse_mask_dist(cfg.mask_dist)

    ck = load_checkpoint(out) if resume else None
    if resume:
        if ck is None:
            raise AutonatError(f"--resume: no checkpoint in {out}/checkpoint")
        _check_resume(out, cfg)
    elif (out / "checkpoint").exists():
        raise AutonatError(f"{out} already holds a training run; pass --resume or choose a new --out")

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, mcfg).to(device)
    if cfg.init_from and ck is None:
        init = load_model(cfg.init_from)
        if init.config != mcfg:
            raise AutonatError(f"--init-from {cfg.init_from}: architecture differs from {cfg.arch}/{cfg.size}")
        model.load_state_dict(init.state_dict())
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "emb" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
    ema = EMA(model, cfg.ema_decay)
    step = 0
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        ema.load(ck["ema"])
        step = int(ck["meta"]["step"])
    elif D.is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "train_config.json", config_to_dict(cfg))
    D.barrier()
    # ENAT's two paths (plain / reuse) use different parameters: DDP must allow unused ones.
    net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=cfg.arch == "enat") \
        if D.is_distributed() else model
    log = JsonlLog(out / "log.jsonl", enabled=D.is_main())
    log.truncate_after(step)
    if step == 0:
        log.write({"step": 0, "parameters": count_parameters(model), "world_size": world,
                   "config": config_to_dict(cfg)})
    tput = Throughput()
    bar = progress(total=cfg.max_steps, initial=step, desc=f"train {cfg.arch}-{cfg.size}",
                   disable=not (show_progress and D.is_main()))
    sums = torch.zeros(3)  # loss * count, correct, count since last log
    per_rank = cfg.batch_size // world
    lo, hi = rank * per_rank, (rank + 1) * per_rank
    t_start, done_here = time.time(), 0
    model.train()
    while step < cfg.max_steps:
        idx = batch_indices(cfg, len(cache), step)
        g = _step_generator(cfg.seed, step, 2)
        views = (torch.rand(len(idx), generator=g) < 0.5).long() if cfg.hflip and cache.tokens.shape[1] > 1 \
            else torch.zeros(len(idx), dtype=torch.long)
        ids, labels = cache.batch(idx, views)
        labels = drop_labels(labels, model.null_label, cfg.label_dropout, g)
        # Mask draws for the global batch, then this rank's slice: independent of world size.
        gm = _step_generator(cfg.seed, step, 3)
        if cfg.arch == "enat":
            mask, _ = batch_mask(dist, cfg.batch_size, cache.seq_len, gm)
        else:
            mask, _ = sample_training_mask(dist, cfg.batch_size, cache.seq_len, gm)
        ids, labels, mask = ids[lo:hi].to(device), labels[lo:hi].to(device), mask[lo:hi].to(device)
        torch.manual_seed(_mix64(cfg.seed, step, 4, rank))  # dropout inside the model
        for grp in opt.param_groups:
            grp["lr"] = learning_rate(cfg, step)
        with autocast(device, cfg.bf16):
            if cfg.arch == "enat":
                res = enat_loss(net, ema.module, ids, labels, mask, gm, mask_id=model.mask_id,
                                label_smoothing=cfg.label_smoothing, reuse_prob=cfg.reuse_prob,
                                rows=(lo, hi, cfg.batch_size))
            else:
                res = nat_loss(net, ids, labels, mask, mask_id=model.mask_id,
                               label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema.update(model, step)
        step += 1
        done_here += 1
        tput.add(cfg.batch_size)
        sums += torch.tensor([float(res.loss.detach()) * float(res.count), float(res.correct), float(res.count)])
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            s = D.all_reduce_mean(sums.clone()) * world
            rec = {"step": step, "loss": float(s[0] / s[2]), "masked_acc": float(s[1] / s[2]),
                   "lr": learning_rate(cfg, step - 1), "grad_norm": float(gnorm),
                   "samples_per_s": tput.rate(), "epoch": step * cfg.batch_size / len(cache)}
            log.write(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['masked_acc']:.3f}",
                            sps=f"{rec['samples_per_s']:.0f}")
            sums.zero_()
        if step % cfg.ckpt_every == 0 or step == cfg.max_steps:
            if D.is_main():
                save_checkpoint(out, model=model.state_dict(), ema=ema.shadow, optimizer=opt, step=step)
            D.barrier()
        if stop_after is not None and done_here >= stop_after:
            bar.close()
            return out
    bar.close()
    if D.is_main():
        tok = {"name": cache.manifest["tokenizer_name"], "identity": cache.manifest["tokenizer_identity"],
               "grid": cache.manifest["grid"]}
        training = {**config_to_dict(cfg), "class_names": cache.manifest.get("class_names", []),
                    "wall_seconds_last_run": round(time.time() - t_start, 1)}
        export_model(model, ema.shadow, out, tok, training)
        log.write({"step": step, "done": True, "wall_seconds": time.time() - t_start})
    D.barrier()
    return out


def export_model(model: torch.nn.Module, ema_state: dict, out: Path, tokenizer: dict, training: dict,
                 fp16: bool = False) -> None:
    """Write the EMA weights + config.json into `out` (the training directory is a model directory).
    Each file is replaced atomically; weights first, so a config.json always has its weights."""
    tmp_dir = out / ".export"
    save_model(model, tmp_dir, tokenizer=tokenizer, training=training, state=ema_state, fp16=fp16)
    for name in ("model.safetensors", "config.json"):
        (tmp_dir / name).replace(out / name)
    tmp_dir.rmdir()
