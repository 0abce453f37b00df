"""autonat's own text encoder: a small CLIP-style dual encoder trained on the user's captions.

Why: the papers' CLIP ViT-L/14 cannot be downloaded offline and is 120x larger than the NATs it
would condition here. A dual encoder trained contrastively on the captioned images (i) gives the
NAT text states that are *about the images* (the same reason CLIP is used), (ii) works for prompts
that never occurred in training, because it reads UTF-8 bytes rather than a word list, and (iii)
doubles as the alignment metric: R-precision (AttnGAN / the text-to-image literature's use of a
dataset-trained encoder) ranks a generated image's own prompt among random other captions by the
image tower's embedding.

  text tower   bytes (lower-cased UTF-8) -> [BOS] bytes [EOS] padded to L -> embedding + learned
               positions -> pre-LN Transformer with a padding key mask -> LayerNorm -> states
               [B, L, d] (what the NAT attends to); the EOS state, projected, is the pooled
               embedding (as CLIP)
  image tower  a small strided CNN -> global average pool -> projection (resolution-agnostic)
  loss         symmetric InfoNCE with a learned temperature (CLIP)

It fulfils the text encoder contract of `autonat.text.encoders` (name, identity, max_length, dim,
token_count, check, encode, save_pretrained), so `load_text_encoder(DIR)` opens either kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import config_from_dict, config_to_dict, opt, validate
from ..io import AutonatError, atomic_save_tensors, atomic_write_json, dir_identity, load_json
from ..models.layers import Block, init_weights

KIND = "autonat-dual-encoder"
BOS, EOS, PAD = 256, 257, 258


@dataclass(frozen=True)
class DualEncoderConfig:
    """Architecture of the dual encoder (saved as config.json)."""
    max_length: int = opt(64, "L: bytes per prompt + 2 (BOS, EOS)", min=4, max=1024)
    dim: int = opt(128, "width of the text states (what the NAT attends to)", min=8, max=4096)
    depth: int = opt(4, "text Transformer blocks", min=1, max=64)
    heads: int = opt(4, "attention heads", min=1, max=64)
    embed_dim: int = opt(128, "joint image-text embedding size", min=8, max=4096)
    channels: int = opt(3, "image channels (set from the data)", choices=(1, 3), cli=False)
    image_width: int = opt(64, "image tower base width", min=8, max=1024)

    def __post_init__(self):
        validate(self)
        if self.dim % self.heads:
            raise AutonatError(f"dim {self.dim} must be divisible by heads {self.heads}")


class TextTower(nn.Module):
    def __init__(self, c: DualEncoderConfig):
        super().__init__()
        self.tok = nn.Embedding(259, c.dim)
        self.pos = nn.Parameter(torch.zeros(1, c.max_length, c.dim))
        self.blocks = nn.ModuleList([Block(c.dim, c.heads) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.proj = nn.Linear(c.dim, c.embed_dim, bias=False)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [B, L, d], pooled embedding [B, e]) of byte ids [B, L] with padding mask."""
        x = self.tok(ids) + self.pos
        for blk in self.blocks:
            x = blk(x, key_mask=mask)
        states = self.norm(x)
        eos = mask.long().sum(1) - 1
        pooled = states[torch.arange(len(ids), device=ids.device), eos]
        return states, self.proj(pooled)


