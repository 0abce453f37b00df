"""The in-memory dataset every loader returns, and the uint8 <-> float image conversions."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ArrayDataset(torch.utils.data.Dataset):
    """Images held in memory as uint8 [N, C, H, W] with int64 labels; a captioned folder also
    gives each image its captions (`captions[i]`: one or more strings)."""
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    identity: str = ""
    skipped: list[str] = field(default_factory=list)
    captions: list[tuple[str, ...]] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 (rounded, clamped)."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)
