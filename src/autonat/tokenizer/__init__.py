"""Tokenizers: images <-> token ids.

Two kinds, both loaded by `load(name_or_path)` (it reads `kind` from the directory's config.json):
  tokenizer       autonat's VQ tokenizer (`Tokenizer`; the shipped `fashion-mnist` one)
  maskgit-vqgan   the MaskGIT-architecture VQGAN of the authors' released models (`MaskGITVQGAN`,
                  made by `autonat convert`)
Both have the same interface: encode, decode, codebook_size, num_tokens, config.grid_size,
config.image_size, config.channels, config.factor, identity, save_pretrained.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .maskgit_vqgan import MaskGITVQGAN, MaskGITVQGANConfig
from .model import Tokenizer, TokenizerConfig
from .quantizer import VectorQuantizer

KINDS = {"tokenizer": Tokenizer, "maskgit-vqgan": MaskGITVQGAN}


def load(name_or_path: str | Path = "fashion-mnist", device: str | torch.device = "cpu"):
    """A tokenizer by shipped name (``fashion-mnist``) or directory, of whichever kind it is."""
    from ..assets import resolve
    from ..io import AutonatError, load_json
    path = resolve("tokenizer", name_or_path)
    meta = load_json(path / "config.json")
    kind = meta.get("kind", "tokenizer") if isinstance(meta, dict) else None
    if kind not in KINDS:
        raise AutonatError(f"{path} is not a tokenizer directory (config.json kind {kind!r}; "
                           f"known: {', '.join(KINDS)})")
    return KINDS[kind].from_pretrained(path, device)


__all__ = ["Tokenizer", "TokenizerConfig", "MaskGITVQGAN", "MaskGITVQGANConfig", "VectorQuantizer", "load"]
