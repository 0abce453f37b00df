"""NAT training (`autonat train`): AdamW + warm-up, EMA, gradient clipping, bf16 autocast, condition
dropout for guidance, and DDP under `torchrun`, on the shared skeleton (`autonat.trainer`: run
directory, exact resume, JSONL log, crash-safe checkpoints).

The model owns its objective (`model.training_mask`, `model.training_loss`: the U-ViT masks each
example with its own ratio, ENAT one ratio per batch and trains through its reuse path); this
module never looks at the architecture.

Determinism: everything random about step `s` (which examples, which flip view, mask ratios and
positions, label dropout, the model's own noise and its dropout) is drawn from generators keyed by
(seed, s, stream) - for the *global* batch, of which each rank takes its contiguous slice. A
resumed run therefore replays exactly the steps an uninterrupted one would, and the data order
does not depend on the number of processes.
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed as D
from .assets import SHIPPED
from .checkpoint import save_checkpoint
from .config import config_to_dict, opt, validate
from .io import AutonatError
from .jobs import Throughput, autocast, pick_device
from .masking import ROUNDINGS, Beta, MaskRatioDistribution
from .models.registry import (build_model, canonical_model_name, count_parameters, load_model,
                              save_model)
from .rng import epoch_indices, mix64, step_generator
from .tokens import TokenCache
from .trainer import RunOptions, TrainingRun, lr_at, short_run_warning

SHIPPED_STEPS = 2000         # the shipped small models' training length (for short-run warnings)


@dataclass(frozen=True)
class TrainConfig(RunOptions):
    """How a NAT is trained (saved as train_config.json; part of the model's identity)."""
    tokens: str = opt("", "token cache directory (from `autonat tokenize`)")
    model: str = opt("small", "U-ViT size (tiny, small, S, B, L) or enat-SIZE (enat-tiny, enat-small, ...)")
    mask_dist: MaskRatioDistribution = opt(Beta(12.0, 3.0), "training p(r): beta:A,B | arccos | fixed:R | "
                                                            "uniform[:LO,HI]")
    mask_rounding: str = opt("ceil", "masked count from a ratio: ceil(rN) (paper), round(rN) (authors' "
                                     "training code) or floor(rN)", choices=ROUNDINGS)
    batch_size: int = opt(256, "global batch (split across ranks)", min=1)
    steps: int = opt(10000, "optimizer steps", min=1)
    lr: float = opt(1e-3, "peak learning rate", min=0.0, max=10.0)
    lr_schedule: str = opt("cosine", "after warm-up: cosine decay to 10% or constant (as released)",
                           choices=("cosine", "constant"))
    warmup: int = opt(500, "linear warm-up steps (capped at 10% of the run)", min=0)
    weight_decay: float = opt(0.03, "AdamW weight decay", min=0.0)
    betas: tuple[float, float] = opt((0.9, 0.99), "AdamW betas", min=0.0, max=1.0)
    ema: float = opt(0.0, "EMA decay of the exported weights; 0 = chosen from the run length "
                          "(1 - 5 / steps, within [0.99, 0.9999])", min=0.0, max=0.99999)
    label_smoothing: float = opt(0.1, "label smoothing of the masked-token cross-entropy", min=0.0, max=1.0)
    label_dropout: float = opt(0.15, "probability of the null condition (classifier-free guidance)",
                               min=0.0, max=1.0)
    grad_clip: float = opt(1.0, "gradient-norm clipping", min=0.0)
    hflip: bool = opt(True, "use the mirrored view of the cache (if stored) half of the time")
    text_pool: int = opt(1, "text models: average each k consecutive text-encoder states into one context "
                            "token (fewer tokens for byte-level encoders; 1 = every state)", min=1, max=1 << 12)
    reuse_prob: float = opt(0.5, "ENAT: probability of training through the reuse path", min=0.0, max=1.0)
    init_from: str = opt("", "warm start from a saved model directory (e.g. to extend a finished run)")

    def __post_init__(self):
        validate(self)      # also reads a p(r) given as text (`beta:12,3`) into its object
        # One spelling per model: `small` and `uvit-small` are one run.
        object.__setattr__(self, "model", canonical_model_name(self.model))

    @property
    def ema_decay(self) -> float:
        return self.ema or min(0.9999, max(0.99, 1 - 5 / self.steps))


class EMA:
    """Exponential moving average of the parameters: a frozen fp32 copy of the model in eval
    mode (objectives may run it as a teacher; sampling uses its weights)."""

    def __init__(self, model: torch.nn.Module, decay: float):
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


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "emb" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, show_progress: bool = True,
          log=None) -> Path:
    """Train a NAT on a token cache; returns the output directory (a loadable model directory)."""
    out = Path(out)
    device = D.local_device(pick_device(cfg.device))
    D.init_from_env(device)
    rank, world = D.rank(), D.world_size()
    if cfg.batch_size % world:
        raise AutonatError(f"global batch {cfg.batch_size} is not divisible by {world} processes")
    cache = TokenCache.open(cfg.tokens)
    if cfg.batch_size > len(cache):
        raise AutonatError(f"batch_size (--batch-size) {cfg.batch_size} exceeds the {len(cache)} "
                           f"examples of {cfg.tokens}")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, codebook_size=cache.codebook_size, seq_len=cache.seq_len,
                        **_condition_overrides(cfg.model, cache, cfg.text_pool)).to(device)
    text_encoder = _text_encoder(cache) if D.is_main() else None   # checked now, copied into the model at the end
    run = TrainingRun(out, config_to_dict(cfg), cfg, steps=cfg.steps, resume=resume, desc=f"train {cfg.model}",
                      show_progress=show_progress)
    run.check()
    if cfg.init_from and not resume:
        init = load_model(cfg.init_from)
        if init.config != model.config:
            raise AutonatError(f"--init-from {cfg.init_from}: its architecture differs from {cfg.model} "
                               f"on this token cache")
        model.load_state_dict(init.state_dict())
    opt_ = _optimizer(model, cfg)
    ema = EMA(model, cfg.ema_decay)
    note = short_run_warning(cfg.steps, SHIPPED_STEPS, "train")
    if note and D.is_main():
        (log or _stderr)(f"warning: {note}")
    ck = run.start()
    step = run.restore(ck, model, opt_)
    if ck is not None:
        ema.load(ck["ema"])
    else:
        run.log.write({"step": 0, "parameters": count_parameters(model), "world_size": world,
                       "config": config_to_dict(cfg), "ema_decay": ema.decay})
    # A model whose objective leaves parameters unused on some steps (ENAT's two paths) says so.
    net = torch.nn.parallel.DistributedDataParallel(
        model, find_unused_parameters=not model.trains_all_parameters) if D.is_distributed() else model
    tput = Throughput()
    sums = torch.zeros(3)  # loss * count, correct, count since last log
    per_rank = cfg.batch_size // world
    lo, hi = rank * per_rank, (rank + 1) * per_rank
    t_start = time.time()
    model.train()
    with run.loop(step):
        while step < cfg.steps:
            # 1. the global batch of this step and its condition dropout / flip views
            idx = epoch_indices(len(cache), cfg.batch_size, step, cfg.seed)
            g = step_generator(cfg.seed, step, 2)
            views = (torch.rand(len(idx), generator=g) < 0.5).long() if cfg.hflip and cache.tokens.shape[1] > 1 \
                else torch.zeros(len(idx), dtype=torch.long)
            # a captioned cache: one of each image's captions, from its own stream (so class runs
            # draw exactly what they drew before captions existed)
            caption = torch.rand(len(idx), generator=step_generator(cfg.seed, step, 5)) if cache.text else None
            ids, cond = cache.batch(idx, views, caption)
            cond = cond.dropped(torch.rand(len(cond), generator=g) < cfg.label_dropout)
            # 2. masks for the global batch (the model's rule), then this rank's slice
            gm = step_generator(cfg.seed, step, 3)
            mask = model.training_mask(cfg.mask_dist, cfg.batch_size, gm, cfg.mask_rounding)
            ids, cond, mask = ids[lo:hi].to(device), cond.rows(lo, hi).to(device), mask[lo:hi].to(device)
            torch.manual_seed(mix64(cfg.seed, step, 4, rank))  # dropout inside the model
            for grp in opt_.param_groups:
                grp["lr"] = lr_at(step, lr=cfg.lr, warmup=cfg.warmup, steps=cfg.steps, schedule=cfg.lr_schedule)
            # 3. the model's objective, through the DDP wrapper so gradients are synchronised
            with autocast(device, cfg.bf16):
                res = model.training_loss(ids, cond, mask, gm, forward=net, teacher=ema.module,
                                          label_smoothing=cfg.label_smoothing, reuse_prob=cfg.reuse_prob,
                                          rows=(lo, hi, cfg.batch_size))
            opt_.zero_grad(set_to_none=True)
            res.loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt_.step()
            ema.update(model, step)
            step += 1
            tput.add(cfg.batch_size)
            sums += torch.tensor([float(res.loss.detach()) * float(res.count), float(res.correct), float(res.count)])
            if run.log_due(step):
                s = D.all_reduce_mean(sums.clone()) * world
                rec = {"step": step, "loss": float(s[0] / s[2]), "masked_acc": float(s[1] / s[2]),
                       "lr": lr_at(step - 1, lr=cfg.lr, warmup=cfg.warmup, steps=cfg.steps,
                                   schedule=cfg.lr_schedule),
                       "grad_norm": float(gnorm), "samples_per_s": tput.rate(),
                       "epoch": step * cfg.batch_size / len(cache)}
                run.log.write(rec)
                run.advance(1, loss=f"{rec['loss']:.3f}", acc=f"{rec['masked_acc']:.3f}",
                            sps=f"{rec['samples_per_s']:.0f}")
                sums.zero_()
            else:
                run.advance(1)
            run.end_step(step, lambda: save_checkpoint(out, model=model.state_dict(), ema=ema.shadow,
                                                       optimizer=opt_, step=step))
    if D.is_main():
        ref = cache.tokenizer_ref()
        inside = ref not in SHIPPED["tokenizer"] and (Path(ref) / "config.json").is_file()
        tok = {"name": "tokenizer" if inside else ref, "identity": cache.manifest["tokenizer_identity"],
               "grid": cache.manifest["grid"]}
        training = {**config_to_dict(cfg), "class_names": cache.manifest.get("class_names", []),
                    "wall_seconds_last_run": round(time.time() - t_start, 1)}
        if text_encoder is not None:       # the model directory carries its text encoder, like its tokenizer
            text_encoder.save_pretrained(out / "text_encoder")
            m = cache.text.manifest
            training["text_encoder"] = {"name": m["encoder"], "identity": m["encoder_identity"],
                                        "spec": "text_encoder", "source": m.get("encoder_spec", "")}
        export_model(model, ema.shadow, out, tok, training, tokenizer_dir=Path(ref) if inside else None)
        run.log.write({"step": step, "done": True, "wall_seconds": time.time() - t_start})
    D.barrier()
    return out


