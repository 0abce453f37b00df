"""A model bundle: everything sampling a trained NAT needs, loaded once from a shipped name or a
directory, and checked to belong together.

    bundle = Bundle.load("fashion-mnist")            # or a model directory, or a saved pipeline
    bundle.model, bundle.tokenizer                   # the NAT and the tokenizer it was trained on
    bundle.conditioner                               # user input <-> Condition (class names/ids)
    bundle.strategy("autonat", 8)                    # presets, files, or the strategies searched for it
    bundle.inference_model(bf16=True)                # the copy to sample with (cached per weights)

A diffusers aMUSEd pipeline directory (model_index.json) loads too, through `autonat.muse`.
A model directory is self-contained: `config.json` + `model.safetensors`, its tokenizer in
`tokenizer/`, a text-conditional model's text encoder in `text_encoder/`, and the strategies
searched for it in `strategies/T*.json` (what `autonat` selects by number of steps).
Directories that only name their tokenizer (a shipped name or a path) still
load: the path is tried relative to the model directory, then as given, and the tokenizer's
identity must match the one recorded at training (the same holds for a text encoder recorded by
its directory or hub id). `save` writes the self-contained layout.

The pipeline, evaluation, the search, `autonat bench`, `autonat convert` and the demo all load
through here; nothing above this layer re-implements the pairing check or strategy resolution.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from .assets import MODEL_TOKENIZER, SHIPPED, resolve, shipped_path
from .conditioning import ClassConditioner
from .io import AtomicDir, AutonatError
from .jobs import pick_device
from .models.registry import load_model, write_model_files
from .presets import resolve_strategy
from .sampling import check_steps
from .strategy import Strategy
from .tokenizer import load as load_tokenizer

if TYPE_CHECKING:
    from .text.conditioner import TextConditioner


def check_pair(model, tokenizer) -> None:
    """Refuse a model/tokenizer pair that was not trained together."""
    want = getattr(model, "meta", {}).get("tokenizer", {}).get("identity")
    if want and tokenizer.identity and want != tokenizer.identity:
        raise AutonatError(f"model was trained on tokens of tokenizer {want} "
                           f"({model.meta['tokenizer'].get('name')!r}) but tokenizer "
                           f"{tokenizer.identity} was given; pass the matching --tokenizer")
    if tokenizer.codebook_size != model.codebook_size or tokenizer.num_tokens != model.seq_len:
        raise AutonatError(f"model expects {model.seq_len} tokens from a {model.codebook_size}-code "
                           f"codebook; tokenizer gives {tokenizer.num_tokens} from {tokenizer.codebook_size}")


def conditioner_for(model, class_names: Sequence[str] | None = None, model_dir: Path | None = None):
    """How a model is conditioned, from its config: class names from its training record, or the
    text encoder it was trained with (see module docstring)."""
    if _is_text(model):
        return _text_conditioner(model, model_dir)
    names = class_names or getattr(model, "meta", {}).get("training", {}).get("class_names") or ()
    return ClassConditioner(model.config.num_classes, tuple(names))


def _is_text(model) -> bool:
    return getattr(model.config, "condition", "class") == "text"


def _text_conditioner(model, model_dir: Path | None):
    from .text.conditioner import TextConditioner
    from .text.encoders import load_checked
    rec = getattr(model, "meta", {}).get("training", {}).get("text_encoder") or {}
    inside = model_dir / "text_encoder" if model_dir is not None else None
    spec = str(inside) if inside is not None and inside.is_dir() else rec.get("spec")
    if not spec:
        raise AutonatError(f"text model {getattr(model, 'source', '')!r} records no text encoder and holds no "
                           "text_encoder/ directory")
    enc = load_checked(spec, rec.get("identity"), "the model")
    if (enc.max_length, enc.dim) != (model.config.text_len, model.config.text_dim):
        raise AutonatError(f"text encoder {spec} gives {enc.max_length} x {enc.dim} states; the model takes "
                           f"{model.config.text_len} x {model.config.text_dim}")
    return TextConditioner(enc)


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


@dataclass
class Bundle:
    """Model + tokenizer + conditioner + installed strategies (see module docstring)."""
    model: torch.nn.Module
    tokenizer: torch.nn.Module
    conditioner: "ClassConditioner | TextConditioner" = None
    strategies_dir: Path | None = None
    name: str = ""
    _twin: tuple | None = field(default=None, repr=False)   # (key, inference model) of the current weights

    def __post_init__(self):
        check_pair(self.model, self.tokenizer)
        if self.conditioner is None:      # a model loaded from a directory may hold its text encoder there
            src = Path(str(getattr(self.model, "source", "") or "."))
            self.conditioner = conditioner_for(self.model, model_dir=src if src.is_dir() and str(src) != "." else None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_text(self) -> bool:
        """Conditioned on text prompts (else on class labels)."""
        return _is_text(self.model)

    @property
    def class_names(self) -> list[str]:
        return [] if self.is_text else list(self.conditioner.class_names)

    # -- loading / saving ---------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path = "fashion-mnist", tokenizer: str | Path | None = None,
             device: str | torch.device = "cpu") -> "Bundle":
        """A shipped model name or a model directory (e.g. one written by `save`)."""
        device = pick_device(device)
        name = str(name_or_path)
        from .muse.amused import HUB_PREFIX, hub_amused_dir, is_amused_dir, refuse_other_pipeline
        if name.startswith(HUB_PREFIX):      # hf:amused/amused-256, fetched or from the local cache
            name = str(hub_amused_dir(name))
        refuse_other_pipeline(name)
        if is_amused_dir(name):               # a diffusers aMUSEd pipeline directory (autonat.muse)
            if tokenizer is not None:
                raise AutonatError(f"{name} is an aMUSEd pipeline: it brings its own VQ-VAE (no --tokenizer)")
            from .muse.amused import load_amused
            model, tok, conditioner, sdir, name = load_amused(name, device)
            return cls(model, tok, conditioner, sdir, name=name)
        model = load_model(name_or_path, device)
        model_dir = None if name in SHIPPED["model"] else resolve("model", name_or_path)
        if tokenizer is not None:
            tok = load_tokenizer(tokenizer, device)
        elif name in MODEL_TOKENIZER:
            tok = load_tokenizer(MODEL_TOKENIZER[name], device)
        else:
            tok = _model_tokenizer(model, model_dir, device)
        sdir = shipped_path("strategies", name) if name in SHIPPED["model"] else model_dir / "strategies"
        # a shipped text model carries its text encoder in its own assets directory
        text_dir = shipped_path("model", name) if name in SHIPPED["model"] else model_dir
        return cls(model, tok, conditioner_for(model, model_dir=text_dir), sdir, name=name)

    def save(self, path: str | Path, strategies: Sequence[Strategy] = (), strategy_extra: dict | None = None) -> None:
        """A self-contained model directory: weights + config, `tokenizer/`, `strategies/` (the
        installed ones, plus `strategies` as `T{steps}.json` with `strategy_extra` metadata).
        Written atomically (an error leaves `path` as it was)."""
        meta = getattr(self.model, "meta", {})
        with AtomicDir(path) as tmp:
            training = {**meta.get("training", {}), "class_names": self.class_names}
            if self.is_text:       # the encoder travels with the model
                self.conditioner.encoder.save_pretrained(tmp / "text_encoder")
                training["text_encoder"] = {**training.get("text_encoder", {}), "spec": "text_encoder"}
            identity = self.tokenizer.identity or self.tokenizer.saved_identity()
            write_model_files(self.model, tmp, tokenizer={**meta.get("tokenizer", {}), "name": "tokenizer",
                                                          "identity": identity},
                              training=training)
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            if self.strategies_dir is not None and Path(self.strategies_dir).is_dir():
                (tmp / "strategies").mkdir()
                for f in Path(self.strategies_dir).glob("T*.json"):
                    shutil.copy(f, tmp / "strategies" / f.name)
            for st in strategies:
                st.save(tmp / "strategies" / f"T{st.steps}.json", extra=strategy_extra)

    # -- what sampling needs --------------------------------------------------------------------
    def strategy(self, spec: str | Strategy, num_steps: int | None, guidance: float | None = None) -> Strategy:
        """A preset, a file, or `autonat` = the strategy searched for this model (see `presets`),
        with the guidance scale overridden by a constant if given; checked to fit the model."""
        st = resolve_strategy(spec, num_steps, strategies_dir=self.strategies_dir,
                              model=self.name or getattr(self.model, "source", "this model"))
        if guidance is not None:
            if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
                    or guidance < 0 or not math.isfinite(guidance):
                raise AutonatError(f"guidance must be a finite number >= 0, got {guidance!r}")
            st = st.with_guidance(guidance)
        check_steps(st.steps, self.model.seq_len)
        return st

    def inference_model(self, bf16: bool = True, reuse: bool = True):
        """The model to sample with, cached for the current weights: any in-place change of a
        parameter (an optimizer step, load_state_dict) bumps its version and rebuilds the copy."""
        key = (bf16, reuse, tuple(p._version for p in self.model.parameters()))
        if self._twin is None or self._twin[0] != key:
            m = self.model if reuse else self.model.without_reuse()
            self._twin = (key, m.for_inference(bf16))
        return self._twin[1]

    @torch.inference_mode()
    def decode_canvas(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Float images [B, C, H, W] of partially decoded canvases ([MASK] positions mid-grey)."""
        filled = torch.where(mask, torch.zeros_like(ids), ids)
        imgs = self.tokenizer.decode(filled.to(self.device)).float().cpu()
        f, g = self.tokenizer.config.factor, self.tokenizer.config.grid_size
        m = mask.view(-1, 1, g, g).float().repeat_interleave(f, 2).repeat_interleave(f, 3)
        m = m[..., :imgs.shape[-2], :imgs.shape[-1]]
        return imgs * (1 - m) + 0.5 * m
