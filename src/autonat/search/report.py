"""Search outputs: report.md and plots (FID vs evaluations, FID vs alternation, schedules before/after)."""
from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_bytes
from ..plots import plot_curves, plot_strategies
from ..strategy import Strategy
from .store import TrialStore


def _curves(store: TrialStore) -> dict[str, tuple[list, list]]:
    """Best-F-so-far per generation search; a screening stage before it counts as its first
    evaluations (so the curve shows the whole cost)."""
    screens = store.events("screen")
    screen = [c["fid"] for c in screens[-1]["candidates"]] if screens else []
    series = {}
    for ev in store.events("generation_search"):
        xs, ys, best = [], [], float("inf")
        for k, v in enumerate(screen, 1):
            best = min(best, v)
            xs.append(k)
            ys.append(best)
        for h in ev["history"]:
            xs.append(len(screen) + h["eval"])
            ys.append(min(best, h["best_value"]))
        series[ev["tag"]] = (xs, ys)
    return series


def cost_of_gain(store: TrialStore, fraction: float = 0.9) -> dict | None:
    """Evaluations and minutes until the best search-seed F first reached `fraction` of the
    search's final improvement over its first evaluation (the start). Counted over the store's
    evaluations in the order they ran (screening and search; validation, late-refinement and final
    evaluations use other seeds or sample counts and only add their time once they ran)."""
    rows = store.evaluations()
    main = [r for r in rows if r["tag"] == "screen" or (r["tag"].startswith("gen")
                                                         and not r["tag"].endswith(("validate", "late", "confirm")))]
    if not main:
        return None
    f0, f_end, keys = main[0]["fid"], min(r["fid"] for r in main), {r["key"] for r in main}
    target = f0 - fraction * (f0 - f_end)
    seconds, best, k = 0.0, float("inf"), 0
    for r in rows:
        seconds += r["wall_seconds"] or 0.0
        k += 1
        if r["key"] in keys:
            best = min(best, r["fid"])
            if best <= target:
                break
    return {"start": f0, "best": f_end, "fraction": fraction, "evaluations": k, "minutes": seconds / 60,
            "total_evaluations": len(rows), "total_minutes": sum(r["wall_seconds"] or 0.0 for r in rows) / 60}


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    """A markdown table (header, separator, rows) followed by a blank line."""
    return ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]