def _text_encoder(cache: TokenCache):
    """The text encoder whose states a captioned cache holds (None for a class cache), loaded from
    where tokenize found it and checked to be the same one."""
    if cache.text is None:
        return None
    from .text.encoders import load_checked
    m = cache.text.manifest
    if not m.get("encoder_spec"):
        raise AutonatError(f"{cache.path}: its caption states do not record where their text encoder is; "
                           "re-run `autonat tokenize`")
    return load_checked(m["encoder_spec"], m.get("encoder_identity"), f"the caption states of {cache.path}")


def _condition_overrides(name: str, cache: TokenCache, text_pool: int = 1) -> dict:
    """What the model is conditioned on, from the cache: its classes, or its captions' text states."""
    if cache.text is None:
        if text_pool != 1:
            raise AutonatError(f"text_pool (--text-pool) {text_pool} applies to text models; {cache.path} "
                               "holds class labels, not captions")
        return {"num_classes": cache.num_classes}
    return {"condition": "text", "text_dim": cache.text.dim, "text_len": cache.text.length,
            "context_pool": text_pool}


def export_model(model: torch.nn.Module, ema_state: dict, out: Path, tokenizer: dict, training: dict,
                 fp16: bool = False, tokenizer_dir: Path | None = None) -> None:
    """Write the EMA weights + config.json into `out` (the training directory is a model directory),
    with a copy of the tokenizer in `out/tokenizer/` (self-contained: it loads from anywhere).
    Each file is replaced atomically; tokenizer and weights first, so a config.json always has them."""
    if tokenizer_dir is not None:
        from .tokenizer import load as load_tokenizer
        tok = load_tokenizer(tokenizer_dir)
        if tok.identity != tokenizer.get("identity"):
            raise AutonatError(f"tokenizer {tokenizer_dir} is not the one that made the token cache")
        tok.save_pretrained(out / "tokenizer")
    tmp_dir = out / ".export"
    save_model(model, tmp_dir, tokenizer=tokenizer, training=training, state=ema_state, fp16=fp16)
    for name in ("model.safetensors", "config.json"):
        (tmp_dir / name).replace(out / name)
    tmp_dir.rmdir()


def check_resume(out: Path, cfg: TrainConfig) -> None:
    """Refuse `cfg` if it is not the configuration of the run in `out` (names the differences)."""
    TrainingRun(out, config_to_dict(cfg), cfg, steps=cfg.steps, resume=True, desc="").check()


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
