"""The user's front door (diffusers conventions):

    pipe = autonat.Pipeline.from_pretrained("fashion-mnist")          # or a directory
    out = pipe(class_labels=[0, 3, 7], num_steps=8, strategy="autonat",
               generator=torch.Generator().manual_seed(0))
    out.images   # list of PIL images;  out.tokens  # LongTensor [B, h, w]

A pipeline directory (`save_pretrained`) holds `pipeline.json`, `model/`, `tokenizer/` and
optionally `strategies/T*.json` (what `strategy="autonat"` selects by number of steps).
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from .assets import MODEL_TOKENIZER, SHIPPED, resolve, shipped_path
from .evaluation import check_pair
from .io import AutonatError, atomic_write_json, load_json
from .jobs import autocast, pick_device, progress
from .models.enat import WithoutReuse
from .models.registry import for_inference, inference_chunk, load_model, save_model
from .sampling import sample
from .strategy import Strategy, resolve_strategy
from .tokenizer import Tokenizer


@dataclass
class PipelineOutput:
    images: list[Image.Image]
    tokens: torch.Tensor                 # [B, h, w]
    masked_counts: list[int]
    strategy: Strategy
    trace: list[dict] = field(default_factory=list)   # per step (batch-concatenated), if asked


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """float [B, C, H, W] in [0, 1] -> PIL images (L or RGB)."""
    arr = images.clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    out = []
    for a in arr:
        if a.shape[0] == 1:
            out.append(Image.fromarray(a[0].numpy(), mode="L"))
        else:
            out.append(Image.fromarray(a.permute(1, 2, 0).numpy(), mode="RGB"))
    return out


class Pipeline:
    """Model + tokenizer (+ searched strategies): class labels -> images."""

    def __init__(self, model, tokenizer: Tokenizer, strategies_dir: Path | None = None,
                 class_names: Sequence[str] | None = None, name: str = ""):
        check_pair(model, tokenizer)
        self.model, self.tokenizer = model, tokenizer
        self.strategies_dir = strategies_dir
        names = class_names or getattr(model, "meta", {}).get("training", {}).get("class_names") or []
        self.class_names = list(names) or [str(i) for i in range(model.null_label)]
        self.name = name

    @property
    def num_classes(self) -> int:
        return self.model.null_label

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- loading / saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "fashion-mnist", tokenizer: str | Path | None = None,
                        device: str | torch.device = "cpu") -> "Pipeline":
        device = pick_device(str(device))
        name = str(name_or_path)
        path = Path(name_or_path)
        if name not in SHIPPED["model"] and (path / "pipeline.json").is_file():
            meta = load_json(path / "pipeline.json")
            model = load_model(path / "model", device)
            tok = Tokenizer.from_pretrained(tokenizer or path / "tokenizer", device)
            sdir = path / "strategies"
            return cls(model, tok, sdir if sdir.is_dir() else None, meta.get("class_names"), meta.get("name", name))
        model = load_model(name_or_path, device)
        if tokenizer is None:
            tokenizer = MODEL_TOKENIZER.get(name) or model.meta.get("tokenizer", {}).get("name")
            if not tokenizer:
                raise AutonatError(f"model {name!r} does not record its tokenizer; pass --tokenizer")
        tok = Tokenizer.from_pretrained(tokenizer, device)
        sdir = shipped_path("strategies", name) if name in SHIPPED["model"] else path / "strategies"
        return cls(model, tok, sdir if sdir is not None and sdir.is_dir() else None, name=name)

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = self.model.meta
        save_model(self.model, path / "model", tokenizer=meta.get("tokenizer"), training=meta.get("training"))
        self.tokenizer.save_pretrained(path / "tokenizer")
        if self.strategies_dir is not None:
            dst = path / "strategies"
            dst.mkdir(exist_ok=True)
            for f in self.strategies_dir.glob("T*.json"):
                shutil.copy(f, dst / f.name)
        atomic_write_json(path / "pipeline.json", {"kind": "pipeline", "name": self.name,
                                                   "class_names": self.class_names})

    def strategy(self, spec: str | Strategy, num_steps: int | None) -> Strategy:
        return resolve_strategy(spec, num_steps, strategies_dir=self.strategies_dir)

    # -- generation -----------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(self, class_labels: Sequence[int] | torch.Tensor, num_steps: int = 8,
                 strategy: str | Strategy = "maskgit", guidance: float | None = None,
                 generator: torch.Generator | None = None, return_trace: bool = False,
                 batch_size: int = 256, bf16: bool | None = None, reuse: bool = True,
                 progress: bool = True) -> PipelineOutput:
        """Generate one image per entry of `class_labels` (use `num_classes` for unconditional)."""
        labels = torch.as_tensor(list(class_labels) if not torch.is_tensor(class_labels) else class_labels,
                                 dtype=torch.long).flatten()
        if labels.numel() == 0:
            raise AutonatError("class_labels is empty")
        if int(labels.min()) < 0 or int(labels.max()) > self.num_classes:
            raise AutonatError(f"class labels must lie in [0, {self.num_classes}] ({self.num_classes} = "
                               f"unconditional); got {labels.tolist()[:8]}")
        st = self.strategy(strategy, num_steps)
        if guidance is not None:
            if guidance < 0 or not math.isfinite(guidance):
                raise AutonatError(f"guidance must be a finite number >= 0, got {guidance}")
            st = st.with_guidance(guidance)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        bf16 = True if bf16 is None else bf16
        model = for_inference(self.model, bf16)
        if not reuse and self.model.arch == "enat":
            model = WithoutReuse(model)
        ids, trace, counts = [], [], []
        batches = range(0, labels.numel(), batch_size)
        for s in _bar(batches, progress and len(batches) > 1):
            out = sample(model, st, labels[s:s + batch_size].to(self.device), generator, trace=return_trace,
                         chunk=inference_chunk(self.device))
            ids.append(out.ids)
            counts = out.masked_counts
            if return_trace:
                trace.append(out.trace)
        ids = torch.cat(ids)
        with autocast(self.device, bf16):
            images = self.tokenizer.decode(ids)
        steps = [{k: torch.cat([t[i][k] for t in trace]) for k in trace[0][0]} for i in range(st.steps)] \
            if return_trace else []
        g = self.tokenizer.config.grid_size
        return PipelineOutput(to_pil(images.float()), ids.view(-1, g, g).cpu(), counts, st, steps)

    def decode_canvas(self, ids: torch.Tensor, mask: torch.Tensor) -> list[Image.Image]:
        """Images of partially decoded canvases ([MASK] positions drawn as mid-grey)."""
        filled = torch.where(mask, torch.zeros_like(ids), ids)
        imgs = self.tokenizer.decode(filled.to(self.device)).float().cpu()
        f = self.tokenizer.config.factor
        g = self.tokenizer.config.grid_size
        m = mask.view(-1, 1, g, g).float().repeat_interleave(f, 2).repeat_interleave(f, 3)
        m = m[..., :imgs.shape[-2], :imgs.shape[-1]]
        return to_pil(imgs * (1 - m) + 0.5 * m)


def _bar(it, show: bool):
    return progress(it, desc="sampling", disable=not show)


__all__ = ["Pipeline", "PipelineOutput", "WithoutReuse", "to_pil", "resolve"]
