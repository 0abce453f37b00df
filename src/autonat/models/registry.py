"""Named model sizes, construction, and save/load of NAT model directories.

A saved model is a directory: `config.json` ({"kind": "nat", "arch", "model": {...},
"tokenizer": {"name", "identity", "grid"}, "training": {...}}) + `model.safetensors` (EMA weights,
optionally stored as fp16 to halve the size; loaded back as fp32).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import config_from_dict, config_to_dict
from ..io import (AtomicDir, AutonatError, atomic_save_tensors, atomic_write_json, dir_identity, load_json)
from .enat import ENAT, ENATConfig
from .uvit import UViT, UViTConfig

ARCHS: dict[str, tuple[type[nn.Module], type]] = {"uvit": (UViT, UViTConfig), "enat": (ENAT, ENATConfig)}

# Named sizes. `tiny` is for tests; `small` is the shipped Fashion-MNIST model (trains in < 1 h on
# 2 CPU cores); `S` / `B` / `L` are the papers' ImageNet sizes for users with GPUs.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "uvit": {
        "tiny": dict(dim=64, depth=3, heads=2),
        "small": dict(dim=256, depth=7, heads=4),
        "S": dict(dim=512, depth=13, heads=8),
        "B": dict(dim=768, depth=13, heads=12),
        "L": dict(dim=768, depth=25, heads=8),
    },
    "enat": {   # new ENATs reuse features the authors' way (measured better here, docs/RESULTS.md)
        "tiny": dict(dim=64, encoder_depth=2, decoder_depth=1, heads=2, reuse_mode="projected"),
        "small": dict(dim=256, encoder_depth=6, decoder_depth=1, heads=4, reuse_mode="projected"),
        "small-d2": dict(dim=256, encoder_depth=6, decoder_depth=2, heads=4, reuse_mode="projected"),
        "S": dict(dim=512, encoder_depth=11, decoder_depth=2, heads=8, reuse_mode="projected"),
        "L": dict(dim=1024, encoder_depth=22, decoder_depth=2, heads=16, reuse_mode="projected"),
    },
}


# The authors' released layouts, as config overrides on top of a size (`autonat convert` uses them;
# `tiny-official` etc. train them from scratch).
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "uvit": {"official": dict(class_norm=True, embed_eps=1e-6, head_detach=True)},
    "enat": {"official": dict(reuse_mode="projected", embed_norm=True, gelu_tanh=True, reuse_hidden_ratio=4.0,
                              reuse_eps=1e-6, final_layer="layernorm", qkv_bias=True, head_detach=True),
             # autonat's first reuse semantics (raw cache), which the shipped ENAT small was trained with
             "raw": dict(reuse_mode="raw")},
}
ALIASES = {"autonat-L": "uvit-L-official"}     # the released AutoNAT-L (ImageNet-256)


def parse_model_name(name: str) -> tuple[str, str, str]:
    """`small` / `uvit-small` -> (uvit, small, ""); `enat-small` -> (enat, small, "");
    `enat-L-official` / `autonat-L` -> (enat | uvit, L, official). Unknown names are an error
    listing the known ones."""
    name = ALIASES.get(str(name), str(name))
    arch, rest = "uvit", name
    for sep in (":", "-"):
        head, _, tail = name.partition(sep)
        if tail and head in ARCHS:
            arch, rest = head, tail
            break
    variant = ""
    for v in VARIANTS[arch]:
        if rest.endswith("-" + v):
            rest, variant = rest[:-len(v) - 1], v
    if rest not in SIZES[arch]:
        known = [s for s in SIZES["uvit"]] + [f"enat-{s}" for s in SIZES["enat"]]
        raise AutonatError(f"unknown model {name!r}; known: {', '.join(known)} (add -official for the "
                           f"authors' layout, e.g. enat-L-official; autonat-L = uvit-L-official)")
    return arch, rest, variant


def canonical_model_name(name: str) -> str:
    """The one spelling of a model name stored in configs: `uvit-small`, `enat-L-official`, ..."""
    arch, size, variant = parse_model_name(name)
    return f"{arch}-{size}" + (f"-{variant}" if variant else "")


def model_config(name: str, **overrides: Any):
    """Config of a named model, with the data-dependent dims (codebook_size, seq_len, num_classes)
    and any other field given as overrides."""
    arch, size, variant = parse_model_name(name)
    return ARCHS[arch][1](**{**SIZES[arch][size], **VARIANTS[arch].get(variant, {}), **overrides})


def build_model(name: str, **overrides: Any) -> nn.Module:
    """A freshly initialised model of a named size (see `model_config`)."""
    cfg = model_config(name, **overrides)
    return ARCHS[parse_model_name(name)[0]][0](cfg)


def build_from_config(arch: str, config) -> nn.Module:
    if arch not in ARCHS:
        raise AutonatError(f"unknown architecture {arch!r}; known: {sorted(ARCHS)}")
    return ARCHS[arch][0](config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def write_model_files(model: nn.Module, path: Path, *, tokenizer: dict | None = None,
                      training: dict | None = None, state: dict[str, torch.Tensor] | None = None,
                      fp16: bool = False) -> None:
    """config.json + model.safetensors of `model` (or of the tensors `state`, e.g. EMA weights)
    into the existing directory `path` (weights first, each file atomically)."""
    state = model.state_dict() if state is None else state
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    cfg = {"kind": "nat", "arch": model.arch, "model": config_to_dict(model.config),
           "tokenizer": tokenizer or {}, "training": training or {},
           "parameters": count_parameters(model), "storage": "fp16" if fp16 else "fp32"}
    atomic_save_tensors(path / "model.safetensors", state)
    atomic_write_json(path / "config.json", cfg)


def save_model(model: nn.Module, path: str | Path, **kwargs) -> None:
    """A model directory at `path`, created atomically (see `write_model_files` for kwargs)."""
    with AtomicDir(path) as tmp:
        write_model_files(model, tmp, **kwargs)


CONFIG_KEYS = {"kind", "arch", "model", "tokenizer", "training", "parameters", "storage"}


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model directory (or shipped name) in eval mode; `.meta` holds its config.json and
    `.identity` a hash of config + weights. Config and weights are checked before use
    (`autonat.weights`)."""
    from ..assets import resolve
    from ..weights import build_and_load
    path = resolve("model", name_or_path)
    meta = load_json(path / "config.json")
    where = f"{path}/config.json"
    if not isinstance(meta, dict):
        raise AutonatError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("kind") != "nat":
        raise AutonatError(f"{path} is not a NAT model directory ({where} has kind {meta.get('kind')!r}, "
                           f"expected 'nat')")
    if meta.get("arch") not in ARCHS:
        raise AutonatError(f"{where}: unknown architecture {meta.get('arch')!r}; known: {sorted(ARCHS)}")
    unknown = sorted(set(meta) - CONFIG_KEYS)
    if unknown:
        raise AutonatError(f"{where}: unknown top-level key(s) {unknown}; known: {sorted(CONFIG_KEYS)}")
    if not isinstance(meta.get("model"), dict):
        raise AutonatError(f"{where}: lacks its 'model' section (the architecture's fields)")
    cls, cfg_cls = ARCHS[meta["arch"]]
    cfg = config_from_dict(cfg_cls, meta["model"], what=f"{where} 'model'")
    model = build_and_load(cls, cfg, path / "model.safetensors", what=str(path))
    model.meta = meta
    model.identity = dir_identity(path)
    model.source = str(name_or_path)
    return model.to(device).eval()


def inference_chunk(device: torch.device | str) -> int | None:
    """Rows per model call when sampling: 32 sequences on CPU (activations stay in cache; measured
    ~1.7x faster than batches of 250 here), no chunking on GPUs."""
    return 32 if torch.device(device).type == "cpu" else None
