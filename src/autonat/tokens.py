"""Token cache: the token ids and labels of a whole dataset split, written once, memory-mapped.

Layout of a cache directory:
  tokens.npy     uint16/int32 [N, V, h*w]   V = 1 view, or 2 with horizontal flips (view 1 = flipped)
  labels.npy     int64 [N]
  tokenizer/     a copy of the tokenizer that made the ids (so the cache, and every model trained
                 on it, is self-contained: `autonat train` copies it into the model directory)
  text/          a captioned folder's pre-extracted caption embeddings (`autonat.text.store`)
  manifest.json  tokenizer identity + name, grid, codebook size, count, views, data identity
                 (+ the text encoder's identity for a captioned folder)

`manifest.json` is written last: a directory without it is an unfinished cache. An interrupted
`autonat tokenize` (a kill, Ctrl-C) keeps `tokens.partial.npy` + `progress.json` and resumes from
the last finished chunk when re-run with the same inputs; different inputs restart it cleanly.
Every input is checked before the output directory is touched, and an error (as opposed to an
interruption) removes whatever this run created. Opening a cache checks its arrays against the
manifest: shapes, dtypes, ids inside the codebook and labels inside the classes.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .assets import SHIPPED
from .conditioning import ClassCondition, TextCondition
from .config import opt, validate
from .data import ArrayDataset, parse_background, to_float
from .io import AutonatError, atomic_write_json, load_json
from .jobs import autocast, progress

CACHE_VERSION = 1


@dataclass(frozen=True)
class TokenizeConfig:
    """`autonat tokenize`: which images, which tokenizer (image size and channels come from it)."""
    tokenizer: str = opt("fashion-mnist", "shipped name or tokenizer directory")
    data: str = opt("fashion-mnist", "'fashion-mnist', a directory of IDX files, or an image folder")
    split: str = opt("train", "split to tokenize (train, test, or a sub-folder name)")
    hflip: bool = opt(False, "also store the tokens of mirrored images (as the paper)")
    batch_size: int = opt(500, "images per encoder call", min=1)
    resolution: int | None = opt(None, "override the tokenizer's image size (must still match it)", min=4, max=4096)
    channels: int | None = opt(None, "override the tokenizer's channels (must still match it)", choices=(1, 3))
    skip_bad: bool = opt(False, "skip unreadable image files (counted and reported) instead of failing")
    background: str = opt("white", "colour transparent pixels of image files are composited on: white, black, "
                                   "gray, #RRGGBB or R,G,B", check=parse_background)
    text_encoder: str | None = opt(None, "text encoder (directory or hub id) whose states of every caption are "
                                         "stored with the tokens; required for a captioned folder")
    download: bool = opt(False, "download Fashion-MNIST from the official source if absent (sha256-verified)")
    bf16: bool = opt(False, "encode in bf16 (can flip the nearest code of borderline vectors)")
    device: str = opt("auto", "auto (CUDA if available), cpu, cuda, cuda:N")

    def __post_init__(self):
        validate(self)


def tokenize(cfg: TokenizeConfig, out: str | os.PathLike, show_progress: bool = True, log=None) -> "TokenCache":
    """Tokenize a dataset split into a cache at `out` (resumable; see module docstring)."""
    from .data import load_dataset
    from .jobs import pick_device
    from .tokenizer import load as load_tokenizer
    tok = load_tokenizer(cfg.tokenizer, pick_device(cfg.device))
    ds = load_dataset(cfg.data, cfg.split, resolution=cfg.resolution or tok.config.image_size,
                      channels=cfg.channels or tok.config.channels, download=cfg.download, skip_bad=cfg.skip_bad,
                      background=cfg.background)
    if ds.skipped and log:
        log(f"skipped {len(ds.skipped)} unreadable file(s), e.g. {ds.skipped[0]}")
    name = cfg.tokenizer if cfg.tokenizer in SHIPPED["tokenizer"] else str(Path(cfg.tokenizer).resolve())
    encoder = None
    if ds.captions is not None:
        if not cfg.text_encoder:
            raise AutonatError(f"{cfg.data} is captioned (metadata.jsonl): pass --text-encoder DIR to store "
                               "its captions' text states with the tokens")
        from .text.encoders import load_text_encoder
        encoder = load_text_encoder(cfg.text_encoder)
    elif cfg.text_encoder:
        raise AutonatError(f"--text-encoder given, but {cfg.data} has no captions (metadata.jsonl)")
    return write_token_cache(tok, ds, out, hflip=cfg.hflip, batch_size=cfg.batch_size, bf16=cfg.bf16,
                             tokenizer_name=name, show_progress=show_progress, text_encoder=encoder)


@dataclass
class TokenCache:
    """An opened cache: `tokens` [N, V, L] (memory-mapped), `labels` [N], `manifest` dict, and
    for a captioned folder `text`, its caption embeddings."""
    path: Path
    tokens: np.ndarray
    labels: np.ndarray
    manifest: dict
    text: "TextStore | None" = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> "TokenCache":
        path = Path(path)
        if not path.is_dir():
            raise AutonatError(f"token cache {path}: no such directory (make one with `autonat tokenize`)")
        if not (path / "manifest.json").is_file():
            hint = " (unfinished: re-run `autonat tokenize` to resume it)" if (path / "progress.json").exists() else ""
            raise AutonatError(f"{path} is not a token cache: no manifest.json{hint}")
        man = load_json(path / "manifest.json")
        need = ("count", "views", "grid", "codebook_size", "num_classes", "tokenizer_identity")
        if not isinstance(man, dict) or any(k not in man for k in need):
            missing = [k for k in need if not isinstance(man, dict) or k not in man]
            raise AutonatError(f"{path}/manifest.json is damaged: lacks {missing}")
        tokens, labels = _load_array(path / "tokens.npy", mmap=True), _load_array(path / "labels.npy")
        n, views, grid = man["count"], man["views"], man["grid"]
        want = (n, views, int(grid[0]) * int(grid[1]))
        if tokens.ndim != 3 or tuple(tokens.shape) != want or tokens.dtype.kind not in "iu":
            raise AutonatError(f"{path}/tokens.npy: shape {tokens.shape} {tokens.dtype}, the manifest says "
                               f"{want} integers")
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise AutonatError(f"{path}/labels.npy: shape {labels.shape} {labels.dtype}, the manifest says ({n},) integers")
        K, C = int(man["codebook_size"]), int(man["num_classes"])
        if n and (int(tokens.min()) < 0 or int(tokens.max()) >= K):
            raise AutonatError(f"{path}/tokens.npy: token ids span [{int(tokens.min())}, {int(tokens.max())}] "
                               f"but the codebook has {K} codes")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= C):
            raise AutonatError(f"{path}/labels.npy: labels span [{int(labels.min())}, {int(labels.max())}] "
                               f"but the manifest has {C} classes")
        if n == 0:
            raise AutonatError(f"token cache {path} is empty")
        text = None
        if man.get("text_encoder_identity"):
            from .text.store import TextStore
            text = TextStore.open(path / "text", n)
            if text.manifest.get("encoder_identity") != man["text_encoder_identity"]:
                raise AutonatError(f"{path}/text holds the states of another text encoder than the manifest says")
        return cls(path, tokens, labels, man, text)

    def tokenizer_ref(self) -> str:
        """Where the tokenizer of this cache is: its copy inside the cache, else the name or path
        recorded at tokenization (a shipped name, or a path as typed then)."""
        inside = self.path / "tokenizer"
        return str(inside) if (inside / "config.json").is_file() else str(self.manifest.get("tokenizer_name", ""))

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

    def batch(self, index: torch.Tensor, view: torch.Tensor | None = None, caption: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, ClassCondition | TextCondition]:
        """Token ids [B, L] (int64) and their conditions for `index`: class labels, or for a
        captioned cache one caption per image (`caption` uniforms [B] pick which; None = the
        first); `view` picks the flip per example."""
        idx = index.numpy()
        v = np.zeros_like(idx) if view is None else view.numpy()
        ids = torch.from_numpy(self.tokens[idx, v].astype(np.int64))
        if self.text is not None:
            return ids, self.text.condition(index, caption)
        return ids, ClassCondition(torch.from_numpy(self.labels[idx]).long(), self.num_classes)


def _load_array(path: Path, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise AutonatError(f"token cache: missing {path}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise AutonatError(f"{path}: not a numeric .npy array ({str(e).splitlines()[0][:150]})") from None


def write_token_cache(tokenizer, dataset: ArrayDataset, out: str | os.PathLike, *, hflip: bool = False,
                      batch_size: int = 500, bf16: bool = False, tokenizer_name: str = "",
                      chunk: int | None = None, show_progress: bool = True, text_encoder=None) -> TokenCache:
    """Tokenize every image of `dataset` (and its mirror image if `hflip`) into a cache at `out`;
    a captioned dataset's captions are encoded by `text_encoder` into `out/text`.
    Progress is saved every `chunk` images (default: every 10 batches). fp32 by default: bf16 can
    flip the nearest code of borderline vectors."""
    chunk = chunk or 10 * batch_size
    out = Path(out)
    g = tokenizer.config.grid_size
    want = (tokenizer.config.channels, tokenizer.config.image_size, tokenizer.config.image_size)
    if len(dataset) == 0:
        raise AutonatError("the dataset has no images to tokenize")
    if tuple(dataset.image_shape) != want:
        raise AutonatError(f"images are {list(dataset.image_shape)} (channels, height, width) but the tokenizer "
                           f"takes {list(want)}; pass --channels {want[0]} --resolution {want[1]} (or omit them: "
                           f"tokenize takes both from the tokenizer)")
    if batch_size < 1:
        raise AutonatError(f"batch_size (--batch-size) must be >= 1, got {batch_size}")
    if out.exists() and not out.is_dir():
        raise AutonatError(f"--out {out} exists and is not a directory")
    request = {"version": CACHE_VERSION, "tokenizer_identity": tokenizer.identity,
               "tokenizer_name": tokenizer_name or tokenizer.identity, "data_identity": dataset.identity,
               "count": len(dataset), "views": 2 if hflip else 1, "grid": [g, g],
               "codebook_size": tokenizer.codebook_size, "num_classes": dataset.num_classes,
               "class_names": list(dataset.class_names)}
    if dataset.captions is not None:
        if text_encoder is None:
            raise AutonatError("a captioned dataset needs a text encoder to store its captions' states")
        text_encoder.check([c for caps in dataset.captions for c in caps])
        request["text_encoder_identity"] = text_encoder.identity
    if (out / "manifest.json").is_file():
        man = load_json(out / "manifest.json")
        if not isinstance(man, dict) or man.get("tokenizer_identity") != request["tokenizer_identity"]:
            name = man.get("tokenizer_name") if isinstance(man, dict) else "?"
            raise AutonatError(f"{out} holds a cache made by tokenizer {name!r}; refusing to overwrite it "
                               f"with tokenizer {request['tokenizer_name']!r} (choose another --out or delete it)")
        if man == request:
            return TokenCache.open(out)
        raise AutonatError(f"{out} holds a different token cache ({man.get('data_identity')}, "
                           f"views={man.get('views')}); choose another --out or delete it")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        _tokenize(tokenizer, dataset, out, request, hflip, batch_size, bf16, chunk, show_progress, text_encoder)
    except AutonatError:
        if created:            # a clean error: leave nothing behind (an interruption keeps its progress)
            shutil.rmtree(out, ignore_errors=True)
        raise
    return TokenCache.open(out)


def _tokenize(tokenizer, dataset: ArrayDataset, out: Path, request: dict, hflip: bool, batch_size: int,
              bf16: bool, chunk: int, show_progress: bool, text_encoder=None) -> None:
    g = tokenizer.config.grid_size
    dtype = np.uint16 if tokenizer.codebook_size <= 65535 else np.int32
    shape = (len(dataset), request["views"], g * g)
    partial, prog_path = out / "tokens.partial.npy", out / "progress.json"
    done = 0
    if prog_path.is_file() and partial.is_file():
        prog = load_json(prog_path)
        if isinstance(prog, dict) and prog.get("request") == request:
            done = int(prog.get("done", 0))
    if done > 0:
        try:
            arr = np.load(partial, mmap_mode="r+", allow_pickle=False)
            if tuple(arr.shape) != shape or arr.dtype != dtype:
                raise ValueError("shape")
        except (ValueError, OSError, EOFError):      # damaged by a kill mid-write: start over
            done = 0
    if done == 0:
        for p in (partial, prog_path):
            if p.exists():
                p.unlink()
        arr = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
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
    tokenizer.save_pretrained(out / "tokenizer")
    np.save(out / "labels.npy", dataset.labels.numpy().astype(np.int64))
    if dataset.captions is not None:
        from .text.store import write_text_store
        write_text_store(text_encoder, dataset.captions, out / "text", show_progress=show_progress)
    os.replace(partial, out / "tokens.npy")
    atomic_write_json(out / "manifest.json", request)
    prog_path.unlink()
