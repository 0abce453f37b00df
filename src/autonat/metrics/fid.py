"""Distribution metrics over feature vectors: FID, Inception Score, KID, precision/recall.

FID: d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), statistics in float64, the matrix square
root by `scipy.linalg.sqrtm`. Near-singular covariances (fewer samples than dimensions, or dead
feature units) can make sqrtm return non-finite values or a complex result: as in pytorch-fid we
then add eps * I to both covariances and retry, and we drop an imaginary part only when it is
numerically negligible (|imag| < 1e-3 on the diagonal); anything else is an error, never a
silently wrong number.

Reference statistics are stored in pytorch-fid's npz format (`mu`, `sigma`), so published
statistics (e.g. ImageNet's) can be imported and ours exported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from ..io import AutonatError


@dataclass
class FeatureStats:
    mu: np.ndarray       # [D] float64
    sigma: np.ndarray    # [D, D] float64
    n: int

    @classmethod
    def from_features(cls, features: np.ndarray | torch.Tensor) -> "FeatureStats":
        f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) \
            else np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise AutonatError(f"need at least 2 feature vectors [n, D] for statistics, got {f.shape}")
        return cls(f.mean(0), np.cov(f, rowvar=False), f.shape[0])

    def save_npz(self, path: str | os.PathLike) -> None:
        """pytorch-fid format: arrays `mu` and `sigma` (plus `n`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
        os.replace(tmp, path)

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> "FeatureStats":
        path = Path(path)
        if not path.is_file():
            raise AutonatError(f"reference statistics not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as d:
                if "mu" not in d or "sigma" not in d:
                    raise AutonatError(f"{path}: not pytorch-fid statistics (needs arrays mu, sigma)")
                mu, sigma = d["mu"].astype(np.float64), d["sigma"].astype(np.float64)
                n = int(d["n"]) if "n" in d else 0
        except (ValueError, OSError, EOFError, AttributeError) as e:
            raise AutonatError(f"{path}: not a readable .npz of statistics ({str(e).splitlines()[0][:150]})") from None
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise AutonatError(f"{path}: the statistics contain non-finite values")
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise AutonatError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not match")
        return cls(mu, sigma, n)


def frechet_distance(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians (see module docstring for numerical handling)."""
    if a.mu.shape != b.mu.shape:
        raise AutonatError(f"feature dimensions differ: {a.mu.shape[0]} vs {b.mu.shape[0]} "
                           f"(statistics from different feature networks?)")
    diff = a.mu - b.mu
    covmean = linalg.sqrtm(a.sigma.dot(b.sigma))
    if not np.isfinite(covmean).all():
        offset = np.eye(a.sigma.shape[0]) * eps
        covmean = linalg.sqrtm((a.sigma + offset).dot(b.sigma + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise AutonatError(f"FID: matrix square root has a large imaginary component "
                               f"({np.max(np.abs(covmean.imag)):.3g}); too few samples for the feature dimension?")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean))


def inception_score(probs: np.ndarray | torch.Tensor, splits: int = 1) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and std over `splits` equal parts."""
    p = probs.detach().cpu().double().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs, np.float64)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        scores.append(float(np.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3, averaged over random subsets (mean, std)."""
    real, fake = real.double(), fake.double()
    d = real.shape[1]
    m = min(subset_size, real.shape[0], fake.shape[0])
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=g)[:m]]
        y = fake[torch.randperm(fake.shape[0], generator=g)[:m]]
        kxx, kyy, kxy = [(a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y))]
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
               + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
        vals.append(float(mmd))
    return float(np.mean(vals)), float(np.std(vals))


def _kth_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for s in range(0, x.shape[0], chunk):
        d = torch.cdist(x[s:s + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)   # +1: the point itself at distance 0
    return torch.cat(out)


def _covered(query: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    hits = []
    for s in range(0, query.shape[0], chunk):
        d = torch.cdist(query[s:s + chunk], support)
        hits.append((d <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(hits)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019): k-NN balls around each set's points.
    precision = fraction of fakes inside the real manifold; recall = reals inside the fake one."""
    real, fake = real.float(), fake.float()
    if min(real.shape[0], fake.shape[0]) <= k:
        raise AutonatError(f"precision/recall needs more than k={k} samples per set")
    precision = _covered(fake, real, _kth_radius(real, k)).float().mean()
    recall = _covered(real, fake, _kth_radius(fake, k)).float().mean()
    return float(precision), float(recall)
