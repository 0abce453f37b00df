"""`autonat sample` as a library call: `generate_to_dir(SampleConfig(...), out) -> summary`.

Writes into `out`: one PNG per image (`00000.png`, ...), `grid.png` (one column per class,
upscaled so 28-pixel images can be judged; one column per prompt for a text model),
`tokens.npz` (tokens + labels, + prompts), `summary.json`, and
with `trace`: `trace.json` (every step's canvas and mask, the strategy and where it came from) and
`strip.png` (the canvas after every step). Everything is checked and sampled first, then the
directory is created atomically, so an error leaves `out` as it was.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import config_to_dict, opt, validate
from .io import AtomicDir, AutonatError, atomic_write_bytes, atomic_write_json


@dataclass(frozen=True)
class SampleConfig:
    """What to sample (saved as summary.json next to the images)."""
    model: str = opt("fashion-mnist", "shipped name or model directory")
    tokenizer: str = opt("", "shipped name or directory (default: the model's)")
    strategy: str = opt("maskgit", "maskgit[:LAMBDA,K] | halton[:W,M0,M1] | enat | autonat (the strategy "
                                   "searched for this model) | autonat-imagenet-t8 | PATH.json/.yaml")
    steps: int = opt(8, "decoding steps T", min=1, max=4096)
    guidance: float | None = opt(None, "override s(t) with this constant (default: the strategy's)", min=0.0,
                                 max=1000.0)
    classes: str = opt("", "comma-separated class ids or names, 'null' = unconditional (default: all "
                           "classes, round-robin)")
    prompt: str = opt("", "a text prompt for a text-conditional model (every image; several: --prompts)")
    prompts: str = opt("", "a UTF-8 file of prompts, one per line, used round-robin (text-conditional models)")
    n: int = opt(64, "number of images", min=1, max=1_000_000, aliases=("--num-samples",))
    seed: int = opt(0, "sampling seed", min=0, max=2**63 - 1)
    batch_size: int = opt(256, "images per sampling batch", min=1)
    trace: bool = opt(False, "also write trace.json and a decoding strip (strip.png)")
    reuse: bool = opt(True, "ENAT: reuse features across steps (--no-reuse recomputes every step)")
    grid_scale: int = opt(0, "pixel upscaling of grid.png (0 = automatic: at least 112 px per image)", min=0, max=64)
    bf16: bool = opt(True, "sample in bf16")
    device: str = opt("auto", "auto (CUDA if available), cpu, cuda, cuda:N")

    def __post_init__(self):
        validate(self)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def check_out_dir(out: str | Path, marker: str = "summary.json") -> Path:
    """`out` must be new, empty, or an earlier output of the same command (it holds `marker`),
    and its parent writable - checked before any work, since the output is replaced as a whole."""
    import os
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AutonatError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise AutonatError(f"--out {out} already holds other files; choose a new or empty directory "
                           f"(it is replaced as a whole)")
    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise AutonatError(f"--out {out}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise AutonatError(f"--out {out}: {parent} is not writable")
    return out


def _prompts(cfg: SampleConfig) -> list[str]:
    """The prompts of --prompt and --prompts FILE (one per line, blank lines ignored)."""
    from .text.alignment import read_prompt_file
    return ([cfg.prompt] if cfg.prompt else []) + (read_prompt_file(cfg.prompts) if cfg.prompts else [])


def generate_to_dir(cfg: SampleConfig, out: str | Path, show_progress: bool = True) -> dict:
    """Sample `cfg.n` images and write them to `out` (see module docstring); returns the summary."""
    from .pipeline import Pipeline
    from .images import grid_image, strip_image
    out = check_out_dir(out)
    prompts = _prompts(cfg)
    pipe = Pipeline.from_pretrained(cfg.model, tokenizer=cfg.tokenizer or None, device=cfg.device)
    if pipe.bundle.is_text:
        if cfg.classes:
            raise AutonatError(f"{cfg.model} is conditioned on text prompts, not classes; pass --prompt TEXT "
                               "or --prompts FILE")
        kw = {"prompt": pipe.bundle.conditioner.parse(prompts or None, cfg.n)}
    else:
        if prompts:
            raise AutonatError(f"{cfg.model} is conditioned on class labels, not text prompts; pass --classes")
        kw = {"class_labels": pipe.bundle.conditioner.parse(cfg.classes or None, cfg.n)}
    t0 = time.perf_counter()
    res = pipe(num_steps=cfg.steps, strategy=cfg.strategy, guidance=cfg.guidance,
               generator=torch.Generator().manual_seed(cfg.seed), return_trace=cfg.trace,
               batch_size=cfg.batch_size, bf16=cfg.bf16, reuse=cfg.reuse, progress=show_progress, **kw)
    labels = res.labels
    names = res.prompts if res.prompts is not None else pipe.class_names
    seconds = time.perf_counter() - t0
    st = res.strategy
    summary = {"out": str(out), "n": cfg.n, "steps": st.steps, "strategy": st.name or "custom",
               "strategy_source": st.source or f"preset {cfg.strategy}", "rounding": st.rounding,
               "order": st.order, "model": str(cfg.model), "seconds": round(seconds, 3),
               "images_per_second": round(cfg.n / seconds, 2), "masked_counts": res.masked_counts,
               "config": config_to_dict(cfg)}
    with AtomicDir(out) as tmp:
        for i, img in enumerate(res.images):
            atomic_write_bytes(tmp / f"{i:05d}.png", _png(img))
        per_class = len(set(labels)) if len(set(labels)) <= 20 else 10
        atomic_write_bytes(tmp / "grid.png", _png(grid_image(res.images, labels, names,
                                                             ncol=min(per_class, len(res.images)),
                                                             scale=cfg.grid_scale)))
        buf = io.BytesIO()
        np.savez(buf, tokens=res.tokens.numpy(), labels=np.asarray(labels),
                 **({"prompts": np.asarray(res.prompts)} if res.prompts is not None else {}))
        atomic_write_bytes(tmp / "tokens.npz", buf.getvalue())
        if cfg.trace:
            trace = {"masked_counts": res.masked_counts, "strategy": st.to_dict(),
                     "strategy_source": summary["strategy_source"], "labels": labels,
                     **({"prompts": res.prompts} if res.prompts is not None else {}),
                     "steps": [{"ids": s["ids"].tolist(), "mask": s["mask"].int().tolist()} for s in res.trace]}
            atomic_write_bytes(tmp / "trace.json", json.dumps(trace).encode())
            atomic_write_bytes(tmp / "strip.png", _png(strip_image(pipe, res, rows=min(4, cfg.n))))
        atomic_write_json(tmp / "summary.json", summary)
    return summary
