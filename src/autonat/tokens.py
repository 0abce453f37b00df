"""Token cache: the token ids and labels of a whole dataset split, written once, memory-mapped.

Layout of a cache directory:
  tokens.npy     uint16/int32 [N, V, h*w]   V = 1 view, or 2 with horizontal flips (view 1 = flipped)
  labels.npy     int64 [N]
  manifest.json  tokenizer identity + name, grid, codebook size, count, views, data identity

`manifest.json` is written last: a directory without it is an unfinished cache. An interrupted
`autonat tokenize` keeps `tokens.partial.npy` + `progress.json` and resumes from the last finished
chunk when re-run with the same inputs; different inputs restart it cleanly.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import ArrayDataset, to_float
from .io import AutonatError, atomic_write_json, load_json
from .jobs import autocast, progress

CACHE_VERSION = 1


@dataclass
class TokenCache:
    """An opened cache: `tokens` [N, V, L] (memory-mapped), `labels` [N], `manifest` dict."""
    path: Path
    tokens: np.ndarray
    labels: np.ndarray
    manifest: dict

    @classmethod
    def open(cls, path: str | os.PathLike) -> "TokenCache":
        path = Path(path)
        if not (path / "manifest.json").is_file():
            hint = " (unfinished: re-run `autonat tokenize` to resume it)" if (path / "progress.json").exists() else ""
            raise AutonatError(f"{path} is not a token cache: no manifest.json{hint}")
        man = load_json(path / "manifest.json")
        tokens = np.load(path / "tokens.npy", mmap_mode="r")
        labels = np.load(path / "labels.npy")
        if tokens.shape[0] != man["count"] or labels.shape[0] != man["count"]:
            raise AutonatError(f"{path}: arrays do not match manifest count {man['count']}")
        return cls(path, tokens, labels, man)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[2]

    @property
    def codebook_size(self) -> int:
        return int(self.manifest["codebook_size"])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    def check_tokenizer(self, identity: str, name: str = "") -> None:
        """Refuse to pair this cache with a different tokenizer (ids would mean other codes)."""
        if identity and identity != self.manifest["tokenizer_identity"]:
            raise AutonatError(
                f"token cache {self.path} was made by tokenizer {self.manifest['tokenizer_name']!r} "
                f"(identity {self.manifest['tokenizer_identity']}), not by {name or 'this tokenizer'} "
                f"(identity {identity}); re-run `autonat tokenize` with the tokenizer you want")

    def batch(self, index: torch.Tensor, view: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [B, L] (int64) and labels [B] for `index`; `view` picks the flip per example."""
        idx = index.numpy()
        v = np.zeros_like(idx) if view is None else view.numpy()
        ids = torch.from_numpy(self.tokens[idx, v].astype(np.int64))
        return ids, torch.from_numpy(self.labels[idx])


def write_token_cache(tokenizer, dataset: ArrayDataset, out: str | os.PathLike, *, hflip: bool = False,
                      batch_size: int = 500, bf16: bool = False, tokenizer_name: str = "",
                      chunk: int = 5000, show_progress: bool = True) -> TokenCache:
    """Tokenize every image of `dataset` (and its mirror image if `hflip`) into a cache at `out`.
    fp32 by default: bf16 can flip the nearest code of borderline vectors."""
    out = Path(out)
    g = tokenizer.config.grid_size
    request = {"version": CACHE_VERSION, "tokenizer_identity": tokenizer.identity,
               "tokenizer_name": tokenizer_name or tokenizer.identity, "data_identity": dataset.identity,
               "count": len(dataset), "views": 2 if hflip else 1, "grid": [g, g],
               "codebook_size": tokenizer.codebook_size, "num_classes": dataset.num_classes,
               "class_names": list(dataset.class_names)}
    if (out / "manifest.json").is_file():
        man = load_json(out / "manifest.json")
        if man.get("tokenizer_identity") != request["tokenizer_identity"]:
            raise AutonatError(f"{out} holds a cache made by tokenizer {man.get('tokenizer_name')!r}; "
                               f"refusing to overwrite it with tokenizer {request['tokenizer_name']!r} "
                               f"(choose another --out or delete it)")
        if man == request:
            return TokenCache.open(out)
        raise AutonatError(f"{out} holds a different token cache ({man.get('data_identity')}, "
                           f"views={man.get('views')}); choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if tokenizer.codebook_size <= 65535 else np.int32
    shape = (len(dataset), request["views"], g * g)
    partial, prog_path = out / "tokens.partial.npy", out / "progress.json"
    done = 0
    if prog_path.is_file() and partial.is_file():
        prog = load_json(prog_path)
        if prog.get("request") == request:
            done = int(prog["done"])
    if done == 0:
        for p in (partial, prog_path):
            if p.exists():
                p.unlink()
        arr = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
    else:
        arr = np.load(partial, mmap_mode="r+")
    device = tokenizer.codebook_device
    bar = progress(total=len(dataset), initial=done, desc="tokenize", disable=not show_progress)
    while done < len(dataset):
        stop = min(done + chunk, len(dataset))
        for s in range(done, stop, batch_size):
            x = to_float(dataset.images[s:min(s + batch_size, stop)]).to(device)
            with autocast(device, bf16):
                views = [tokenizer.encode(x)] + ([tokenizer.encode(x.flip(-1))] if hflip else [])
            arr[s:s + x.shape[0]] = torch.stack(views, 1).flatten(2).cpu().numpy().astype(dtype)
            bar.update(x.shape[0])
        arr.flush()
        done = stop
        atomic_write_json(prog_path, {"request": request, "done": done})
    bar.close()
    del arr
    np.save(out / "labels.npy", dataset.labels.numpy().astype(np.int64))
    os.replace(partial, out / "tokens.npy")
    atomic_write_json(out / "manifest.json", request)
    prog_path.unlink()
    return TokenCache.open(out)


def remove_cache(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)
