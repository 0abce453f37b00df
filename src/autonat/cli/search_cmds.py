"""`autonat search`: AutoNAT's alternating search, or a generation-only search of a model."""
from __future__ import annotations

import argparse
import time

from ..io import AutonatError
from .common import add_runtime_args, info, print_json


def register(sub) -> None:
    from ..search.generation import GenSearchConfig
    from ..search.loop import SearchConfig
    g, s = GenSearchConfig(), SearchConfig()
    p = sub.add_parser("search", help="AutoNAT strategy search (resumable: re-run the same command)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="search directory (trial store, results, report)")
    p.add_argument("--only", choices=("all", "generation"), default="all",
                   help="all = Algorithm 1 (needs --tokens); generation = search the strategy of --model")
    p.add_argument("--tokens", default=None, help="token cache (full search)")
    p.add_argument("--model", default="tiny",
                   help="full search: model size to train (tiny, small, enat-tiny...); "
                        "generation-only: model directory or shipped name")
    p.add_argument("--tokenizer", default=None, help="tokenizer (default: the model's / the cache's)")
    p.add_argument("--steps", type=int, default=s.steps, help="T of the searched strategy")
    p.add_argument("--method", choices=("fd", "spsa"), default=g.method)
    p.add_argument("--n", type=int, default=s.n, help="samples per FID evaluation during the search")
    p.add_argument("--n-final", type=int, default=s.n_final, help="samples for the final fresh-seed evaluation")
    p.add_argument("--seed", type=int, default=s.search_seed, help="search seed (common random numbers)")
    p.add_argument("--final-seed", type=int, default=s.final_seed)
    p.add_argument("--no-crn", action="store_true", help="fresh noise for every evaluation (as released)")
    p.add_argument("--max-updates", type=int, default=g.max_updates)
    p.add_argument("--max-evals", type=int, default=None, help="budget of FID evaluations per generation search")
    p.add_argument("--spsa-k", type=int, default=g.spsa_k)
    p.add_argument("--lr-ratio", type=float, default=g.lr_ratio)
    p.add_argument("--lr-other", type=float, default=g.lr_other)
    p.add_argument("--eps-ratio", type=float, default=g.eps_ratio)
    p.add_argument("--eps-other", type=float, default=g.eps_other)
    p.add_argument("--momentum", type=float, default=g.momentum)
    p.add_argument("--max-step-ratio", type=float, default=None,
                   help="cap on an update's change of each r (default: 0.02 for spsa, none for fd)")
    p.add_argument("--max-step-other", type=float, default=None,
                   help="cap on an update's change of each tau1/tau2/s (default: 0.1 for spsa, none for fd)")
    p.add_argument("--knobs", default="r,tau1,tau2,s", help="schedules to optimise (others stay fixed)")
    p.add_argument("--init-strategy", default=s.init_strategy, help="maskgit or a strategy file")
    p.add_argument("--init-mask-dist", default=s.init_mask_dist)
    p.add_argument("--eps", type=float, default=s.eps, help="alternation stops when |F_new - F_prev| <= eps")
    p.add_argument("--max-alternations", type=int, default=s.max_alternations)
    p.add_argument("--max-trainings", type=int, default=12, help="Beta line search budget per alternation")
    p.add_argument("--train-steps", type=int, default=3000, help="proxy training budget per candidate p(r)")
    p.add_argument("--train-batch-size", type=int, default=256)
    p.add_argument("--train-lr", type=float, default=1e-3)
    p.add_argument("--init-from", default="", help="warm-start every candidate training from this model")
    p.add_argument("--batch-size", type=int, default=s.batch_size, help="sampling batch size")
    p.add_argument("--featnet", default=None, help="feature network directory (default: shipped)")
    p.add_argument("--ref-data", default="fashion-mnist",
                   help="real data whose statistics FID is measured against (fashion-mnist, an IDX "
                        "directory or an image folder: use your training images)")
    p.add_argument("--ref-split", default="train")
    add_runtime_args(p)
    p.set_defaults(func=cmd_search)


def _default(value, fallback):
    return fallback if value is None else value


def cmd_search(args) -> int:
    from dataclasses import replace

    from .. import distributed as D
    from ..jobs import pick_device
    from ..metrics.reference import load_extractor, reference_features
    from ..models.registry import parse_model_name
    from ..search.generation import GenSearchConfig
    from ..search.loop import SearchConfig, Searcher
    from ..search.report import write_report
    from ..search.training_strategy import BetaSearchConfig
    from ..strategy import Strategy, maskgit
    from ..tokenizer import Tokenizer
    from ..training import TrainConfig

    device = D.local_device(pick_device(args.device))
    D.init_from_env(device)
    knobs = tuple(k.strip() for k in args.knobs.split(",") if k.strip())
    gen = GenSearchConfig(method=args.method, max_updates=args.max_updates,
                          max_evals=args.max_evals or 10**9, eps_ratio=args.eps_ratio, eps_other=args.eps_other,
                          lr_ratio=args.lr_ratio, lr_other=args.lr_other, momentum=args.momentum,
                          spsa_k=args.spsa_k, knobs=knobs, seed=args.seed,
                          max_step_ratio=_default(args.max_step_ratio, 0.02 if args.method == "spsa" else 0.0),
                          max_step_other=_default(args.max_step_other, 0.1 if args.method == "spsa" else 0.0))
    cfg = SearchConfig(steps=args.steps, n=args.n, n_final=args.n_final, search_seed=args.seed,
                       final_seed=args.final_seed, crn=not args.no_crn, batch_size=args.batch_size, bf16=args.bf16,
                       gen=gen, beta=BetaSearchConfig(max_trainings=args.max_trainings), eps=args.eps,
                       max_alternations=args.max_alternations, init_mask_dist=args.init_mask_dist,
                       init_strategy=args.init_strategy)
    extractor = load_extractor("fmnist", args.featnet, device)
    log = info if D.is_main() else (lambda *_: None)
    t0 = time.perf_counter()
    ref = reference_features(extractor, args.ref_data, args.ref_split, show_progress=not args.quiet) \
        if D.is_main() else None
    init = maskgit(args.steps) if args.init_strategy == "maskgit" else Strategy.load(args.init_strategy)
    if args.only == "generation":
        from ..pipeline import Pipeline
        pipe = Pipeline.from_pretrained(args.model, tokenizer=args.tokenizer, device=device)
        s = Searcher(args.out, cfg, pipe.tokenizer, extractor, ref, log=log, show_progress=False)
        res = s.search_generation(pipe.model, init)
        best, model, mask_dist = res.best, pipe.model, pipe.model.meta.get("training", {}).get("mask_dist", "")
        summary = {"evaluations": res.evaluations, "updates": res.updates, "best_search_fid": res.best_value}
    else:
        if not args.tokens:
            raise AutonatError("a full search (--only all) needs --tokens (a token cache)")
        from ..tokens import TokenCache
        cache = TokenCache.open(args.tokens)
        tok = Tokenizer.from_pretrained(args.tokenizer or cache.manifest["tokenizer_name"], device)
        cache.check_tokenizer(tok.identity, str(args.tokenizer or cache.manifest["tokenizer_name"]))
        arch, size = parse_model_name(args.model)
        template = TrainConfig(tokens=str(args.tokens), arch=arch, size=size, max_steps=args.train_steps,
                               batch_size=args.train_batch_size, lr=args.train_lr, init_from=args.init_from,
                               warmup_steps=min(500, args.train_steps // 10), bf16=args.bf16,
                               device=str(device), log_every=100, ckpt_every=1000)
        s = Searcher(args.out, cfg, tok, extractor, ref, train_template=template, log=log)
        out = s.alternate()
        best, model, mask_dist = out["strategy"], out["model"], out["mask_dist"]
        summary = {"alternations": out["alternations"], "baseline_search_fid": out["alternations"][0]["fid"]}
        baseline_model = s.trained(cfg.init_mask_dist)
    final_base = s.final_eval(model if args.only == "generation" else baseline_model, init, "final-baseline")
    final_found = s.final_eval(model, best, "final-found")
    final = {"baseline": final_base, "found": final_found, "n": cfg.n_final, "seed": cfg.final_seed,
             "ratio": final_found / final_base}
    if args.only != "generation":
        # The paper's Table 6a on fresh seeds: which half of the search (training / generation) helps.
        final["ablation"] = {
            "baseline": final_base,
            "generation_only": s.final_eval(baseline_model, best, "final-gen-only"),
            "training_only": s.final_eval(model, init, "final-train-only"),
            "both": final_found}
    summary.update({"final": final,
                    "metric": extractor.metric_name, "n": cfg.n, "crn": cfg.crn, "mask_dist": mask_dist,
                    "seconds": time.perf_counter() - t0, "method": args.method, "steps": args.steps})
    if D.is_main():
        best = replace(best, name=f"autonat-T{args.steps}")
        s.write_best(best, mask_dist, {"final": summary["final"], "method": args.method})
        write_report(args.out, s.store, init, best, summary)
        print_json({k: v for k, v in summary.items() if k != "alternations"})
    return 0
