"""The search as one library call: `run(config, out) -> SearchReport` (the CLI only parses and prints).

    generation-only: load the model, search its generation strategy (Searcher.search_generation)
    full (Algorithm 1): train proxies on a token cache, alternate (Searcher.alternate)
    then, always: re-evaluate the initial and the found strategy on fresh seeds (and, for the full
    search, the paper's Table 6a: which half of the search helps), write best_strategy.json,
    search_config.json, report.md and plots into `out`, and install the strategy into the model
    directory's strategies/ (so `--strategy autonat` finds it for that model, and only for it).

Re-running the same command resumes from `out/trials.sqlite`; running it with other settings into
the same `out` is refused (the store would mix trials of different searches).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import distributed as D
from ..config import config_from_dict, config_to_dict
from ..io import AutonatError, atomic_write_json, load_json
from ..jobs import pick_device
from ..presets import resolve_strategy
from ..strategy import Strategy
from .generation import KNOBS, searched_knobs
from .loop import SearchConfig, Searcher, starts
from .report import write_report


@dataclass
class SearchReport:
    best: Strategy                       # the found strategy (name autonat-T{steps})
    mask_dist: str                       # p(r) of the model it was found for
    final: dict                          # fresh-seed FIDs: baseline, found, ratio (+ ablation)
    summary: dict = field(default_factory=dict)
    installed: str = ""                  # where `--strategy autonat` now finds it ("" if nowhere)


def _check_out(out: Path, cfg: SearchConfig) -> None:
    """Refuse an `out` that holds a search with other settings (or is not a directory)."""
    if out.exists() and not out.is_dir():
        raise AutonatError(f"--out {out} exists and is not a directory")
    store = out / "trials.sqlite"
    if store.exists():                      # a damaged store is refused before anything is written
        from .store import TrialStore
        TrialStore.open_existing(store).close()
    saved = out / "search_config.json"
    if not saved.is_file():
        return
    try:
        old = config_from_dict(SearchConfig, load_json(saved), what=str(saved))
    except AutonatError:
        old = None
    if old != cfg:
        a, b = (config_to_dict(old) if old else {}), config_to_dict(cfg)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise AutonatError(f"{out} holds a search with other settings ({', '.join(diff) or 'unreadable'} "
                           f"differ); re-run with the same options to resume it, or choose a new --out")


def _screen_mode(cfg: SearchConfig, n_starts: int, log) -> str:
    """The screening actually done: hand settings change every knob, so with a subset of knobs
    only the listed starts are screened; one start and no hand grid leaves nothing to screen."""
    mode = cfg.screen
    if mode == "hand" and set(cfg.gen.knobs) != set(KNOBS):
        log(f"[screen] --knobs {','.join(cfg.gen.knobs)}: the hand settings change every knob, so only the "
            f"listed start(s) are screened")
        mode = "starts"
    if mode == "starts" and n_starts == 1:
        mode = "none"
    return mode


def _screen_candidates(specs: list[str], inits: list[Strategy], bundle, steps: int,
                       hand: bool) -> list[tuple[str, Strategy]]:
    """The listed starts, then (with `hand`) the hand grid, without duplicates, fitted to the model."""
    from ..presets import HAND_GRID
    cands = list(zip(specs, inits))
    if hand:
        for spec in HAND_GRID:
            if spec not in specs:
                cands.append((spec, bundle.strategy(spec, steps)))
    return cands


def run(cfg: SearchConfig, out: str | Path, log=print, show_progress: bool = False) -> SearchReport:
    """Run (or resume) a search; see the module docstring."""
    from ..evaluation import feature_warning, load_feature_extractor
    from ..metrics.fid import FeatureStats
    from ..metrics.reference import reference_features
    out = Path(out)
    if cfg.only == "all" and not cfg.tokens:
        raise AutonatError("a full search (--only all) needs --tokens (a token cache); use "
                           "--only generation to search the strategy of an existing model")
    inits = [resolve_strategy(spec, cfg.steps) for spec in starts(cfg.init_strategy)]   # bad specs fail first
    for st in inits:
        searched_knobs(cfg.gen.knobs, st)                      # ... and knobs the start's order ignores
    init = inits[0]
    _check_out(out, cfg)
    device = D.local_device(pick_device(cfg.device))
    D.init_from_env(device)
    log = log if D.is_main() else (lambda *_: None)
    t0 = time.perf_counter()
    extractor = load_feature_extractor(cfg.features, cfg.featnet, cfg.inception_weights, device)
    if cfg.ref_stats:
        FeatureStats.load_npz(cfg.ref_stats)                 # a bad file fails before any work
    if cfg.only == "generation":
        from ..bundle import Bundle
        bundle = Bundle.load(cfg.model, tokenizer=cfg.tokenizer or None, device=device)
        inits = [bundle.strategy(st, cfg.steps) for st in inits]    # ... and fit the model
        init = inits[0]
        tokenizer = bundle.tokenizer
    else:
        from ..tokenizer import load as load_tokenizer
        from ..tokens import TokenCache
        cache = TokenCache.open(cfg.tokens)
        tok_ref = cfg.tokenizer or cache.tokenizer_ref()
        tokenizer = load_tokenizer(tok_ref, device)
        cache.check_tokenizer(tokenizer.identity, str(tok_ref))
    if D.is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "search_config.json", config_to_dict(cfg))
    warn = None if cfg.ref_stats else feature_warning(extractor, cfg.ref_data)
    if warn:
        log(warn)
    ref = reference_features(extractor, cfg.ref_data, cfg.ref_split, show_progress=show_progress,
                             skip_bad=cfg.skip_bad, background=cfg.background,
                             resolution=tokenizer.config.image_size) if D.is_main() and not cfg.ref_stats else None
    hand = None
    if cfg.only == "generation":
        s = Searcher(out, cfg, tokenizer, extractor, ref, log=log, show_progress=show_progress)
        specs = starts(cfg.init_strategy)
        screen = _screen_mode(cfg, len(specs), log)
        screening: list[dict] = []
        if screen == "none":
            pairs = list(zip(specs, inits))
        else:
            cands = _screen_candidates(specs, inits, bundle, cfg.steps, screen == "hand")
            screening = s.screened(bundle, cands)
            top = screening[0]["spec"]
            pairs = [(top, dict(cands)[top])]
            confirmed = f", confirmed {screening[0]['confirm']:.3f}" if "confirm" in screening[0] else ""
            log(f"[screen] searching from {top} (search-seed FID {screening[0]['fid']:.3f}{confirmed})")
            hand = dict(cands)[top] if top != specs[0] else None     # another setting beat the first start
        results = [s.search_generation(bundle, st, tag="gen" if len(pairs) == 1 else f"gen-{spec}")
                   for spec, st in pairs]
        res = min(results, key=lambda r: r.best_value)
        best, mask_dist = res.best, bundle.model.meta.get("training", {}).get("mask_dist", "")
        model = baseline_model = bundle
        summary = {"evaluations": sum(r.evaluations for r in results) + len(screening),
                   "updates": sum(r.updates for r in results), "best_search_fid": res.best_value,
                   "screening": screening,
                   "starts": {spec: {"best_search_fid": r.best_value, "order": r.best.order}
                              for (spec, _), r in zip(pairs, results)}}
    else:
        template = cfg.proxy.template(cfg.tokens, cfg.model, cfg.bf16, str(device))
        s = Searcher(out, cfg, tokenizer, extractor, ref, train_template=template, log=log,
                     show_progress=show_progress)
        alt = s.alternate()
        best, model, mask_dist = alt["strategy"], alt["model"], alt["mask_dist"].spec
        baseline_model = s.trained(cfg.init_mask_dist)
        summary = {"alternations": alt["alternations"], "baseline_search_fid": alt["alternations"][0]["fid"]}
    # Fresh seeds, never seen by the search: the numbers to report.
    final = {"baseline": s.final_eval(baseline_model, init, "final-baseline"),
             "found": s.final_eval(model, best, "final-found"), "n": cfg.n_final, "seed": cfg.final_seed}
    final["ratio"] = final["found"] / final["baseline"]
    if model.is_text:   # F = FID + alignment term: keep the two parts of each final evaluation
        final["alignment_weight"] = cfg.alignment_weight
        final["detail"] = {k: v for k, v in s.final_metrics.items()}
    if hand is not None:        # the screened setting the search started from, when it is not the baseline
        final["best_hand"] = {"spec": screening[0]["spec"], "fid": s.final_eval(model, hand, "final-best-hand")}
    if cfg.only == "all":   # the paper's Table 6a: which half of the search (training / generation) helps
        final["ablation"] = {"baseline": final["baseline"],
                             "generation_only": s.final_eval(baseline_model, best, "final-gen-only"),
                             "training_only": s.final_eval(model, init, "final-train-only"),
                             "both": final["found"]}
    best = replace(best, name=f"autonat-T{cfg.steps}", source=str(out / "best_strategy.json"))
    summary.update({"final": final, "metric": extractor.metric_name, "featnet": extractor.identity,
                    "reference": cfg.ref_stats or f"{cfg.ref_data}:{cfg.ref_split}", "n": cfg.n, "crn": cfg.crn,
                    "mask_dist": mask_dist, "seconds": time.perf_counter() - t0,
                    "method": cfg.gen.method, "steps": cfg.steps})
    report = SearchReport(best, mask_dist, final, summary)
    if D.is_main():
        extra = {"mask_dist": mask_dist, "final": final, "method": cfg.gen.method,
                 "searched_for": model.model.identity, "featnet": extractor.identity}
        best.save(out / "best_strategy.json", extra=extra)
        write_report(out, s.store, init, best, summary)
        report.installed = _install(model.model, best, extra, log)
    s.store.close()
    return report


def _install(model, best: Strategy, extra: dict, log) -> str:
    """Copy the found strategy into the model directory's strategies/T{T}.json (a user's model
    directory or aMUSEd pipeline directory; shipped models live inside the package and are left alone)."""
    from ..assets import SHIPPED
    from ..muse.amused import is_amused_dir
    source = str(getattr(model, "source", ""))
    if not source or source in SHIPPED["model"] or not ((Path(source) / "config.json").is_file()
                                                         or is_amused_dir(source)):
        log(f"found strategy: use it with --strategy {best.source}")
        return ""
    dest = Path(source) / "strategies" / f"T{best.steps}.json"
    best.save(dest, extra=extra)
    log(f"installed the found strategy as {dest} (`--strategy autonat --steps {best.steps}` uses it)")
    return str(dest)
