"""Text-to-image evaluation: which prompts an evaluation uses, and how well images match them.

The MS-COCO protocol (FID-30K): one caption per held-out image, generate from those captions,
score the images against the held-out images. `evaluation_prompts` picks one caption of every
image of a captioned split (seeded) or reads a prompt file.

Alignment: R-precision (AttnGAN's protocol with R = 1, the text-to-image literature's score with
a dataset-trained encoder): for each generated image, its own prompt must rank first among itself
and `distractors` other prompts of the evaluation pool, by the dual encoder's image-text cosine
similarity. Chance is 1 / (distractors + 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..io import AutonatError


def read_prompt_file(path: str | Path) -> list[str]:
    """Prompts of a UTF-8 file, one per line (blank lines ignored); errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"prompt file {path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise AutonatError(f"{path}:{line}: not UTF-8 text") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise AutonatError(f"prompt file {path} holds no prompts")
    return prompts


def evaluation_prompts(data: str, split: str, prompts_file: str = "", seed: int = 0, **load_kw) -> list[str]:
    """The prompt pool of an evaluation: the lines of `prompts_file`, or one caption (chosen by
    `seed`) per image of the captioned `data` split."""
    if prompts_file:
        return read_prompt_file(prompts_file)
    from ..data import load_dataset
    ds = load_dataset(data, split, **load_kw)
    if ds.captions is None:
        raise AutonatError(f"{data} ({split}) has no captions to prompt a text model with; pass --prompts FILE "
                           "or a captioned reference folder (metadata.jsonl)")
    from ..captions import pick
    u = torch.rand(len(ds.captions), generator=torch.Generator().manual_seed(seed)).tolist()
    return [pick(caps, x) for caps, x in zip(ds.captions, u)]


def r_precision_hits(sims: torch.Tensor, true: torch.Tensor | None = None, distractors: int = 99,
                     seed: int = 0, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Per row i of `sims` [N, M]: 1 if its true column (`true[i]`, default i) scores higher than
    `distractors` random other columns, else 0. The distractors of a row are drawn from a
    generator keyed by (seed, rows[i]) (default: i), so a row's outcome does not depend on the
    batch or process it was scored in."""
    n, m = sims.shape
    true = torch.arange(n) if true is None else true
    rows = torch.arange(n) if rows is None else rows
    k = min(distractors, m - 1)
    if k < 1:
        raise AutonatError("R-precision needs at least two distinct prompts")
    hits = torch.zeros(n)
    for i in range(n):
        t = int(true[i])
        g = torch.Generator().manual_seed(seed * 1_000_003 + int(rows[i]))
        others = torch.randperm(m - 1, generator=g)[:k]
        others = others + (others >= t).long()            # every column but the true one
        hits[i] = float(sims[i, t] > sims[i, others].max())
    return hits


def r_precision(sims: torch.Tensor, true: torch.Tensor | None = None, distractors: int = 99,
                seed: int = 0) -> float:
    """Mean of `r_precision_hits`."""
    return float(r_precision_hits(sims, true, distractors, seed).mean())


@torch.no_grad()
def embed(dual, images: torch.Tensor, texts: Sequence[str], chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings (images [n, e], texts [m, e]) of uint8 images [n, C, H, W] and texts."""
    from ..data import to_float
    zt = torch.cat([dual.embed_text(list(texts[s:s + chunk])) for s in range(0, len(texts), chunk)])
    zi = torch.cat([dual.embed_images(to_float(images[s:s + chunk])) for s in range(0, len(images), chunk)]) \
        if len(images) else zt[:0]
    return zi, zt


@torch.no_grad()
def alignment_hits(dual, images: torch.Tensor, prompts: Sequence[str], pool: Sequence[str],
                   sample_ids: torch.Tensor, distractors: int = 99, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(R-precision hits [n], cosine similarity to the own prompt [n]) of uint8 images
    [n, C, H, W] generated from `prompts`, with the evaluation's distinct prompts `pool` as
    distractors; `sample_ids` key each image's distractors."""
    index = {p: i for i, p in enumerate(pool)}
    zi, zt = embed(dual, images, pool)
    true = torch.tensor([index[p] for p in prompts], dtype=torch.long)
    sims = zi @ zt.T
    return r_precision_hits(sims, true, distractors, seed, sample_ids), sims[torch.arange(len(true)), true]
