"""The user's front door (diffusers conventions):

    pipe = autonat.Pipeline.from_pretrained("fashion-mnist")          # or a directory
    out = pipe(class_labels=["Coat", 3, 7], num_steps=8, strategy="autonat",
               generator=torch.Generator().manual_seed(0))
    out.images   # list of PIL images;  out.tokens  # LongTensor [B, h, w]

    pipe = autonat.Pipeline.from_pretrained("runs/my-text-model")     # a text-conditional model
    out = pipe(prompt=["red apple", "cat face"], num_steps=8)

What a model directory holds and how it loads is `autonat.bundle`; sampling is the decode driver
(`autonat.decode`). This module turns what a user passes into their inputs and their output into
PIL images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from .bundle import Bundle
from .decode import decode_images
from .io import AutonatError
from .strategy import Strategy


@dataclass
class PipelineOutput:
    images: list[Image.Image]
    tokens: torch.Tensor                 # [B, h, w]
    labels: list[int]                    # class id of every image (num_classes = unconditional);
                                         # for prompts: the index of its prompt in `prompts`
    masked_counts: list[int]
    strategy: Strategy
    trace: list[dict] = field(default_factory=list)   # per step (batch-concatenated), if asked
    prompts: list[str] | None = None     # the distinct prompts, in order of first use (text models)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """uint8 [B, C, H, W] (or float in [0, 1]) -> PIL images (L or RGB)."""
    arr = images if images.dtype == torch.uint8 else images.clamp(0, 1).mul(255).round().to(torch.uint8)
    out = []
    for a in arr.cpu():
        if a.shape[0] == 1:
            out.append(Image.fromarray(a[0].numpy(), mode="L"))
        else:
            out.append(Image.fromarray(a.permute(1, 2, 0).numpy(), mode="RGB"))
    return out


class Pipeline:
    """A model bundle as a callable: class labels (or prompts, for a text model) -> images."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle

    # -- what it holds (see `Bundle`) --------------------------------------------------------------
    model = property(lambda self: self.bundle.model)
    tokenizer = property(lambda self: self.bundle.tokenizer)
    class_names = property(lambda self: self.bundle.class_names)
    num_classes = property(lambda self: self.bundle.conditioner.num_classes)
    device = property(lambda self: self.bundle.device)
    name = property(lambda self: self.bundle.name)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "fashion-mnist", tokenizer: str | Path | None = None,
                        device: str | torch.device = "cpu") -> "Pipeline":
        """A shipped model name (`fashion-mnist`, `fashion-mnist-enat`) or a model directory."""
        return cls(Bundle.load(name_or_path, tokenizer, device))

    def save_pretrained(self, path: str | Path) -> None:
        """A self-contained copy (weights, tokenizer, strategies), written atomically."""
        self.bundle.save(path)

    def strategy(self, spec: str | Strategy, num_steps: int | None, guidance: float | None = None) -> Strategy:
        """A preset, a file, or `autonat` = the strategy searched for this model (see `presets`)."""
        return self.bundle.strategy(spec, num_steps, guidance)

    # -- generation -----------------------------------------------------------------------------
    def __call__(self, class_labels: Sequence[int | str] | torch.Tensor | str | None = None, num_steps: int = 8,
                 strategy: str | Strategy = "maskgit", guidance: float | None = None,
                 generator: torch.Generator | None = None, return_trace: bool = False,
                 batch_size: int = 256, bf16: bool | None = None, reuse: bool = True,
                 progress: bool = True, prompt: str | Sequence[str] | None = None) -> PipelineOutput:
        """One image per entry of `class_labels` (ids, class names, or 'null' / `num_classes` for
        unconditional), or for a text-conditional model per entry of `prompt` ("" = unconditional)."""
        cond = self.bundle.conditioner
        if self.bundle.is_text:
            if class_labels is not None:
                raise AutonatError(f"{self.name or 'this model'} is conditioned on text prompts, not class "
                                   "labels; pass prompt=[...]")
            items = cond.parse(prompt)
            first = {p: i for i, p in enumerate(dict.fromkeys(items))}
            prompts, labels = list(first), [first[p] for p in items]
        else:
            if prompt is not None:
                raise AutonatError(f"{self.name or 'this model'} is conditioned on class labels, not text "
                                   "prompts; pass class_labels=[...]")
            items = labels = cond.parse(class_labels)
            prompts = None
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise AutonatError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        st = self.strategy(strategy, num_steps, guidance)
        bf16 = True if bf16 is None else bf16
        out = decode_images(self.bundle.inference_model(bf16, reuse), self.tokenizer, st, cond.condition(items),
                            generator if generator is not None else torch.Generator().manual_seed(0),
                            batch_size=batch_size, bf16=bf16, trace=return_trace,
                            show_progress=progress and len(labels) > 1)
        g = self.tokenizer.config.grid_size
        return PipelineOutput(to_pil(out.images), out.ids.view(-1, g, g), labels, out.masked_counts, st,
                              out.trace, prompts)

    def decode_canvas(self, ids: torch.Tensor, mask: torch.Tensor) -> list[Image.Image]:
        """Images of partially decoded canvases ([MASK] positions drawn as mid-grey)."""
        return to_pil(self.bundle.decode_canvas(ids, mask))


__all__ = ["Pipeline", "PipelineOutput", "to_pil"]
