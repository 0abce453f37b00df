"""Feature extractors and cached reference features/statistics of real data.

A reference set is identified by (extractor metric + identity, dataset identity, split): its
features are computed once and cached as `<cache>/stats/<key>.npz` (features + pytorch-fid style
`mu`/`sigma`), so every later evaluation reuses them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..data import ArrayDataset, default_cache_dir, load_dataset, to_float
from ..io import AutonatError
from ..jobs import autocast, progress
from .fid import FeatureStats


def load_extractor(kind: str = "fmnist", weights: str | None = None, device="cpu"):
    """`fmnist`: the shipped Fashion-MNIST feature network, or a feature-network directory in
    `weights` (its metric is named in its config: fmnist, or the data it was trained on);
    `inception`: pytorch-fid's InceptionV3 from a user-supplied weights file."""
    if kind in ("fmnist", "fashion-mnist"):
        from .features import FeatureNet
        return FeatureNet.from_pretrained(weights or "fashion-mnist", device)   # metric_name from its config
    if kind == "inception":
        from .inception import load_inception
        return load_inception(weights, device)
    raise AutonatError(f"unknown feature network {kind!r}; use fmnist or inception")


@torch.no_grad()
def extract(extractor, images: torch.Tensor, batch_size: int = 500, bf16: bool = False,
            show_progress: bool = False, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Features and class probabilities of uint8 or float images [N, C, H, W]."""
    device = next(extractor.parameters()).device
    feats, probs = [], []
    for s in progress(range(0, images.shape[0], batch_size), desc=desc, disable=not show_progress):
        x = images[s:s + batch_size]
        x = to_float(x) if x.dtype == torch.uint8 else x.float()
        with autocast(device, bf16):
            f, p = extractor.features_and_probs(x.to(device))
        feats.append(f.float().cpu())
        probs.append(p.float().cpu())
    return torch.cat(feats), torch.cat(probs)


def _cache_path(extractor, dataset: ArrayDataset, split: str) -> Path:
    key = hashlib.sha256(f"{extractor.metric_name}:{extractor.identity}:{dataset.identity}:{split}"
                         .encode()).hexdigest()[:20]
    return default_cache_dir() / "stats" / f"{extractor.metric_name}-{split}-{key}.npz"


def reference_features(extractor, data: str = "fashion-mnist", split: str = "train",
                       dataset: ArrayDataset | None = None, show_progress: bool = True,
                       skip_bad: bool = False, background: str = "white",
                       resolution: int | None = None) -> torch.Tensor:
    """Features of every image of a real split, cached on disk by identity (`skip_bad`: skip
    unreadable image files instead of failing; `background`: where image files are transparent;
    `resolution`: the side the images are brought to first - the generator's, so that real and
    generated images reach the feature network the same way; None = as stored)."""
    ds = dataset if dataset is not None else load_dataset(data, split, skip_bad=skip_bad, background=background,
                                                          resolution=resolution)
    path = _cache_path(extractor, ds, split)
    if path.is_file():
        try:
            with np.load(path) as d:
                return torch.from_numpy(d["features"].copy())
        except (OSError, KeyError, ValueError):
            path.unlink()  # corrupt cache entry: recompute
    feats, _ = extract(extractor, ds.images, show_progress=show_progress, desc=f"reference {split}")
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = FeatureStats.from_features(feats)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, features=feats.numpy(), mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n))
    os.replace(tmp, path)
    return feats


def reference_stats(extractor, data: str = "fashion-mnist", split: str = "train",
                    stats_path: str | None = None, show_progress: bool = True, skip_bad: bool = False,
                    background: str = "white", resolution: int | None = None) -> FeatureStats:
    """Statistics of a real split (cached), or imported from a pytorch-fid npz (`stats_path`)."""
    if stats_path:
        return FeatureStats.load_npz(stats_path)
    return FeatureStats.from_features(reference_features(extractor, data, split, show_progress=show_progress,
                                                         skip_bad=skip_bad, background=background,
                                                         resolution=resolution))
