"""The user's front door (diffusers conventions):

    pipe = autonat.Pipeline.from_pretrained("fashion-mnist")          # or a directory
    out = pipe(class_labels=["Coat", 3, 7], num_steps=8, strategy="autonat",
               generator=torch.Generator().manual_seed(0))
    out.images   # list of PIL images;  out.tokens  # LongTensor [B, h, w]

A model directory is self-contained: `config.json` + `model.safetensors`, its tokenizer in
`tokenizer/` and the strategies searched for it in `strategies/T*.json` (what `strategy="autonat"`
selects by number of steps). It loads from any working directory after being moved or copied.
Older directories that only name their tokenizer (a shipped name or a path) still load: the path
is tried relative to the model directory, then as given, and the tokenizer's identity must match.
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
from .io import AutonatError, AtomicDir, load_json
from .jobs import autocast, pick_device, progress
from .models.registry import inference_chunk, load_model, write_model_files
from .presets import resolve_strategy
from .sampling import sample
from .strategy import Strategy
from .tokenizer import load as load_tokenizer


@dataclass
class PipelineOutput:
    images: list[Image.Image]
    tokens: torch.Tensor                 # [B, h, w]
    labels: list[int]                    # class id of every image (num_classes = unconditional)
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


def parse_classes(spec: Sequence[int | str] | str | torch.Tensor | None, class_names: Sequence[str],
                  num_classes: int, n: int | None = None) -> list[int]:
    """Class ids from ids, names (case-insensitive) or 'null' (unconditional), e.g. "Coat,3,null";
    `n` repeats them round-robin to n entries (None: as given; no spec: every class)."""
    if spec is None:
        chosen = list(range(num_classes))
    else:
        items = spec.split(",") if isinstance(spec, str) else spec.tolist() if torch.is_tensor(spec) else list(spec)
        lower = [c.lower() for c in class_names]
        chosen = []
        for item in items:
            tok = item.strip() if isinstance(item, str) else item
            if isinstance(tok, str) and tok == "":
                continue
            if isinstance(tok, str) and tok.lower() in ("null", "none", "uncond"):
                chosen.append(num_classes)
            elif isinstance(tok, str) and tok.lower() in lower:
                chosen.append(lower.index(tok.lower()))
            elif isinstance(tok, str) and tok.lstrip("-").isdigit() or (isinstance(tok, int) and not isinstance(tok, bool)):
                k = int(tok)
                if not 0 <= k <= num_classes:
                    raise AutonatError(f"class id {k} out of range [0, {num_classes}] ({num_classes} = unconditional)")
                chosen.append(k)
            else:
                raise AutonatError(f"unknown class {tok!r}; classes: {', '.join(class_names) or num_classes}")
        if not chosen:
            raise AutonatError("no classes given")
    return chosen if n is None else [chosen[i % len(chosen)] for i in range(n)]


def _model_tokenizer(model, model_dir: Path | None, device):
    """The tokenizer a model was trained with (see module docstring)."""
    if model_dir is not None and (model_dir / "tokenizer" / "config.json").is_file():
        return load_tokenizer(model_dir / "tokenizer", device)
    ref = model.meta.get("tokenizer", {}).get("name")
    if not ref:
        raise AutonatError(f"model {model.source!r} does not record its tokenizer; pass --tokenizer")
    candidates = [ref] if ref in SHIPPED["tokenizer"] else \
        [p for p in ([model_dir / ref] if model_dir else []) + [Path(ref)] if (Path(p) / "config.json").is_file()]
    if not candidates:
        raise AutonatError(f"model {model.source!r} names tokenizer {ref!r}, which is neither inside the model "
                           f"directory nor found from here; pass --tokenizer, or re-export the model with "
                           f"`autonat export` to make it self-contained")
    return load_tokenizer(candidates[0], device)


class Pipeline:
    """Model + tokenizer (+ searched strategies): class labels -> images."""

    def __init__(self, model, tokenizer, strategies_dir: Path | None = None,
                 class_names: Sequence[str] | None = None, name: str = ""):
        check_pair(model, tokenizer)
        self.model, self.tokenizer = model, tokenizer
        self.strategies_dir = strategies_dir
        names = class_names or getattr(model, "meta", {}).get("training", {}).get("class_names") or []
        self.class_names = list(names) or [str(i) for i in range(model.null_label)]
        self.name = name
        self._twin: tuple | None = None      # (key, inference model) for the current weights

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
        device = pick_device(device)
        name = str(name_or_path)
        path = Path(name_or_path)
        if name not in SHIPPED["model"] and (path / "pipeline.json").is_file():   # save_pretrained layout
            meta = load_json(path / "pipeline.json")
            model = load_model(path / "model", device)
            tok = load_tokenizer(tokenizer or path / "tokenizer", device)
            sdir = path / "strategies"
            return cls(model, tok, sdir if sdir.is_dir() else None, meta.get("class_names"), meta.get("name", name))
        model = load_model(name_or_path, device)
        model_dir = None if name in SHIPPED["model"] else resolve("model", name_or_path)
        if tokenizer is not None:
            tok = load_tokenizer(tokenizer, device)
        elif name in MODEL_TOKENIZER:
            tok = load_tokenizer(MODEL_TOKENIZER[name], device)
        else:
            tok = _model_tokenizer(model, model_dir, device)
        sdir = shipped_path("strategies", name) if name in SHIPPED["model"] else model_dir / "strategies"
        return cls(model, tok, sdir, name=name)

    def save_pretrained(self, path: str | Path) -> None:
        """A self-contained model directory: weights + config, `tokenizer/`, `strategies/`.
        Written atomically (an error leaves `path` as it was)."""
        meta = self.model.meta
        with AtomicDir(path) as tmp:
            training = {**meta.get("training", {}), "class_names": self.class_names}
            write_model_files(self.model, tmp, tokenizer={**meta.get("tokenizer", {}), "name": "tokenizer",
                                                          "identity": self.tokenizer.identity},
                              training=training)
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            if self.strategies_dir is not None and Path(self.strategies_dir).is_dir():
                (tmp / "strategies").mkdir()
                for f in Path(self.strategies_dir).glob("T*.json"):
                    shutil.copy(f, tmp / "strategies" / f.name)

    def strategy(self, spec: str | Strategy, num_steps: int | None) -> Strategy:
        """A preset, a file, or `autonat` = the strategy searched for this model (see `presets`)."""
        return resolve_strategy(spec, num_steps, strategies_dir=self.strategies_dir,
                                model=self.name or getattr(self.model, "source", "this model"))

    def inference_model(self, bf16: bool, reuse: bool = True):
        """The model to sample with, cached for the current weights: any in-place change of a
        parameter (an optimizer step, load_state_dict) bumps its version and rebuilds the copy."""
        key = (bf16, reuse, tuple(p._version for p in self.model.parameters()))
        if self._twin is None or self._twin[0] != key:
            m = self.model if reuse else self.model.without_reuse()
            self._twin = (key, m.for_inference(bf16))
        return self._twin[1]

    # -- generation -----------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(self, class_labels: Sequence[int | str] | torch.Tensor | str, num_steps: int = 8,
                 strategy: str | Strategy = "maskgit", guidance: float | None = None,
                 generator: torch.Generator | None = None, return_trace: bool = False,
                 batch_size: int = 256, bf16: bool | None = None, reuse: bool = True,
                 progress: bool = True) -> PipelineOutput:
        """One image per entry of `class_labels` (ids, class names, or 'null' / `num_classes` for
        unconditional)."""
        labels = parse_classes(class_labels, self.class_names, self.num_classes)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise AutonatError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        st = self.strategy(strategy, num_steps)
        if guidance is not None:
            if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
                    or guidance < 0 or not math.isfinite(guidance):
                raise AutonatError(f"guidance must be a finite number >= 0, got {guidance!r}")
            st = st.with_guidance(guidance)
        if st.steps > self.model.seq_len:
            raise AutonatError(f"{st.steps} steps for {self.model.seq_len} tokens: the number of steps "
                               f"must be <= the number of tokens")
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        model = self.inference_model(True if bf16 is None else bf16, reuse)
        lab = torch.tensor(labels, dtype=torch.long)
        ids, trace, counts = [], [], []
        batches = range(0, len(labels), batch_size)
        bar = _bar(len(batches) * st.steps, progress and len(labels) > 1, len(labels))
        for s in batches:
            out = sample(model, st, lab[s:s + batch_size].to(self.device), generator, trace=return_trace,
                         chunk=inference_chunk(self.device), on_step=lambda t: bar.update(1))
            ids.append(out.ids)
            counts = out.masked_counts
            if return_trace:
                trace.append(out.trace)
        bar.close()
        ids = torch.cat(ids)
        with autocast(self.device, True if bf16 is None else bf16):
            images = self.tokenizer.decode(ids)
        steps = [{k: torch.cat([t[i][k] for t in trace]) for k in trace[0][0]} for i in range(st.steps)] \
            if return_trace else []
        g = self.tokenizer.config.grid_size
        return PipelineOutput(to_pil(images.float()), ids.view(-1, g, g).cpu(), labels, counts, st, steps)

    def decode_canvas(self, ids: torch.Tensor, mask: torch.Tensor) -> list[Image.Image]:
        """Images of partially decoded canvases ([MASK] positions drawn as mid-grey)."""
        filled = torch.where(mask, torch.zeros_like(ids), ids)
        imgs = self.tokenizer.decode(filled.to(self.device)).float().cpu()
        f = self.tokenizer.config.factor
        g = self.tokenizer.config.grid_size
        m = mask.view(-1, 1, g, g).float().repeat_interleave(f, 2).repeat_interleave(f, 3)
        m = m[..., :imgs.shape[-2], :imgs.shape[-1]]
        return to_pil(imgs * (1 - m) + 0.5 * m)


def _bar(total_steps: int, show: bool, n: int):
    """Progress over every decoding step of every batch (a single batch still shows its steps)."""
    return progress(total=total_steps, desc=f"sampling {n} images (decoding steps)", disable=not show)


__all__ = ["Pipeline", "PipelineOutput", "parse_classes", "to_pil"]
