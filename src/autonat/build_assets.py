"""`autonat reference build`: the whole chain that produces the shipped Fashion-MNIST artefacts,
as library calls (the same functions the CLI commands of docs/REFERENCE.md call).

Stages (each resumable and skipped when its output exists; see docs/REFERENCE.md for timings):
  perceptual the feature network of the tokenizer's perceptual loss: a classifier like the FID
             network but trained with another seed, so the tokenizer is never fitted to the
             network that scores it (REFERENCE_PERCEPTUAL)
  tokenizer  VQ tokenizer: pixel + edge + perceptual losses (REFERENCE_TOKENIZER)
  tokens     token caches: train (with horizontal flips) and test
  featnet    the feature network defining fid_fmnist / is_fmnist
  uvit       U-ViT `small` on the train cache, Beta(12, 3) (REFERENCE_TRAIN below)
  enat       ENAT `small` (projected reuse), same data and budget
  search     generation-strategy search for T = 4 and 8 on both models: screening of the hand
             grid, pattern search, SPSA refinement, common random numbers (REFERENCE_SEARCH)
  install    copy everything into the package's assets (models stored as fp16, in their compact
             form: ENAT's class conditioning folded into a label table, see models/enat.py)
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .assets import ASSETS
from .checkpoint import has_checkpoint
from .io import AutonatError, atomic_write_json, load_json

STAGES = ("perceptual", "tokenizer", "tokens", "featnet", "uvit", "enat", "search", "install")

REFERENCE_PERCEPTUAL = dict(seed=1, epochs=6)
REFERENCE_TOKENIZER = dict(steps=4000, perceptual_weight=1.0)

# The shipped models' training recipe (one documented command each; see docs/REFERENCE.md).
REFERENCE_TRAIN = dict(mask_dist="beta:12,3", batch_size=256, steps=2000, lr=1e-3, warmup=200, ema=0.998)
# The generation search of each shipped model and T: screen the hand grid (both token orders),
# pattern search over schedule shapes from the best, SPSA refinement, validation on a second
# noise set (docs/REFERENCE.md, docs/RESULTS.md "Search convergence").
REFERENCE_SEARCH = dict(method="pattern", n=1000, pattern_evals=24, max_updates=4, lr_other=0.05, lr_ratio=0.002)
REFERENCE_SEARCH_STEPS = {"uvit": (4, 8), "enat": (4, 8)}


def _started(out: Path) -> bool:
    """A run was begun in `out` (possibly stopped before its first checkpoint): resume it."""
    return has_checkpoint(out) or (out / "train_config.json").is_file()


def _done(path: Path, name: str = "model.safetensors") -> bool:
    return (path / name).is_file()


def build_reference(work: str | Path, install: bool = False, stages: list[str] | None = None,
                    show_progress: bool = True) -> dict:
    from .metrics.featnet_train import FeatureNetTrainConfig, train_featnet
    from .tokenizer.model import TokenizerConfig
    from .tokenizer.train import TokenizerTrainConfig, train_tokenizer
    from .tokens import TokenizeConfig, tokenize
    from .training import TrainConfig, train

    work = Path(work)
    stages = stages or list(STAGES)
    bad = set(stages) - set(STAGES)
    if bad:
        raise AutonatError(f"unknown stage(s) {sorted(bad)}; stages: {', '.join(STAGES)}")
    if work.exists() and not work.is_dir():
        raise AutonatError(f"--work {work} exists and is not a directory")
    work.mkdir(parents=True, exist_ok=True)
    if install and "install" not in stages:
        stages.append("install")
    timings = load_json(work / "timings.json") if (work / "timings.json").is_file() else {}

    def timed(name, fn):
        t0 = time.time()
        fn()
        timings[name] = round(time.time() - t0, 1)
        atomic_write_json(work / "timings.json", timings)

    tok_dir, feat_dir, perc_dir = work / "tokenizer", work / "featnet", work / "perceptual"
    if "perceptual" in stages and not _done(perc_dir):
        timed("perceptual", lambda: train_featnet(FeatureNetTrainConfig(**REFERENCE_PERCEPTUAL), perc_dir,
                                                  resume=_started(perc_dir), show_progress=show_progress))
    if "tokenizer" in stages and not _done(tok_dir):
        tcfg = TokenizerTrainConfig(**REFERENCE_TOKENIZER, perceptual_net=str(perc_dir))
        timed("tokenizer", lambda: train_tokenizer(TokenizerConfig(), tcfg, tok_dir,
                                                   resume=_started(tok_dir), show_progress=show_progress))
    if "tokens" in stages and not (work / "tokens-train" / "manifest.json").is_file():
        def tokens():
            tokenize(TokenizeConfig(tokenizer=str(tok_dir), split="train", hflip=True), work / "tokens-train",
                     show_progress=show_progress)
            tokenize(TokenizeConfig(tokenizer=str(tok_dir), split="test"), work / "tokens-test",
                     show_progress=show_progress)
        timed("tokens", tokens)
    if "featnet" in stages and not _done(feat_dir):
        timed("featnet", lambda: train_featnet(FeatureNetTrainConfig(), feat_dir, resume=_started(feat_dir),
                                               show_progress=show_progress))
    for arch, name in (("uvit", "small"), ("enat", "enat-small")):
        out = work / f"{arch}-small"
        if arch in stages and not _done(out):
            cfg = TrainConfig(tokens=str(work / "tokens-train"), model=name, **REFERENCE_TRAIN)
            timed(arch, lambda: train(cfg, out, resume=_started(out), show_progress=show_progress))
    if "search" in stages:
        for arch, steps in REFERENCE_SEARCH_STEPS.items():
            for T in steps:
                out = work / f"search-{arch}-T{T}"
                if not (out / "best_strategy.json").is_file():
                    timed(f"search-{arch}-T{T}", lambda: _search(work / f"{arch}-small", tok_dir, feat_dir, T, out))
    if "install" in stages:
        _install(work)
    return {"work": str(work), "timings_seconds": timings}


def _search(model_dir: Path, tok_dir: Path, feat_dir: Path, steps: int, out: Path) -> None:
    from .search.generation import GenSearchConfig
    from .search.loop import SearchConfig
    from .search.run import run
    s = dict(REFERENCE_SEARCH)
    cfg = SearchConfig(only="generation", model=str(model_dir), tokenizer=str(tok_dir), featnet=str(feat_dir),
                       steps=steps, n=s.pop("n"), gen=GenSearchConfig(**s))
    run(cfg, out)


def _install(work: Path) -> None:
    """Copy the built artefacts into src/autonat/assets/fashion-mnist (models as fp16)."""
    from .models.registry import load_model, save_model
    from .tokenizer import load
    dest = ASSETS / "fashion-mnist"
    load(work / "tokenizer").save_pretrained(dest / "tokenizer")
    from .metrics.features import FeatureNet
    net = FeatureNet.from_pretrained(work / "featnet")
    net.save_pretrained(dest / "featnet", load_json(work / "featnet" / "config.json").get("metrics"))
    for arch, name in (("uvit", "uvit-small"), ("enat", "enat-small")):
        src = work / f"{arch}-small"
        if not _done(src):
            continue
        m = load_model(src)
        training = {**m.meta.get("training", {}), "tokens": "fashion-mnist train (flips)"}
        tok = {**m.meta["tokenizer"], "name": "fashion-mnist"}   # the shipped tokenizer, by name
        save_model(m.compact(), dest / name, tokenizer=tok, training=training, fp16=True)
    for arch, folder in (("uvit", "strategies"), ("enat", "strategies-enat")):
        for T in REFERENCE_SEARCH_STEPS[arch]:
            f = work / f"search-{arch}-T{T}" / "best_strategy.json"
            if f.is_file():
                (dest / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, dest / folder / f"T{T}.json")
