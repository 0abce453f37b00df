"""AutoNAT's alternating optimisation (Algorithm 1) and the generation-only search, with every
FID evaluation and every training recorded in the trial store (resumable after a kill).

    init p(r), generation strategy
    repeat:
        generation strategy <- OptimizeGenerationStrategy(model trained with p(r))
        p(r)                <- OptimizeTrainingStrategy(generation strategy)   (Beta line search)
        model               <- TrainModel(p(r))                                (cached)
        F_new               <- Evaluate(generation strategy, model)
    until |F_new - F_prev| <= eps  (or max alternations)

A line-search result replaces the current p(r) only if it beats it under the same generation
strategy (the initial p(r), e.g. arccos, need not be a Beta), so F never gets worse from one
alternation to the next on the search seeds.

Objective evaluations use common random numbers by default (same labels and noise for every
candidate: seed `seed`); with `crn=False` every evaluation draws fresh seeds, as the
released code does. The reported numbers are re-evaluated at the end on *fresh* seeds
(`final_seed`, never used during the search) so they are not selection-biased.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .. import distributed as D
from ..bundle import Bundle
from ..checkpoint import has_checkpoint
from ..config import config_to_dict, opt, validate
from ..data import parse_background
from ..evaluation import EvalConfig, evaluate_model
from ..io import sha256_file
from ..masking import SAMPLING_VERSION, Arccos, Beta, MaskRatioDistribution
from ..models.registry import load_model
from ..presets import resolve_strategy
from ..strategy import Strategy
from ..training import TrainConfig, train
from .generation import GenSearchConfig, SearchResult, optimize_generation, planned_evaluations, searched_knobs
from .pattern import late_refinement
from .store import TrialStore, trial_key
from .training_strategy import BetaSearchConfig, line_search_beta, moment_matched_beta


def starts(init_strategy: str) -> list[str]:
    """The start strategies of a search (`init_strategy` may list several, comma-separated). A
    preset's own arguments are comma-separated numbers too (`halton:1,1,1.2,1`), so a piece that is
    a number continues the spec before it: `enat,halton:1,1,1,0` is two starts, not five."""
    specs: list[str] = []
    for piece in (p.strip() for p in init_strategy.split(",")):
        if not piece:
            continue
        try:
            float(piece)
            number = True
        except ValueError:
            number = False
        if number and specs:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs or ["maskgit"]


class _NoStore:
    """The trial store as seen from a non-main rank: events are the main rank's to log."""

    def log_event(self, kind: str, payload: dict) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ProxyTraining:
    """How each candidate p(r) is trained in the full search (the proxy model's recipe)."""
    train_steps: int = opt(3000, "proxy training budget per candidate p(r) (steps)", min=1)
    train_batch_size: int = opt(256, "proxy training batch size", min=1)
    train_lr: float = opt(1e-3, "proxy training learning rate", min=0.0, max=10.0)
    train_ema: float = opt(0.999, "proxy EMA decay", min=0.0, max=0.99999)
    init_from: str = opt("", "warm-start every candidate training from this model directory")

    def template(self, tokens: str, model: str, bf16: bool, device: str) -> TrainConfig:
        return TrainConfig(tokens=tokens, model=model, steps=self.train_steps, batch_size=self.train_batch_size,
                           lr=self.train_lr, warmup=min(500, self.train_steps // 10), ema=self.train_ema,
                           init_from=self.init_from, bf16=bf16, device=device, log_every=100, ckpt_every=1000)

    def __post_init__(self):
        validate(self)


@dataclass(frozen=True)
class SearchConfig:
    """An AutoNAT search: Algorithm 1 (`only="all"`) or a generation-only search of a model."""
    only: str = opt("all", "all = Algorithm 1 (trains proxies on --tokens); generation = search the "
                           "strategy of an existing --model", choices=("all", "generation"))
    model: str = opt("tiny", "full search: the size to train (tiny, small, enat-tiny, ...); generation "
                             "search: a model directory or shipped name")
    tokens: str = opt("", "token cache (full search)")
    tokenizer: str = opt("", "tokenizer (default: the model's / the cache's)")
    features: str = opt("fmnist", "feature network of the FID: a featnet (the shipped Fashion-MNIST one, or "
                                  "--featnet) or InceptionV3 (pytorch-fid weights)", choices=("fmnist", "inception"))
    featnet: str = opt("", "feature network directory defining the FID (default: the shipped "
                           "Fashion-MNIST one)")
    inception_weights: str = opt("", "pytorch-fid InceptionV3 weights file (--features inception)")
    ref_stats: str = opt("", "pytorch-fid .npz reference statistics (mu, sigma), e.g. ImageNet-256's, used "
                             "instead of --ref-data")
    ref_data: str = opt("fashion-mnist", "real data whose statistics FID is measured against "
                                         "(fashion-mnist, an IDX directory or your image folder)")
    ref_split: str = opt("train", "split of the reference data (text models: the held-out split, e.g. test, "
                                  "whose captions are the prompts)")
    prompts: str = opt("", "text models: a file of evaluation prompts, one per line (default: one caption per "
                           "image of --ref-data/--ref-split)")
    prompt_split: str = opt("", "text models: the split of --ref-data whose captions are the prompts (default: "
                                "--ref-split)")
    alignment: str = opt("", "text models: dual encoder directory for R-precision (default: the model's own)")
    clip: str = opt("", "text models: a transformers CLIP model (directory or hub id) for CLIP score")
    alignment_weight: float = opt(0.1, "text models: the search minimises F = FID + w * (100 - A), A = "
                                       "R-precision in % (with a dual encoder), else CLIP score (with "
                                       "--clip): 1 FID point is worth 1/w points of A (0 = FID only, as the "
                                       "paper's MS-COCO search)", min=0.0, max=1000.0)
    skip_bad: bool = opt(False, "skip unreadable files of the reference data instead of failing")
    background: str = opt("white", "colour transparent pixels of image files are composited on: white, black, "
                                   "gray, #RRGGBB or R,G,B", check=parse_background)
    steps: int = opt(4, "T of the searched strategy", min=2, max=1024)
    n: int = opt(2000, "samples per FID evaluation during the search", min=2, aliases=("--num-samples",))
    n_final: int = opt(10000, "samples of the final fresh-seed evaluations", min=2)
    seed: int = opt(0, "search seed (common random numbers, SPSA perturbations)", min=0)
    final_seed: int = opt(10**6, "seed of the final evaluations (disjoint from search seeds)", min=0)
    crn: bool = opt(True, "common random numbers for every candidate (--no-crn: fresh noise per "
                          "evaluation, as released)")
    batch_size: int = opt(500, "sampling batch size", min=1)
    eps: float = opt(0.1, "the alternation stops when |F_new - F_prev| <= eps", min=0.0)
    max_alternations: int = opt(3, "alternations of Algorithm 1", min=1)
    init_mask_dist: MaskRatioDistribution = opt(Arccos(), "initial p(r) of the full search")
    init_strategy: str = opt("maskgit", "initial generation strategy: a preset or a strategy file; a "
                                        "comma-separated list searches from each start (e.g. maskgit,halton: "
                                        "both token orders) and keeps the best")
    screen: str = opt("hand", "generation search with all knobs: first evaluate the start(s) and the hand "
                              "settings of autonat.presets.HAND_GRID (both token orders) on the search "
                              "seeds and search from the best (hand); evaluate only the listed starts and "
                              "search from the best (starts); or search from every start in turn (none)",
                      choices=("hand", "starts", "none"))
    validate_top: int = opt(3, "re-evaluate this many of the best candidates on a second noise set "
                               "(validation_seed) and keep the best mean: guards against the search "
                               "fitting one set of samples (1 = off)", min=1)
    screen_confirm: int = opt(3, "re-evaluate this many of the best screened settings with --late-n samples "
                                 "on the search and the validation seeds and start from the best mean (at "
                                 "the search's n, FID can rank close settings the wrong way round); "
                                 "0 or 1 = off", min=0)
    late_evals: int = opt(16, "late refinement: evaluations of a small-step compass search from the kept "
                              "point with --late-n samples, accepted only if it also wins on the "
                              "validation seed (+2 evaluations); 0 = off", min=0)
    late_n: int = opt(0, "samples per late-refinement evaluation (0: 4 x --n, at most --n-final)", min=0)
    late_confirm_n: int = opt(0, "when the search and the validation seeds disagree on the late candidate, "
                                 "measure it and the incumbent again with this many samples on both sets and "
                                 "let the lower mean decide (0: --n-final; equal to --late-n: off, the first "
                                 "mean decides)", min=0)
    validation_seed: int = opt(500_000, "seed of that second noise set (neither the search's nor the "
                                        "final evaluations')", min=0)
    bf16: bool = opt(True, "sample (and train proxies) in bf16")
    device: str = opt("auto", "auto (CUDA if available), cpu, cuda, cuda:N")
    gen: GenSearchConfig = opt(default_factory=GenSearchConfig, help="generation-strategy optimiser")
    beta: BetaSearchConfig = opt(default_factory=BetaSearchConfig, help="training-strategy line search")
    proxy: ProxyTraining = opt(default_factory=ProxyTraining, help="proxy training (full search)")

    def __post_init__(self):
        validate(self)


class Searcher:
    """Holds the shared evaluation context (tokenizer, feature network, reference features) and
    the trial store; exposes cached `fid(bundle, strategy)` and `trained(mask_dist)`."""

    def __init__(self, out: str | Path, cfg: SearchConfig, tokenizer, extractor, ref_feats,
                 train_template: TrainConfig | None = None, log=print, show_progress: bool = False):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg, self.tokenizer, self.extractor, self.ref_feats = cfg, tokenizer, extractor, ref_feats
        self.train_template = train_template
        # Only the main process reads and writes the store (results are broadcast); the other
        # ranks never open the file, which the main one may be creating at that instant.
        self.store = TrialStore(self.out / "trials.sqlite") if D.is_main() else _NoStore()
        self.log, self.show = log, show_progress
        self.fresh_counter = 0
        self.final_metrics: dict[str, dict] = {}
        # Trials are keyed by the reference set too: another --ref-data never reuses a cached FID.
        self.ref_id = sha256_file(cfg.ref_stats)[:16] if cfg.ref_stats else "" if ref_feats is None else \
            hashlib.sha256(ref_feats.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]

    # -- cached primitives -------------------------------------------------------------------
    def fid(self, bundle: Bundle, strategy: Strategy, *, seed: int | None = None, n: int | None = None,
            tag: str = "search", quiet: bool = False) -> float:
        """The search objective F of `strategy` (FID; for a text model FID + the alignment term)."""
        return self.evaluate(bundle, strategy, seed=seed, n=n, tag=tag, quiet=quiet)["objective"]

    def evaluate(self, bundle: Bundle, strategy: Strategy, *, seed: int | None = None, n: int | None = None,
                 tag: str = "search", quiet: bool = False) -> dict:
        """{objective, fid (, r_precision)} of `strategy`, from the trial store when known."""
        n = n or self.cfg.n
        if seed is None:
            if self.cfg.crn:
                seed = self.cfg.seed
            else:                      # released behaviour: fresh noise for every evaluation
                self.fresh_counter += 1
                seed = self.cfg.seed + 1000 * self.fresh_counter
        inputs = {"strategy": strategy.to_dict(), "n": n, "seed": seed, "noise": "indexed",
                  "metric": self.extractor.metric_name, "featnet": self.extractor.identity,
                  "reference": self.ref_id}
        if bundle.is_text:    # the prompts and the alignment term are part of what was measured
            inputs.update({"prompts": self.cfg.prompts and sha256_file(self.cfg.prompts)[:16],
                           **({"prompt_split": self.cfg.prompt_split} if self.cfg.prompt_split else {}),
                           "alignment": self.cfg.alignment, "alignment_weight": self.cfg.alignment_weight,
                           **({"clip": self.cfg.clip} if self.cfg.clip else {})})
        key = trial_key({"model": bundle.model.identity, **inputs})
        # Under torchrun only rank 0 reads/writes the store; its answer is broadcast so every
        # rank takes the same branch (evaluations are collective).
        hit = D.broadcast_object(self.store.get_eval(key) if D.is_main() else None)
        if hit is not None:
            return {"objective": hit["fid"], "fid": hit.get("fid_only", hit["fid"]),
                    **{k: hit[k] for k in ("r_precision", "clip_score") if k in hit}}
        t0 = time.perf_counter()
        ecfg = EvalConfig(n=n, seed=seed, batch_size=self.cfg.batch_size, bf16=self.cfg.bf16,
                          reference_stats=self.cfg.ref_stats, reference_data=self.cfg.ref_data,
                          reference_split=self.cfg.ref_split, skip_bad=self.cfg.skip_bad,
                          background=self.cfg.background, prompts=self.cfg.prompts,
                          prompt_split=self.cfg.prompt_split,
                          alignment=self.cfg.alignment, clip=self.cfg.clip, precision_recall=False,
                          count_flops=False)
        res = evaluate_model(bundle, strategy, self.extractor, ecfg, self.ref_feats, show_progress=self.show)
        wall = time.perf_counter() - t0
        out = {"objective": res["fid"], "fid": res["fid"], **{k: res[k] for k in ("r_precision", "clip_score")
                                                               if k in res}}
        agree = out.get("r_precision", out["clip_score"] / 100 if "clip_score" in out else None)
        if agree is not None:
            out["objective"] = res["fid"] + self.cfg.alignment_weight * 100.0 * (1.0 - agree)
        if D.is_main():
            self.store.put_eval(key, tag=tag, model=bundle.model.identity, inputs=inputs, seed=seed, n=n,
                                fid=out["objective"], metrics={"is": res["is"], "fid_only": res["fid"],
                                                               **{k: v for k, v in out.items()
                                                                  if k in ("r_precision", "clip_score")}},
                                wall_seconds=wall)
        if not quiet:
            extra = "".join(f", {name} {out[k]:.3f}" for k, name in (("fid", "FID"), ("r_precision", "R-precision"),
                                                                     ("clip_score", "CLIP score")) if k in out and agree is not None)
            self.log(f"[{tag}] F {out['objective']:.3f}{extra} (n={n}, seed={seed}, {wall:.1f}s)")
        return out

    def trained(self, mask_dist: MaskRatioDistribution) -> Bundle:
        """The proxy model trained with p(r) = mask_dist under the template config (cached by
        inputs), with the search's tokenizer."""
        tcfg = replace(self.train_template, mask_dist=mask_dist)
        key = trial_key({"train": config_to_dict(tcfg), "mask_sampling": SAMPLING_VERSION})
        hit = D.broadcast_object(self.store.get_training(key) if D.is_main() else None)
        if hit is not None and (Path(hit["path"]) / "model.safetensors").is_file():
            return Bundle(load_model(hit["path"]), self.tokenizer)
        path = self.out / "trainings" / key
        t0 = time.perf_counter()
        self.log(f"[train] p(r) = {tcfg.mask_dist}: {tcfg.model}, {tcfg.steps} steps -> {path}")
        train(tcfg, path, resume=has_checkpoint(path), show_progress=self.show)
        model = load_model(path)
        if D.is_main():
            self.store.put_training(key, mask_dist=tcfg.mask_dist.spec, config=config_to_dict(tcfg), seed=tcfg.seed,
                                    path=str(path), model_identity=model.identity,
                                    wall_seconds=time.perf_counter() - t0)
        return Bundle(model, self.tokenizer)

    # -- phases --------------------------------------------------------------------------------
    def search_generation(self, bundle: Bundle, init: Strategy, tag: str = "gen") -> SearchResult:
        self.fresh_counter = 0
        n_tok = bundle.model.seq_len
        if self.cfg.gen.method == "fd" and "r" in self.cfg.gen.knobs and n_tok and self.cfg.gen.eps_ratio * n_tok < 1:
            self.log(f"[{tag}] warning: the finite-difference step for r ({self.cfg.gen.eps_ratio:g}) moves fewer "
                     f"than one of the {n_tok} tokens, so most r differences will be exactly zero; "
                     f"consider --eps-ratio {1 / n_tok:.3g} or more")
        t0 = time.perf_counter()
        planned = planned_evaluations(self.cfg.gen, init.steps)

        def progress(rec: dict) -> None:
            k, spent = rec["eval"], time.perf_counter() - t0
            eta = spent / k * (planned - k)
            self.log(f"[{tag}] evaluation {k}/{planned}: {'F' if getattr(bundle, 'is_text', False) else 'FID'} {rec['value']:.3f} "
                     f"(best {rec['best_value']:.3f}), "
                     f"{spent / 60:.1f} min so far, ETA {eta / 60:.1f} min")
        res = optimize_generation(lambda st: self.fid(bundle, st, tag=tag, quiet=True), init, self.cfg.gen,
                                  seed=self.cfg.seed, on_eval=progress,
                                  on_update=lambda u, st, f: self.log(
                                      f"[{tag}] update {u}: F = {f:.3f}" if f == f else f"[{tag}] update {u}"))
        res = self.validated(bundle, res, tag)
        res = self.refined_late(bundle, res, tag)
        self.store.log_event("generation_search", {"tag": tag, "model": bundle.model.identity,
                                                   "best": res.best.to_dict(), "best_value": res.best_value,
                                                   "evaluations": res.evaluations, "updates": res.updates,
                                                   "seconds": time.perf_counter() - t0,
                                                   "history": [{k: h[k] for k in ("eval", "value", "best_value", "phase")}
                                                               for h in res.history]})
        return res

    def late_samples(self) -> int:
        """Samples per evaluation of the screening's confirmation and the late refinement."""
        return self.cfg.late_n or min(4 * self.cfg.n, self.cfg.n_final)

    def on_both_sets(self, bundle: Bundle, st: Strategy, n: int, tag: str) -> tuple[float, float]:
        """(F on the search seeds, F on the validation seeds) of `st` with `n` samples each."""
        return (self.fid(bundle, st, n=n, tag=tag, quiet=True),
                self.fid(bundle, st, n=n, seed=self.cfg.validation_seed, tag=tag, quiet=True))

    def screened(self, bundle: Bundle, candidates: list[tuple[str, Strategy]]) -> list[dict]:
        """F of each (spec, strategy) on the search seeds, best first (the screening stage); the
        best `screen_confirm` are then re-ranked by their mean F at the late-refinement size on
        the search and the validation seeds."""
        rows = []
        for k, (spec, st) in enumerate(candidates, 1):
            f = self.fid(bundle, st, tag="screen", quiet=True)
            rows.append({"spec": spec, "fid": f, "order": st.order})
            self.log(f"[screen] {k}/{len(candidates)} {spec}: {'F' if getattr(bundle, 'is_text', False) else 'FID'} {f:.3f}")
        rows.sort(key=lambda r: r["fid"])
        k = min(self.cfg.screen_confirm, len(rows))
        if k > 1:     # confirm the order of the best few with more samples, on two noise sets
            n = self.late_samples()
            specs = dict(candidates)
            for r in rows[:k]:
                r["confirm"] = sum(self.on_both_sets(bundle, specs[r["spec"]], n, "screen-confirm")) / 2
                self.log(f"[screen] confirm {r['spec']}: mean over two noise sets at n = {n}: {r['confirm']:.3f}")
            rows[:k] = sorted(rows[:k], key=lambda r: r["confirm"])
        self.store.log_event("screen", {"model": bundle.model.identity, "candidates": rows})
        return rows

    def validated(self, bundle: Bundle, res: SearchResult, tag: str) -> SearchResult:
        """The best of the `validate_top` lowest-F distinct candidates by the mean of their search
        F and their F on the validation noise set (`best_value` becomes that mean)."""
        k = self.cfg.validate_top
        if k <= 1 or not res.history:
            return res
        seen, cands = set(), []
        for rec in sorted(res.history, key=lambda r: r["value"]):
            key = trial_key(rec["strategy"])
            if key not in seen:
                seen.add(key)
                cands.append(rec)
            if len(cands) == k:
                break
        scored = []
        for rec in cands:
            st = Strategy.from_dict(rec["strategy"])
            v = self.fid(bundle, st, seed=self.cfg.validation_seed, tag=f"{tag}-validate", quiet=True)
            scored.append(((rec["value"] + v) / 2, rec["value"], v, st))
        mean, search_f, val_f, best = min(scored, key=lambda x: x[0])
        self.log(f"[{tag}] validation of the {len(cands)} best: kept F = {search_f:.3f} (search) / "
                 f"{val_f:.3f} (validation seed)")
        self.store.log_event("validation", {"tag": tag, "candidates": [
            {"search": s_, "validation": v_, "strategy": st_.to_dict()} for _, s_, v_, st_ in scored]})
        return replace(res, best=best, best_value=mean, checks=res.checks + len(cands))

    def refined_late(self, bundle: Bundle, res: SearchResult, tag: str) -> SearchResult:
        """`late_refinement` of the kept point with `late_n` samples (more evaluations late)."""
        cfg = self.cfg
        if cfg.late_evals <= 0 or not res.history:
            return res
        n = self.late_samples()
        n_confirm = cfg.late_confirm_n or cfg.n_final
        name = "F" if getattr(bundle, "is_text", False) else "FID"
        out = late_refinement(
            lambda st: self.fid(bundle, st, n=n, tag=f"{tag}-late", quiet=True),
            lambda st: self.fid(bundle, st, n=n, seed=cfg.validation_seed, tag=f"{tag}-late-validate", quiet=True),
            res.best, searched_knobs(cfg.gen.knobs, res.best), cfg.late_evals, seed=cfg.seed + 1,
            on_eval=lambda rec: self.log(f"[{tag}-late] evaluation {rec['eval']}/{cfg.late_evals}: {name} "
                                         f"{rec['value']:.3f} (best {rec['best_value']:.3f}, n={n})"),
            confirm=lambda st: self.on_both_sets(bundle, st, n_confirm, f"{tag}-late-confirm"))
        verdict = "accepted" if out["accepted"] else "kept the incumbent"
        if "candidate_validation" in out:
            msg = (f"[{tag}-late] candidate {out['candidate_search']:.3f} / {out['candidate_validation']:.3f} vs "
                   f"incumbent {out['incumbent_search']:.3f} / {out['incumbent_validation']:.3f} "
                   f"(search / validation seed, n={n})")
            if "candidate_confirm" in out:
                (cs, cv), (is_, iv) = out["candidate_confirm"], out["incumbent_confirm"]
                msg += (f"; the two sets disagree, again with n={n_confirm}: candidate {cs:.3f} / {cv:.3f} vs "
                        f"incumbent {is_:.3f} / {iv:.3f}")
            self.log(f"{msg}: {verdict}")
        else:
            self.log(f"[{tag}-late] no point beat the incumbent ({out['incumbent_search']:.3f}, n={n})")
        self.store.log_event("late_refinement", {"tag": tag, "n": n, "n_confirm": n_confirm, **{k: v for k, v in out.items()
                                                                         if k not in ("strategy", "history")},
                                                 "history": [{k: h[k] for k in ("eval", "value", "best_value", "phase")}
                                                             for h in out["history"]],
                                                 "strategy": out["strategy"].to_dict()})
        return replace(res, best=out["strategy"],
                       checks=res.checks + len(out["history"]) + 2 * ("candidate_validation" in out)
                       + 4 * ("candidate_confirm" in out))

    def search_training(self, strategy: Strategy, start: tuple[float, float], tag: str = "train"):
        def objective(a: float, b: float) -> float:
            return self.fid(self.trained(Beta(a, b)), strategy, tag=tag)
        res = line_search_beta(objective, start[0], start[1], self.cfg.beta,
                               on_eval=lambda r: self.log(f"[{tag}] Beta({r['alpha']:g}, {r['beta']:g}): F = {r['value']:.3f}"))
        self.store.log_event("training_search", {"tag": tag, "alpha": res.alpha, "beta": res.beta,
                                                 "value": res.value, "history": res.history})
        return res

    def alternate(self) -> dict:
        """Algorithm 1. Returns {strategy, mask_dist, model, alternations: [...]}."""
        cfg = self.cfg
        init_dist = dist = cfg.init_mask_dist
        st = resolve_strategy(starts(cfg.init_strategy)[0], cfg.steps)
        model = self.trained(dist)
        baseline = self.fid(model, st, tag="baseline")
        rounds = [{"alternation": 0, "fid": baseline, "mask_dist": dist.spec, "strategy": st.to_dict()}]
        if isinstance(init_dist, Beta):
            start = (init_dist.alpha, init_dist.beta)
        else:  # the Beta with the same mean and variance (arccos: Beta(0.918, 0.524); uniform: Beta(1, 1))
            mean, var = min(max(init_dist.mean, 0.05), 0.95), init_dist.variance
            start = moment_matched_beta(mean, var if 0 < var < mean * (1 - mean) else 0.02)
        f_prev = float("inf")
        for it in range(1, cfg.max_alternations + 1):
            gres = self.search_generation(model, st, tag=f"gen{it}")
            st = gres.best                                    # F of the current p(r) with the new strategy:
            f_cur = self.fid(model, st, tag=f"gen{it}", quiet=True)   # on the search seeds, as the line search
            tres = self.search_training(st, start, tag=f"train{it}")
            start = (tres.alpha, tres.beta)
            if tres.value < f_cur:
                dist = Beta(tres.alpha, tres.beta)
                model = self.trained(dist)
            else:
                # The incumbent p(r) may lie outside the Beta family (arccos, fixed): a candidate
                # replaces it only if it is better under the same generation strategy.
                self.log(f"[train{it}] best Beta F = {tres.value:.3f} does not beat the current "
                         f"p(r) = {dist} (F = {f_cur:.3f}): kept")
            f_new = self.fid(model, st, tag=f"alt{it}")
            rounds.append({"alternation": it, "fid": f_new, "mask_dist": dist.spec, "strategy": st.to_dict()})
            self.store.log_event("alternation", rounds[-1])
            self.log(f"[alternation {it}] F = {f_new:.3f} with p(r) = {dist}")
            if abs(f_new - f_prev) <= cfg.eps:
                break
            f_prev = f_new
        return {"strategy": st, "mask_dist": dist, "model": model, "alternations": rounds}

    def final_eval(self, bundle: Bundle, strategy: Strategy, tag: str) -> float:
        """F on the fresh seeds the search never saw (n_final samples); the FID and R-precision
        behind it are kept in `final_metrics[tag]`."""
        res = self.evaluate(bundle, strategy, seed=self.cfg.final_seed, n=self.cfg.n_final, tag=tag)
        self.final_metrics[tag] = res
        return res["objective"]
