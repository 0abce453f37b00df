"""Evaluating a generator: sample the conditions of an evaluation, decode, extract features, score.

Noise indexing (what makes common random numbers work): sample i of an evaluation with seed S
gets condition `conditioner.for_evaluation(n, S)` row i (class-balanced labels in a seeded order,
or for a text model a prompt of the evaluation's pool in a seeded order)
and, at step t, token-sampling uniforms and re-masking Gumbel uniforms from generators seeded with
hash(S, i, t, kind) - one number per token position (see `autonat.sampling.IndexedNoise`).
Nothing depends on the strategy, the batch size or the number of processes, so re-evaluating with
another strategy reuses exactly the same conditions and noise, and two strategies differ only by
the strategy.

A text model is evaluated by the MS-COCO protocol (`autonat.text.alignment`): prompts are one
caption per image of the reference split (pass the held-out split, e.g. --reference-split test)
or a prompt file; besides FID, R-precision with a dual encoder (the model's own text encoder if
it is one, or --alignment DIR) measures whether the images show their prompts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from . import distributed as D
from .bundle import Bundle
from .conditioning import Condition
from .config import opt, validate
from .data import load_dataset, parse_background, to_float, to_uint8
from .decode import decode_images
from .jobs import autocast, progress
from .metrics.fid import FeatureStats, frechet_distance, inception_score, kid, precision_recall
from .metrics.reference import extract, reference_features
from .sampling import IndexedNoise
from .strategy import Strategy

MAX_SAMPLES = 1_000_000       # an evaluation larger than this is a typo, not a plan (FID-50K is the norm)


@dataclass(frozen=True)
class EvalConfig:
    """How a generator is evaluated (saved with every result)."""
    n: int = opt(10000, "generated samples", min=2, max=MAX_SAMPLES, aliases=("--num-samples",))
    seed: int = opt(0, "evaluation seed: conditions and noise of sample i depend only on (seed, i)", min=0,
                    max=2**63 - 1)
    batch_size: int = opt(250, "sampling batch size", min=1)
    noise: str = opt("indexed", "indexed = common random numbers keyed by (seed, sample, step); "
                                "sequential = one generator in call order", choices=("indexed", "sequential"))
    bf16: bool = opt(True, "sample in bf16")
    reference_data: str = opt("fashion-mnist", "real data for the reference statistics (a name, an IDX "
                                               "directory or an image folder)")
    reference_split: str = opt("train", "split of the reference data")
    reference_stats: str = opt("", "pytorch-fid .npz (mu, sigma) to use instead of reference data "
                                   "(precision/recall and KID need features and are skipped)")
    skip_bad: bool = opt(False, "skip unreadable files of the reference data instead of failing")
    background: str = opt("white", "colour transparent pixels of image files are composited on: white, black, "
                                   "gray, #RRGGBB or R,G,B", check=parse_background)
    precision_recall: bool = opt(True, "k-NN precision/recall against (up to) 10k reference features")
    kid: bool = opt(False, "also compute KID")
    prompts: str = opt("", "text models: a file of evaluation prompts, one per line (default: one caption "
                           "per image of the reference data)")
    prompt_split: str = opt("", "text models: the split of the reference data whose captions are the prompts "
                                "(default: the reference split; e.g. FID against train, prompts from the held-out test)")
    alignment: str = opt("", "text models: dual encoder directory for R-precision (default: the model's "
                             "own text encoder, if it is autonat's dual encoder)")
    clip: str = opt("", "text models: a transformers CLIP model (both towers; directory or hub id) for CLIP "
                        "score, 100 * max(cos, 0)")
    count_flops: bool = opt(True, "count forward FLOPs per image")

    def __post_init__(self):
        validate(self)


@torch.inference_mode()
def generate(bundle: Bundle, strategy: Strategy, cond: Condition, sample_ids: torch.Tensor, seed: int,
             batch_size: int = 250, bf16: bool = True, noise: str = "indexed", reuse: bool = True,
             show_progress: bool = False) -> torch.Tensor:
    """uint8 images [n, C, H, W] for the conditions `cond` of the global sample indices `sample_ids`."""
    if noise == "indexed":
        nz = IndexedNoise(seed, tuple(int(i) for i in sample_ids))
    else:
        nz = torch.Generator().manual_seed(seed * 1000003 + int(sample_ids[0]) if len(sample_ids) else seed)
    return decode_images(bundle.inference_model(bf16, reuse), bundle.tokenizer, strategy, cond, nz,
                         batch_size=batch_size, bf16=bf16, show_progress=show_progress).images


def score(fake_feats: torch.Tensor, fake_probs: torch.Tensor, ref_feats: torch.Tensor,
          metric: str, cfg: EvalConfig, ref_stats: FeatureStats | None = None) -> dict:
    """FID / IS (+ precision/recall, KID) of generated features against reference features."""
    ref_stats = ref_stats or FeatureStats.from_features(ref_feats)
    fid = frechet_distance(FeatureStats.from_features(fake_feats), ref_stats)
    is_mean, is_std = inception_score(fake_probs, splits=10 if len(fake_probs) >= 5000 else 1)
    res = {"fid": fid, f"fid_{metric}": fid, "is": is_mean, f"is_{metric}": is_mean, "is_std": is_std}
    if cfg.precision_recall and ref_feats is not None:
        g = torch.Generator().manual_seed(cfg.seed)
        m = min(len(ref_feats), len(fake_feats), 10000)
        ref_sub = ref_feats[torch.randperm(len(ref_feats), generator=g)[:m]]
        res["precision"], res["recall"] = precision_recall(ref_sub, fake_feats[:m])
    if cfg.kid and ref_feats is not None:
        res["kid"], res["kid_std"] = kid(ref_feats, fake_feats, seed=cfg.seed)
    return res


def evaluate_model(bundle: Bundle, strategy: Strategy, extractor, cfg: EvalConfig,
                   ref_feats: torch.Tensor | None = None, show_progress: bool = True, reuse: bool = True) -> dict:
    """Sample cfg.n images (sharded across ranks under torchrun), score them on rank 0 against
    `ref_feats`, the reference data's features, or imported statistics (`cfg.reference_stats`).
    Everything checkable is checked before sampling. Returns the metrics dict on every rank."""
    ref_stats = FeatureStats.load_npz(cfg.reference_stats) if cfg.reference_stats else None
    t0 = time.perf_counter()
    if ref_stats is None and ref_feats is None and D.is_main():   # only rank 0 scores
        ref_feats = reference_features(extractor, cfg.reference_data, cfg.reference_split,
                                       resolution=bundle.tokenizer.config.image_size,
                                       show_progress=show_progress, skip_bad=cfg.skip_bad, background=cfg.background)
    if bundle.is_text:
        bundle.conditioner = prepare_text_evaluation(bundle, cfg)
    cond = bundle.conditioner.for_evaluation(cfg.n, cfg.seed)
    lo, hi = D.shard(cfg.n)
    t1 = time.perf_counter()
    images = generate(bundle, strategy, cond.rows(lo, hi), torch.arange(lo, hi), cfg.seed, cfg.batch_size,
                      cfg.bf16, cfg.noise, reuse, show_progress=show_progress and D.is_main())
    sample_seconds = time.perf_counter() - t1
    feats, probs = extract(extractor, images, bf16=False)
    feats, probs = D.gather_cat(feats, cfg.n), D.gather_cat(probs, cfg.n)
    text = _alignment(bundle, cfg, images, cond.rows(lo, hi), torch.arange(lo, hi)) if bundle.is_text else {}
    res = {}
    if D.is_main():
        if ref_stats is not None:
            cfg = replace(cfg, precision_recall=False, kid=False)
        model, tokenizer = bundle.model, bundle.tokenizer
        res = score(feats, probs, ref_feats, extractor.metric_name, cfg, ref_stats)
        res.update(text)
        res.update({"n": cfg.n, "steps": strategy.steps, "seed": cfg.seed, "noise": cfg.noise,
                    "strategy": strategy.name or "custom", "strategy_source": strategy.source,
                    "model": getattr(model, "identity", ""), "tokenizer": tokenizer.identity,
                    "metric": extractor.metric_name, "featnet": getattr(extractor, "identity", ""),
                    "reference": cfg.reference_stats or f"{cfg.reference_data}:{cfg.reference_split}",
                    "world_size": D.world_size(), "sample_seconds": round(sample_seconds, 2),
                    "images_per_second": round(cfg.n / max(sample_seconds, 1e-9), 2)})
        if cfg.count_flops:
            from .metrics.cost import decode_flops, function_evaluations, sampling_flops
            res["nfe"] = function_evaluations(strategy)
            res["flops_per_image"] = sampling_flops(model if reuse else model.without_reuse(), strategy,
                                                    cond.rows(0, 1))
            res["gflops_per_image"] = round(res["flops_per_image"] / 1e9, 4)
            res["decode_flops_per_image"] = decode_flops(tokenizer)
        res["seconds"] = round(time.perf_counter() - t0, 2)
    return D.broadcast_object(res)


def prepare_text_evaluation(bundle: Bundle, cfg: EvalConfig):
    """The bundle's text conditioner with the evaluation's prompt pool (kept if already set for
    the same request, so a search reads the captions once)."""
    from .text.alignment import evaluation_prompts
    split = cfg.prompt_split or cfg.reference_split
    key = (cfg.prompts, cfg.reference_data, split)
    c = bundle.conditioner
    if c.eval_prompts and getattr(c, "eval_source", None) == key:
        return c
    prompts = evaluation_prompts(cfg.reference_data, split, cfg.prompts,
                                 skip_bad=cfg.skip_bad, background=cfg.background)
    return c.with_eval_prompts(prompts, source=key)


def _alignment(bundle: Bundle, cfg: EvalConfig, images: torch.Tensor, cond, sample_ids: torch.Tensor) -> dict:
    """R-precision and text-image similarity over all ranks' images (if there is a dual
    encoder), and CLIP score (if `cfg.clip` names a CLIP)."""
    from .text.alignment import alignment_hits
    from .text.dual_encoder import DualEncoder, DualTextEncoder
    res = {}
    if cfg.clip:
        res["clip_score"] = float(D.gather_cat(clip_scorer(bundle, cfg.clip).scores(images, cond.prompts),
                                               cfg.n).mean())
    enc = bundle.conditioner.encoder
    dual = DualEncoder.from_pretrained(cfg.alignment) if cfg.alignment else \
        enc.model if isinstance(enc, DualTextEncoder) else None
    if dual is None:
        return res
    pool = list(dict.fromkeys(bundle.conditioner.eval_prompts))
    hits, sims = alignment_hits(dual, images, cond.prompts, pool, sample_ids, seed=cfg.seed)
    hits, sims = D.gather_cat(hits, cfg.n), D.gather_cat(sims, cfg.n)
    return {**res, "r_precision": float(hits.mean()), "r_precision_distractors": min(99, len(pool) - 1),
            "text_image_similarity": float(sims.mean()), "prompts": len(pool)}


def clip_scorer(bundle: Bundle, spec: str):
    """The CLIP of `spec`, loaded once per bundle (a search evaluates many strategies)."""
    from .text.clip_score import ClipScorer
    held = getattr(bundle, "_clip_scorer", None)
    if held is None or held.spec != str(spec):
        held = ClipScorer(spec, bundle.device)
        bundle._clip_scorer = held
    return held


def evaluate_real(extractor, cfg: EvalConfig, show_progress: bool = True) -> dict:
    """Real-vs-real floor: reference (train) statistics vs the first n test images, both at the
    feature network's training side (a featnet's; as stored for Inception)."""
    side = getattr(getattr(extractor, "config", None), "image_size", None)
    ref = reference_features(extractor, cfg.reference_data, cfg.reference_split, show_progress=show_progress,
                             skip_bad=cfg.skip_bad, background=cfg.background, resolution=side)
    test = load_dataset(cfg.reference_data, "test", skip_bad=cfg.skip_bad, background=cfg.background,
                        resolution=side)
    n = min(cfg.n, len(test))
    feats, probs = extract(extractor, test.images[:n], show_progress=show_progress, desc="test features")
    return {**score(feats, probs, ref, extractor.metric_name, cfg), "n": n, "what": "real test vs train"}


def evaluate_reconstructions(tokenizer, extractor, cfg: EvalConfig, show_progress: bool = True) -> dict:
    """rFID: tokenizer reconstructions of the first n test images vs reference statistics (both at
    the tokenizer's image side)."""
    side = tokenizer.config.image_size
    ref = reference_features(extractor, cfg.reference_data, cfg.reference_split, show_progress=show_progress,
                             skip_bad=cfg.skip_bad, background=cfg.background, resolution=side)
    test = load_dataset(cfg.reference_data, "test", skip_bad=cfg.skip_bad, background=cfg.background,
                        resolution=side, channels=tokenizer.config.channels)
    n = min(cfg.n, len(test))
    recs = []
    device = tokenizer.codebook_device
    for s in progress(range(0, n, 500), desc="reconstruct", disable=not show_progress):
        x = to_float(test.images[s:min(s + 500, n)]).to(device)
        with autocast(device, cfg.bf16):
            recs.append(to_uint8(tokenizer.decode(tokenizer.encode(x)).float().cpu()))
    feats, probs = extract(extractor, torch.cat(recs))
    return {**score(feats, probs, ref, extractor.metric_name, cfg), "n": n,
            "what": "tokenizer reconstructions of test vs train", "tokenizer": tokenizer.identity}


# ----------------------------------------------------------------------------------------------
# `autonat evaluate` as one call
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate and in which feature space (the sampling/scoring settings are `eval`)."""
    what: str = opt("model", "model = a generator; real = the real-vs-real floor (test images vs the "
                             "reference); reconstructions = the tokenizer's rFID", choices=("model", "real", "reconstructions"))
    model: str = opt("fashion-mnist", "shipped name or model directory")
    tokenizer: str = opt("", "shipped name or directory (default: the model's)")
    strategy: str = opt("maskgit", "a preset, autonat (searched for this model) or a strategy file (see `sample`)")
    steps: int = opt(8, "decoding steps T", min=1, max=4096)
    guidance: float | None = opt(None, "override s(t) with this constant", min=0.0, max=1000.0)
    reuse: bool = opt(True, "ENAT: reuse features across steps (--no-reuse recomputes every step)")
    features: str = opt("fmnist", "feature network: a featnet (the shipped Fashion-MNIST one, or --featnet) "
                                  "or InceptionV3 (pytorch-fid weights)", choices=("fmnist", "inception"))
    featnet: str = opt("", "feature-network directory (from `autonat featnet train`; default: shipped)")
    inception_weights: str = opt("", "pytorch-fid InceptionV3 weights file (pt_inception-2015-12-05-6726825d.pth)")
    device: str = opt("auto", "auto (CUDA if available), cpu, cuda, cuda:N")
    eval: EvalConfig = opt(default_factory=EvalConfig, help="sampling and scoring")

    def __post_init__(self):
        validate(self)


def load_feature_extractor(features: str, featnet: str = "", inception_weights: str = "", device="cpu"):
    """The feature network a FID is measured with (`metric_name` names it in every result)."""
    from .metrics.reference import load_extractor
    if features == "inception":
        return load_extractor("inception", inception_weights or None, device)
    return load_extractor("fmnist", featnet or None, device)


def feature_warning(extractor, reference_data: str) -> str | None:
    """A loud warning when data other than Fashion-MNIST is scored with the Fashion-MNIST network."""
    if getattr(extractor, "metric_name", "") == "fmnist" and reference_data not in ("fashion-mnist", "fmnist"):
        return (f"warning: scoring {reference_data} with the Fashion-MNIST feature network (fid_fmnist): "
                f"its features know clothing, not your images. Train one on your data with "
                f"`autonat featnet train --data {reference_data} --out runs/featnet` and pass --featnet "
                f"runs/featnet (results then say fid_<name>)")
    return None


def run_evaluation(cfg: EvaluateConfig, show_progress: bool = True, log=None) -> dict:
    """Evaluate as configured; returns the result dict on every rank (see `evaluate_model`)."""
    from .jobs import pick_device
    device = D.local_device(pick_device(cfg.device))
    D.init_from_env(device)
    extractor = load_feature_extractor(cfg.features, cfg.featnet, cfg.inception_weights, device)
    warn = feature_warning(extractor, cfg.eval.reference_data)
    if warn and log and D.is_main():
        log(warn)
    if cfg.what == "real":
        res = evaluate_real(extractor, cfg.eval, show_progress)
    elif cfg.what == "reconstructions":
        from .tokenizer import load as load_tokenizer
        tok = load_tokenizer(cfg.tokenizer, device) if cfg.tokenizer else \
            Bundle.load(cfg.model, device=device).tokenizer
        res = evaluate_reconstructions(tok, extractor, cfg.eval, show_progress)
    else:
        bundle = Bundle.load(cfg.model, tokenizer=cfg.tokenizer or None, device=device)
        st = bundle.strategy(cfg.strategy, cfg.steps, cfg.guidance)
        res = evaluate_model(bundle, st, extractor, cfg.eval, None, show_progress, reuse=cfg.reuse)
        res.update({"model_name": str(cfg.model), "reuse": cfg.reuse})
    if D.is_main():
        res["featnet"] = getattr(extractor, "identity", "")
        res["metric"] = extractor.metric_name
    return res
