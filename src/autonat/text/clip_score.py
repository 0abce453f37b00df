"""CLIP score of generated images against their prompts, with a CLIP model the user gives.

CLIP score (Hessel et al. 2021, as torchmetrics and the text-to-image literature report it):
100 * max(cos(E_image(x), E_text(p)), 0) averaged over the images, with a `transformers`
`CLIPModel` (both towers, e.g. openai/clip-vit-large-patch14) loaded from a directory or a hub
id. Images are resized to the vision tower's input side (bicubic; a grayscale image is repeated
over RGB) and normalised with the model's image-processor mean/std when the directory has a
`preprocessor_config.json`, CLIP's published ones otherwise. Deterministic: with the evaluation's
common random numbers it is a function of the strategy alone, so the search can use it.

autonat's own dual encoder gives R-precision offline (`autonat.text.alignment`); this is the
score for users who have a CLIP.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..io import AutonatError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)     # CLIP's published image normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipScorer:
    """A frozen CLIP (vision + text) that scores images against prompts (see module docstring)."""

    def __init__(self, spec: str, device: str | torch.device = "cpu", batch_size: int = 64):
        try:
            import transformers as tf
        except ImportError:
            raise AutonatError("CLIP score needs transformers: pip install 'autonat[text]'") from None
        local = Path(spec).is_dir()
        kw = {"local_files_only": local}
        try:
            config = tf.AutoConfig.from_pretrained(spec, **kw)
            if config.model_type != "clip":
                raise AutonatError(f"{spec}: CLIP score needs a CLIP model with a vision tower (model_type "
                                   f"'clip'), got {config.model_type!r}")
            self.model = tf.CLIPModel.from_pretrained(spec, **kw).eval().requires_grad_(False).to(device)
            self.tokenizer = tf.AutoTokenizer.from_pretrained(spec, **kw)
        except AutonatError:
            raise
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AutonatError(f"cannot load the CLIP model {spec}: {first}") from None
        self.spec, self.device, self.batch_size = str(spec), torch.device(device), batch_size
        self.size = int(config.vision_config.image_size)
        mean, std = CLIP_MEAN, CLIP_STD
        pre = Path(spec) / "preprocessor_config.json"
        if local and pre.is_file():
            p = json.loads(pre.read_text(encoding="utf-8"))
            mean, std = tuple(p.get("image_mean", mean)), tuple(p.get("image_std", std))
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.max_length = int(getattr(config.text_config, "max_position_embeddings", 77))

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        return ((x - self.mean) / self.std).to(self.device)

    def scores(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP score [n] of uint8 images [n, C, H, W] against their prompts."""
        return 100.0 * self.cosines(images, prompts).clamp(min=0)

    @torch.no_grad()
    def cosines(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """cos(E_image, E_text) [n] of uint8 images [n, C, H, W] and their prompts."""
        if len(images) != len(prompts):
            raise AutonatError(f"{len(images)} images for {len(prompts)} prompts")
        out = []
        for s in range(0, len(images), self.batch_size):
            batch = list(prompts[s:s + self.batch_size])
            tok = self.tokenizer(batch, padding="max_length", max_length=self.max_length, truncation=False,
                                 return_tensors="pt")
            if tok["input_ids"].shape[1] > self.max_length:
                raise AutonatError(f"a prompt is longer than the CLIP model's {self.max_length} tokens")
            zt = self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                              attention_mask=tok["attention_mask"].to(self.device))
            zi = self.model.get_image_features(pixel_values=self._pixels(images[s:s + self.batch_size]))
            zt, zi = _features(zt), _features(zi)
            out.append(F.cosine_similarity(zi.float(), zt.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0)


def _features(x) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; 4.x returned the tensor."""
    return x if isinstance(x, torch.Tensor) else getattr(x, "pooler_output", x[0])