class ImageTower(nn.Module):
    def __init__(self, c: DualEncoderConfig):
        super().__init__()
        w = c.image_width
        self.net = nn.Sequential(
            nn.Conv2d(c.channels, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU())
        self.proj = nn.Linear(2 * w, c.embed_dim, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Float images [B, C, H, W] in [0, 1] -> embedding [B, e]."""
        return self.proj(self.net(images * 2 - 1).mean((2, 3)))


class DualEncoder(nn.Module):
    """Text and image towers and the CLIP temperature (see module docstring)."""

    def __init__(self, config: DualEncoderConfig):
        super().__init__()
        self.config = config
        self.text = TextTower(config)
        self.image = ImageTower(config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        init_weights(self.text)

    # -- bytes ----------------------------------------------------------------------------------
    @staticmethod
    def to_bytes(prompt: str) -> bytes:
        return " ".join(prompt.lower().split()).encode("utf-8")

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.config.max_length
        ids = torch.full((len(prompts), L), PAD, dtype=torch.long)
        for i, p in enumerate(prompts):
            b = list(self.to_bytes(p))
            if len(b) + 2 > L:
                raise AutonatError(f"prompt {p[:60]!r} is {len(b) + 2} tokens long; this text encoder takes "
                                   f"at most {L}")
            ids[i, :len(b) + 2] = torch.tensor([BOS, *b, EOS])
        return ids, ids != PAD

    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        ids, mask = self.tokenize(prompts)
        dev = self.logit_scale.device
        return F.normalize(self.text(ids.to(dev), mask.to(dev))[1].float(), dim=-1)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(images.to(self.logit_scale.device)).float(), dim=-1)

    def loss(self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE over the batch and the image->text top-1 accuracy."""
        zi = F.normalize(self.image(images).float(), dim=-1)
        zt = F.normalize(self.text(ids, mask)[1].float(), dim=-1)
        logits = self.logit_scale.clamp(max=math.log(100)).exp() * zi @ zt.T
        target = torch.arange(len(images), device=images.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return loss, (logits.argmax(1) == target).float().mean()

    # -- storage --------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, extra: dict | None = None) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(path / "model.safetensors", {k: v.detach().float().cpu().contiguous()
                                                         for k, v in self.state_dict().items()})
        atomic_write_json(path / "config.json", {"kind": KIND, "config": config_to_dict(self.config),
                                                 **(extra or {})})

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "DualEncoder":
        from safetensors.torch import load_file
        path = Path(path)
        meta = load_json(path / "config.json")
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise AutonatError(f"{path} is not an autonat dual encoder")
        m = cls(config_from_dict(DualEncoderConfig, meta.get("config", {})))
        try:
            m.load_state_dict(load_file(path / "model.safetensors"))
        except (RuntimeError, OSError) as e:
            raise AutonatError(f"{path}/model.safetensors does not fit its config: {str(e).splitlines()[0]}") from None
        m.meta = meta
        return m.eval()


def is_dual_encoder_dir(path: str | Path) -> bool:
    p = Path(path) / "config.json"
    if not p.is_file():
        return False
    try:
        meta = load_json(p)
    except AutonatError:
        return False
    return isinstance(meta, dict) and meta.get("kind") == KIND


class DualTextEncoder:
    """The text tower of a saved dual encoder, behind the text encoder contract."""
    kind = KIND

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        self.path = Path(path).resolve()
        self.model = DualEncoder.from_pretrained(self.path).to(device).requires_grad_(False)
        self.spec = str(self.path)
        self.name = f"autonat dual encoder {self.path}"
        self.identity = dir_identity(self.path)
        self.max_length, self.dim = self.model.config.max_length, self.model.config.dim

    def token_count(self, prompt: str) -> int:
        return len(DualEncoder.to_bytes(prompt)) + 2

    def check(self, prompts: Sequence[str]) -> None:
        for p in prompts:
            if not isinstance(p, str):
                raise AutonatError(f"a prompt must be text, got {p!r}")
            self.model.tokenize([p])

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.model.tokenize(list(prompts))
        dev = self.model.logit_scale.device
        states = self.model.text(ids.to(dev), mask.to(dev))[0] if len(ids) else \
            torch.zeros(0, self.max_length, self.dim)
        return states.float().cpu(), mask

    def save_pretrained(self, path: str | Path) -> None:
        self.model.save_pretrained(path, {k: v for k, v in self.model.meta.items() if k not in ("kind", "config")})
