"""Pre-extracted text embeddings of a captioned token cache (the authors pre-extract their CLIP
features the same way): every caption is encoded once at `autonat tokenize`, training only reads.

Layout, in `<token cache>/text/`:
  states.npy     float16 [M, L, D]  the M captions' encoder states (padded to L tokens)
  mask.npy       bool [M, L]        their padding masks (True = a real token)
  offsets.npy    int64 [N + 1]      image i's captions are rows offsets[i]:offsets[i + 1]
  null.npz       the empty prompt's states [L, D] and mask [L] (the null condition)
  captions.json  the M caption strings, in row order
  manifest.json  encoder name and identity, L, D, M, N (written last)

`TextStore.condition(index, u)` gives the TextCondition of a batch: image index[b] with caption
number floor(u[b] * count) among its own (`u` uniform in [0, 1), drawn by the caller from its keyed
generator, so a resumed training run picks the same captions).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..conditioning import TextCondition
from ..io import AutonatError, atomic_write_json, load_json


@dataclass
class TextStore:
    path: Path
    states: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray
    null_states: torch.Tensor
    null_mask: torch.Tensor
    manifest: dict

    @classmethod
    def open(cls, path: str | os.PathLike, count: int) -> "TextStore":
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise AutonatError(f"{path}: text embeddings unfinished or missing (no manifest.json); "
                               "re-run `autonat tokenize` with --text-encoder")
        man = load_json(path / "manifest.json")
        try:
            states = np.load(path / "states.npy", mmap_mode="r", allow_pickle=False)
            mask = np.load(path / "mask.npy", allow_pickle=False)
            offsets = np.load(path / "offsets.npy", allow_pickle=False)
            with np.load(path / "null.npz", allow_pickle=False) as z:
                null_states, null_mask = torch.from_numpy(z["states"].astype(np.float32)), torch.from_numpy(z["mask"])
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise AutonatError(f"{path}: damaged text embeddings ({str(e).splitlines()[0][:120]})") from None
        m, L, D = int(man.get("captions", -1)), int(man.get("length", -1)), int(man.get("dim", -1))
        if (states.shape != (m, L, D) or mask.shape != (m, L) or mask.dtype != np.bool_
                or offsets.shape != (count + 1,) or null_states.shape != (L, D) or null_mask.shape != (L,)):
            raise AutonatError(f"{path}: text embedding arrays do not match their manifest "
                               f"({m} captions x {L} x {D} for {count} images)")
        if offsets[0] != 0 or offsets[-1] != m or np.any(np.diff(offsets) < 1):
            raise AutonatError(f"{path}/offsets.npy: every image needs at least one caption row")
        return cls(path, states, mask, offsets, null_states, null_mask.bool(), man)

    @property
    def length(self) -> int:
        return int(self.manifest["length"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def captions(self) -> list[str]:
        return load_json(self.path / "captions.json")

    def condition(self, index: torch.Tensor, u: torch.Tensor | None = None) -> TextCondition:
        """The TextCondition of images `index` [B]: caption floor(u * count) of each (u None: the
        first caption)."""
        idx = index.numpy()
        lo, count = self.offsets[idx], self.offsets[idx + 1] - self.offsets[idx]
        pick = np.zeros_like(lo) if u is None else np.minimum((u.numpy() * count).astype(np.int64), count - 1)
        rows = lo + pick
        states = torch.from_numpy(np.asarray(self.states[rows], dtype=np.float32))
        return TextCondition(states, torch.from_numpy(self.mask[rows]), self.null_states, self.null_mask)


def write_text_store(encoder, captions: Sequence[Sequence[str]], out: str | os.PathLike,
                     batch_size: int = 256, show_progress: bool = True) -> TextStore:
    """Encode every caption of every image (`captions[i]`: image i's captions) into `out`. The
    caller checks the captions first (`encoder.check`, as `write_token_cache` does before it
    creates anything); `encode` would refuse a too-long one only after `out` exists."""
    from ..jobs import progress
    out = Path(out)
    flat = [c for caps in captions for c in caps]
    offsets = np.zeros(len(captions) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in captions])
    if any(len(c) == 0 for c in captions):
        raise AutonatError("every image needs at least one caption")
    out.mkdir(parents=True, exist_ok=True)
    L, D = encoder.max_length, encoder.dim
    states = np.lib.format.open_memmap(out / "states.partial.npy", mode="w+", dtype=np.float16,
                                       shape=(len(flat), L, D))
    mask = np.zeros((len(flat), L), np.bool_)
    bar = progress(total=len(flat), desc="encode captions", disable=not show_progress)
    for s in range(0, len(flat), batch_size):
        st, mk = encoder.encode(flat[s:s + batch_size])
        states[s:s + st.shape[0]] = st.numpy().astype(np.float16)
        mask[s:s + st.shape[0]] = mk.numpy()
        bar.update(st.shape[0])
    bar.close()
    states.flush()
    del states
    null_s, null_m = encoder.encode([""])
    np.save(out / "mask.npy", mask)
    np.save(out / "offsets.npy", offsets)
    np.savez(out / "null.npz", states=null_s[0].numpy().astype(np.float16), mask=null_m[0].numpy())
    atomic_write_json(out / "captions.json", flat)
    os.replace(out / "states.partial.npy", out / "states.npy")
    atomic_write_json(out / "manifest.json", {"encoder": encoder.name, "encoder_identity": encoder.identity,
                                              "encoder_spec": getattr(encoder, "spec", ""), "length": L,
                                              "dim": D, "captions": len(flat), "images": len(captions)})
    return TextStore.open(out, len(captions))