def write_report(out: str | Path, store: TrialStore, init: Strategy, best: Strategy, summary: dict) -> None:
    """report.md + fid_vs_evaluations.png + fid_vs_alternation.png + schedules.png in `out`."""
    out = Path(out)
    series = _curves(store)
    if series:
        plot_curves(series, out / "fid_vs_evaluations.png", xlabel="FID evaluations", ylabel="best FID so far",
                    title="generation-strategy search")
    # This run's alternations (the store also holds those of earlier, possibly different, runs).
    alts = summary.get("alternations") or []
    if alts:
        plot_curves({"FID (search seeds)": ([a["alternation"] for a in alts], [a["fid"] for a in alts])},
                    out / "fid_vs_alternation.png", xlabel="alternation")
    plot_strategies({"initial": init, "found": best}, out / "schedules.png")
    lines = ["# AutoNAT search report", "",
             f"- steps T = {best.steps}; objective = FID ({summary.get('metric', 'fmnist')} features), "
             f"n = {summary.get('n')} per evaluation, common random numbers: {summary.get('crn')}",
             f"- evaluations: {len(store.evaluations())}, trainings: {len(store.trainings())}, "
             f"wall time: {summary.get('seconds', 0):.0f} s", ""]
    if "final" in summary:
        f = summary["final"]
        lines += ["## Final evaluation on fresh seeds (not used by the search)", "",
                  *_table(("strategy", "FID", "n", "seed"),
                          [(f"initial ({init.name or 'init'})", f"{f['baseline']:.3f}", f["n"], f["seed"]),
                           ("found", f"{f['found']:.3f}", f["n"], f["seed"]),
                           *([(f"best hand setting of the screening ({f['best_hand']['spec']})",
                                f"{f['best_hand']['fid']:.3f}", f["n"], f["seed"])] if "best_hand" in f else []),
                           ("ratio found / initial", f"{f['found'] / f['baseline']:.3f}", "", "")])]
        if "ablation" in f:
            a = f["ablation"]
            lines += ["Which half of the search helps (paper's Table 6a; same fresh seeds):", "",
                      *_table(("p(r)", "generation strategy", "FID"),
                              [(p, g, f"{a[k]:.3f}") for p, g, k in (
                                  ("initial", "initial", "baseline"), ("initial", "found", "generation_only"),
                                  ("found", "initial", "training_only"), ("found", "found", "both"))])]
    if summary.get("screening"):
        lines += ["## Screening (search seeds; the search started from the first row)", "",
                  *_table(("start or hand setting", "token order", "FID"),
                          [(r["spec"], r["order"], f"{r['fid']:.3f}") for r in summary["screening"]])]
    late = store.events("late_refinement")
    if late:
        lines += ["## Late refinement (more samples; search / validation noise sets)", "",
                  *_table(("n", "incumbent", "best of the small-step search", "accepted"),
                          [(e["n"], f"{e['incumbent_search']:.3f}" + (f" / {e['incumbent_validation']:.3f}"
                                                                      if "incumbent_validation" in e else ""),
                            f"{e['candidate_search']:.3f}" + (f" / {e['candidate_validation']:.3f}"
                                                              if "candidate_validation" in e else ""),
                            "split: decided below" if "candidate_confirm" in e else "yes" if e["accepted"] else "no")
                           for e in late[-1:]]
                          + [(e["n_confirm"], "%.3f / %.3f" % tuple(e["incumbent_confirm"]),
                              "%.3f / %.3f" % tuple(e["candidate_confirm"]), "yes" if e["accepted"] else "no")
                             for e in late[-1:] if "candidate_confirm" in e])]
    cost = cost_of_gain(store)
    if cost and cost["start"] > cost["best"]:
        lines += [f"Cost of the gain (search seeds): {cost['evaluations']} evaluations / {cost['minutes']:.1f} min "
                  f"to reach 90 % of the improvement {cost['start']:.3f} -> {cost['best']:.3f} "
                  f"(of {cost['total_evaluations']} evaluations / {cost['total_minutes']:.1f} min in all)", ""]
    if alts:
        lines += ["## Alternations (0 = initial p(r) and strategy)", "",
                  *_table(("alternation", "FID (search seeds)", "p(r)"),
                          [(a["alternation"], f"{a['fid']:.3f}", a["mask_dist"]) for a in alts])]
    lines += ["## Found strategy", "",
              *_table(("t", "r", "tau1", "tau2", "s"),
                      [(t + 1, *(f"{v[t]:.4f}" for v in (best.r, best.tau1, best.tau2, best.s)))
                       for t in range(best.steps)])]
    if summary.get("mask_dist"):
        lines += [f"Training strategy p(r) = {summary['mask_dist']}", ""]
    lines += ["Plots: fid_vs_evaluations.png, fid_vs_alternation.png (full search), schedules.png", ""]
    atomic_write_bytes(out / "report.md", "\n".join(lines).encode())


def search_curves(dirs: list[str | Path], max_evals: int | None = None) -> dict[str, tuple[list, list]]:
    """Best-FID-so-far curves of every generation search in the given search directories (a
    screening stage counts as its first evaluations)."""
    from ..io import AutonatError
    series = {}
    for d in dirs:
        store = TrialStore.open_existing(Path(d) / "trials.sqlite")
        try:
            for tag, (xs, ys) in _curves(store).items():       # screening included, as in report.md
                keep = [k for k, x in enumerate(xs) if max_evals is None or x <= max_evals]
                series[f"{Path(d).name} ({tag})"] = ([xs[k] for k in keep], [ys[k] for k in keep])
        finally:
            store.close()
    if not series:
        raise AutonatError(f"no generation search recorded in {', '.join(map(str, dirs))}")
    return series
