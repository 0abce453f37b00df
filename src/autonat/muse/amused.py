"""aMUSEd (the open Muse reproduction in diffusers) behind autonat's model contract.

A diffusers aMUSEd pipeline directory (`model_index.json` with `transformer/` = UVit2DModel,
`vqvae/` = VQModel, `text_encoder/` = CLIPTextModelWithProjection, `tokenizer/`, `scheduler/` =
AmusedScheduler) loads as a `Bundle` (`Bundle.load` calls `load_amused`): the transformer is an `AmusedNAT` (the
decoding half of the contract: `decode_step` gives the logits at the [MASK] positions), the
VQ-VAE an `AmusedVQ` (autonat's tokenizer interface), the CLIP an `AmusedTextEncoder` (states =
the penultimate hidden states, pooled = the projected text embedding, exactly as the pipeline
computes them; padding is attended, as in aMUSEd). Sampling then runs autonat's sampler with any
strategy; the `amused` preset (`autonat.presets.amused`) is the pipeline's own scheduler.

Micro-conditioning (aMUSEd's SDXL-style inputs: image width and height, crop coordinates,
aesthetic score) is a property of the model, `AmusedNAT.micro_conditioning`, defaulting to the
pipeline's (the trained size, crop (0, 0), score 6). Guidance: the pipeline computes
l_u + g (l_c - l_u); autonat's s is g - 1 (the preset keeps the pipeline's arithmetic, form `muse`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from ..conditioning import TextCondition, expect_condition
from ..io import AutonatError
from ..models.layers import gather_positions

COMPONENTS = ("transformer", "vqvae", "text_encoder", "tokenizer", "scheduler")


class _quiet:
    """diffusers' advice logs (accelerate, fp32 modules, deprecation) off while autonat loads or casts."""

    def __enter__(self):
        from diffusers.utils import logging as dlog
        self.old = dlog.get_verbosity()
        dlog.set_verbosity_error()
        self.w = warnings.catch_warnings()
        self.w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        from diffusers.utils import logging as dlog
        self.w.__exit__(*exc)
        dlog.set_verbosity(self.old)


