"""What every tokenizer kind shares (autonat's VQ tokenizer, the MaskGIT VQGAN): the input checks
of `encode` / `decode`, and persistence as a directory (config.json with its `kind` + weights)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import config_to_dict
from ..io import AutonatError, atomic_save_tensors, atomic_write_json, files_identity, json_bytes, tensor_bytes


class TokenizerInterface:
    """Mixin for an nn.Module with `config` (image_size, channels, grid_size, codebook_size) and
    a class attribute `KIND`."""
    KIND = ""

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_tokens(self) -> int:
        return self.config.grid_size ** 2

    def check_images(self, x: torch.Tensor) -> None:
        c, s = self.config.channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise AutonatError(f"tokenizer expects images [B, {c}, {s}, {s}], got {list(x.shape)}")

    def checked_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids as [B, h, w] ([B, h*w] is reshaped); ids outside the codebook are an error."""
        g = self.config.grid_size
        if tokens.ndim == 2 and tokens.shape[1] == g * g:
            tokens = tokens.view(-1, g, g)
        if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (g, g):
            raise AutonatError(f"tokenizer expects tokens [B, {g}, {g}], got {list(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.codebook_size):
            raise AutonatError(f"token ids must lie in [0, {self.codebook_size}); got range "
                               f"[{int(tokens.min())}, {int(tokens.max())}] (is a [MASK] id left?)")
        return tokens.long()

    # -- persistence ----------------------------------------------------------------------
    def _config_json(self) -> dict:
        return {"kind": self.KIND, **config_to_dict(self.config)}

    def save_pretrained(self, path: str | Path) -> None:
        # File by file (weights first): `path` may also hold a training run worth keeping.
        path = Path(path)
        atomic_save_tensors(path / "model.safetensors", self.state_dict())
        atomic_write_json(path / "config.json", self._config_json())

    def saved_identity(self) -> str:
        """The identity `from_pretrained` will report after `save_pretrained` (same bytes, hashed
        in memory): a tokenizer built in Python can be named before it is saved."""
        return files_identity({"config.json": json_bytes(self._config_json()),
                               "model.safetensors": tensor_bytes(self.state_dict())})