def is_amused_dir(path: str | Path) -> bool:
    """A diffusers pipeline directory whose model_index.json names an aMUSEd pipeline."""
    f = Path(path) / "model_index.json"
    if not f.is_file():
        return False
    try:
        return "Amused" in str(json.loads(f.read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


HUB_PREFIX = "hf:"


def hub_amused_dir(spec: str) -> Path:
    """The local directory of a hub id written `hf:amused/amused-256` (an explicit prefix, so a
    mistyped local path never turns into a download), fetched or found in the local cache with
    huggingface_hub. Offline and not cached, or not an aMUSEd pipeline: a clear error."""
    repo = spec[len(HUB_PREFIX):]
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise AutonatError("a hub id needs huggingface_hub: pip install 'autonat[muse]'") from None
    try:
        local = Path(snapshot_download(spec, allow_patterns=["model_index.json", "*/*.json", "*/*.txt",
                                                             "*/*.safetensors"]))
    except Exception as e:          # offline, unknown repo, no permission: say which
        first = " ".join(str(e).split())[:200] or type(e).__name__
        raise AutonatError(f"{spec}: the hub download failed ({first})") from None
    if not is_amused_dir(local):
        raise AutonatError(f"{spec}: not an aMUSEd pipeline (model_index.json)")
    return local


def refuse_other_pipeline(path: str | Path) -> None:
    """A diffusers pipeline directory of another kind is named as such (not "config.json missing")."""
    f = Path(path) / "model_index.json"
    if f.is_file() and not is_amused_dir(path):
        try:
            kind = json.loads(f.read_text(encoding="utf-8")).get("_class_name", "unknown")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            kind = "unreadable"
        raise AutonatError(f"{path} is a diffusers pipeline directory of class {kind!r}; autonat loads aMUSEd "
                           "pipelines (AmusedPipeline) and its own model directories")


@dataclass(frozen=True)
class AmusedConfig:
    """What autonat needs to know of a loaded aMUSEd (the weights keep their diffusers config)."""
    codebook_size: int
    mask_id: int
    side: int                 # latent grid side; N = side^2 tokens
    pixels: int               # image side (side x the VQ-VAE's scale factor)
    text_len: int
    text_dim: int
    condition: str = "text"


class AmusedNAT(nn.Module):
    """aMUSEd's UVit2DModel as an autonat NAT (decoding only; see module docstring)."""
    arch = "amused"
    trains_all_parameters = True

    def __init__(self, transformer: nn.Module, config: AmusedConfig, source: str = ""):
        super().__init__()
        self.transformer = transformer.eval().requires_grad_(False)
        self.config = config
        self.source = source
        self.meta = {"training": {}, "tokenizer": {}}
        self.micro_conditioning = (config.pixels, config.pixels, 0, 0, 6)
        self.identity = ""

    mask_id = property(lambda self: self.config.mask_id)
    seq_len = property(lambda self: self.config.side ** 2)
    codebook_size = property(lambda self: self.config.codebook_size)

    def set_micro_conditioning(self, width: int | None = None, height: int | None = None,
                               crop: tuple[int, int] = (0, 0), aesthetic_score: float = 6) -> None:
        """aMUSEd's micro-conditioning (the pipeline's arguments of the same names)."""
        w, h = width or self.config.pixels, height or self.config.pixels
        self.micro_conditioning = (w, h, crop[0], crop[1], aesthetic_score)

    def decode_step(self, ids: torch.Tensor, cond: TextCondition, query: torch.Tensor, cache=None):
        """(ids [B, N], prompt states, query [B, M]) -> (logits [B, M, K], None)."""
        expect_condition(cond, TextCondition, "aMUSEd")
        if cond.pooled_emb is None:
            raise AutonatError("aMUSEd needs the prompt's pooled CLIP embedding (encode prompts with its own "
                               "text encoder)")
        b, n = ids.shape
        dtype = self.transformer.dtype
        states = cond.states.to(dtype)
        micro = torch.tensor(self.micro_conditioning, device=ids.device, dtype=states.dtype).expand(b, -1)
        out = self.transformer(ids.view(b, self.config.side, self.config.side), encoder_hidden_states=states,
                               pooled_text_emb=cond.pooled_emb.to(dtype), micro_conds=micro)
        logits = out.reshape(b, self.config.codebook_size, n).permute(0, 2, 1)
        return gather_positions(logits, query), None

    def training_mask(self, *args, **kwargs):
        raise AutonatError("aMUSEd is loaded for sampling and strategy search; train it with diffusers' "
                           "training script")

    training_loss = training_mask

    def without_reuse(self) -> "AmusedNAT":
        return self

    def for_inference(self, bf16: bool) -> "AmusedNAT":
        if not bf16:
            return self
        twin = copy.copy(self)
        with _quiet():
            twin.transformer = copy.deepcopy(self.transformer).to(torch.bfloat16)
        return twin

    def compact(self) -> "AmusedNAT":
        return self


class AmusedVQ(nn.Module):
    """aMUSEd's VQModel with autonat's tokenizer interface (images in [0, 1])."""
    KIND = "amused-vqvae"

    def __init__(self, vqvae: nn.Module, side: int, source: str = ""):
        super().__init__()
        self.vqvae = vqvae.eval().requires_grad_(False)
        c = vqvae.config
        factor = 2 ** (len(c.block_out_channels) - 1)
        self.config = _VQConfig(image_size=side * factor, channels=int(c.out_channels), grid_size=side,
                                factor=factor, codebook_size=int(c.num_vq_embeddings))
        self.identity = ""
        self.source = source

    codebook_size = property(lambda self: self.config.codebook_size)
    num_tokens = property(lambda self: self.config.grid_size ** 2)

    @property
    def codebook_device(self) -> torch.device:
        return next(self.vqvae.parameters()).device

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        g = self.config.grid_size
        tokens = tokens.reshape(-1, g, g).to(self.codebook_device).long()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.codebook_size):
            raise AutonatError(f"token ids must lie in [0, {self.codebook_size}); got range "
                               f"[{int(tokens.min())}, {int(tokens.max())}] (is a [MASK] id left?)")
        shape = (tokens.shape[0], g, g, self.vqvae.config.latent_channels)
        return self.vqvae.decode(tokens, force_not_quantize=True, shape=shape).sample.float().clamp(0, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        s, c = self.config.image_size, self.config.channels
        if images.ndim != 4 or tuple(images.shape[1:]) != (c, s, s):
            raise AutonatError(f"this VQ-VAE expects images [B, {c}, {s}, {s}], got {list(images.shape)}")
        h = self.vqvae.encode(images.to(self.codebook_device)).latents
        idx = self.vqvae.quantize(h)[2][2]
        return idx.view(images.shape[0], self.config.grid_size, self.config.grid_size)

    def save_pretrained(self, path):
        raise AutonatError("an aMUSEd VQ-VAE stays in its diffusers pipeline directory")


@dataclass(frozen=True)
class _VQConfig:
    image_size: int
    channels: int
    grid_size: int
    factor: int
    codebook_size: int


class AmusedTextEncoder:
    """aMUSEd's CLIP text encoder: the pipeline's tokenization (padded to the tokenizer's length),
    penultimate hidden states as the context, the projected embedding as the pooled input.
    A prompt longer than the tokenizer's length is refused (the pipeline would truncate it)."""
    kind = "amused-clip"

    def __init__(self, model, tokenizer, spec: str, identity: str):
        self.model, self.tokenizer = model.eval().requires_grad_(False), tokenizer
        self.spec, self.identity, self.name = spec, identity, f"aMUSEd CLIP {spec}"
        self.max_length = int(tokenizer.model_max_length)
        self.dim = int(model.config.hidden_size)

    def token_count(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    def check(self, prompts: Sequence[str]) -> None:
        for p in prompts:
            if not isinstance(p, str):
                raise AutonatError(f"a prompt must be text, got {p!r}")
            n = self.token_count(p)
            if n > self.max_length:
                raise AutonatError(f"prompt {p[:60]!r} is {n} tokens long; aMUSEd's tokenizer takes "
                                   f"{self.max_length}")

    @torch.no_grad()
    def encode_pooled(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check(prompts)
        dev = next(self.model.parameters()).device
        ids = self.tokenizer(list(prompts), return_tensors="pt", padding="max_length", truncation=True,
                             max_length=self.max_length).input_ids.to(dev)
        out = self.model(ids, return_dict=True, output_hidden_states=True)
        states = out.hidden_states[-2].float().cpu()
        return states, torch.ones(states.shape[:2], dtype=torch.bool), out.text_embeds.float().cpu()

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_pooled(prompts)[:2]

    def save_pretrained(self, path):
        raise AutonatError("aMUSEd's text encoder stays in its diffusers pipeline directory")


def _identity(path: Path, part: str) -> str:
    """A hash of one component's files (config + weights): what a search result is keyed by."""
    h = hashlib.sha256(part.encode())
    for f in sorted((path / part).rglob("*")):
        if f.is_file():
            h.update(f.relative_to(path).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def load_amused(path: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer, text conditioner, strategies directory, name) of the aMUSEd pipeline
    directory `path`: what `Bundle.load` makes a bundle of."""
    from ..text.conditioner import TextConditioner
    path = Path(path)
    index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    missing = [c for c in COMPONENTS if c not in index or not (path / c).is_dir()]
    if missing:
        raise AutonatError(f"{path}: an aMUSEd pipeline needs {', '.join(COMPONENTS)}; missing: {', '.join(missing)}")
    try:
        import diffusers
        import transformers
    except ImportError:
        raise AutonatError("aMUSEd needs diffusers and transformers: pip install 'autonat[muse]'") from None
    try:
        with _quiet():
            transformer = diffusers.UVit2DModel.from_pretrained(path / "transformer")
            vqvae = diffusers.VQModel.from_pretrained(path / "vqvae")
            scheduler = diffusers.AmusedScheduler.from_pretrained(path / "scheduler")
            text = transformers.CLIPTextModelWithProjection.from_pretrained(path / "text_encoder")
            tokenizer = transformers.CLIPTokenizer.from_pretrained(path / "tokenizer")
    except (OSError, ValueError, RuntimeError) as e:
        first = " ".join(str(e).split())[:300] or type(e).__name__
        raise AutonatError(f"{path}: cannot load the aMUSEd pipeline: {first}") from None
    tc, vc = transformer.config, vqvae.config
    if tc.codebook_size != vc.num_vq_embeddings:
        raise AutonatError(f"{path}: the transformer predicts {tc.codebook_size} codes but the VQ-VAE has "
                           f"{vc.num_vq_embeddings}")
    mask_id = int(scheduler.config.mask_token_id)
    if not tc.codebook_size <= mask_id < tc.vocab_size:
        raise AutonatError(f"{path}: the scheduler's mask token {mask_id} must lie in the transformer's "
                           f"vocabulary [{tc.codebook_size}, {tc.vocab_size}) outside the codebook")
    if text.config.hidden_size != tc.encoder_hidden_size:
        raise AutonatError(f"{path}: the text encoder's width {text.config.hidden_size} is not the transformer's "
                           f"encoder_hidden_size {tc.encoder_hidden_size}")
    side = int(tc.sample_size)
    factor = 2 ** (len(vc.block_out_channels) - 1)
    cfg = AmusedConfig(codebook_size=int(tc.codebook_size), mask_id=mask_id, side=side, pixels=side * factor,
                       text_len=int(tokenizer.model_max_length), text_dim=int(text.config.hidden_size))
    model = AmusedNAT(transformer, cfg, source=str(path)).to(device)
    model.identity = _identity(path, "transformer")
    vq = AmusedVQ(vqvae, side, source=str(path)).to(device)
    vq.identity = _identity(path, "vqvae")
    encoder = AmusedTextEncoder(text.to(device), tokenizer, str(path), _identity(path, "text_encoder"))
    return model, vq, TextConditioner(encoder), path / "strategies", str(path)
