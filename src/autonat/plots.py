"""Figures: the four schedules of a strategy (paper-style panels), search curves, and the FID-vs-
cost frontier (paper Fig. 1; FID vs GFLOPs and vs wall-clock). Sample grids and decoding strips
are composed in `autonat.images`.

matplotlib runs headless (Agg). Every writer creates parent directories and writes atomically.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from .io import AutonatError, atomic_write_bytes
from .strategy import Strategy


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

def _figure(ncols: int = 1, nrows: int = 1, size=(4.0, 3.0)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    return plt, fig, axes


def _save_fig(plt, fig, path: str | Path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_strategies(strategies: dict[str, Strategy], path: str | Path) -> None:
    """The four schedules r(t), tau1(t), tau2(t), s(t) of one or more strategies, side by side."""
    plt, fig, axes = _figure(4, 1, (3.2, 2.8))
    from matplotlib.ticker import MaxNLocator
    panels = [("r", "fraction still masked r(t)"), ("tau1", "sampling temperature tau1(t)"),
              ("tau2", "re-masking temperature tau2(t)"), ("s", "guidance scale s(t)")]
    for ax, (key, title) in zip(axes[0], panels):
        for label, st in strategies.items():
            t = list(range(1, st.steps + 1))
            vals = list(getattr(st, key))
            if key == "tau2" and st.steps > 1:  # tau2 at the last step is unused
                t, vals = t[:-1], vals[:-1]
            ax.plot(t, vals, marker="o", label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step t")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save_fig(plt, fig, path)


def plot_curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
                xlabel: str, ylabel: str = "FID", title: str = "", logx: bool = False) -> None:
    """Line plot of named (x, y) series, e.g. best-so-far FID vs number of FID evaluations."""
    from matplotlib.ticker import MaxNLocator
    plt, fig, axes = _figure(1, 1, (5.5, 3.8))
    ax = axes[0][0]
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), marker=".", label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save_fig(plt, fig, path)


def _ticker():
    import matplotlib.ticker
    return matplotlib.ticker


def plot_frontier(points: Sequence[dict], path: str | Path, metric: str = "fid_fmnist") -> None:
    """FID vs GFLOPs per image and, where points carry `seconds_per_image`, FID vs wall-clock per
    image; `points` = dicts with fid, gflops, group (series), label (e.g. T=8)."""
    panels = [("gflops", "GFLOPs / image (every guidance pass)")]
    if any(p.get("seconds_per_image") for p in points):
        panels.append(("ms_per_image", "ms / image (batch 256, this CPU)"))
        points = [{**p, "ms_per_image": 1000 * p["seconds_per_image"]} if p.get("seconds_per_image") else p
                  for p in points]
    fids = [p["fid"] for p in points if p.get("fid", 0) > 0]
    log_y = bool(fids) and max(fids) / min(fids) > 20       # diffusion and NAT points decades apart
    plt, fig, axes = _figure(len(panels), 1, (5.5, 4.2))
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(p.get("group", ""), []).append(p)
    for ax, (key, xlabel) in zip(axes[0], panels):
        for g, pts in groups.items():
            pts = sorted((p for p in pts if p.get(key)), key=lambda p: p[key])
            if not pts:
                continue
            ax.plot([p[key] for p in pts], [p["fid"] for p in pts], marker="o", label=g)
            for p in pts:
                if p.get("label"):
                    ax.annotate(p["label"], (p[key], p["fid"]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):     # plain numbers on major ticks, no crowded minor labels
            axis.set_major_formatter(_ticker().FormatStrFormatter("%g"))
            axis.set_minor_formatter(_ticker().NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"FID ({metric}, lower is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    _save_fig(plt, fig, path)


def read_frontier(files: Sequence[str | Path]) -> list[dict]:
    """Frontier points from JSONL files of `autonat evaluate --json` (or bench) results; the series
    is the record's `series` field, else the file name; a point is annotated with the record's
    `label` field, else T=steps. Every bad file or record is an error naming it."""
    import json
    pts = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise AutonatError(f"frontier file not found: {path}")
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                raise AutonatError(f"{path}:{i}: not a JSON record") from None
            if not isinstance(r, dict) or not all(k in r for k in ("fid", "flops_per_image", "steps")):
                raise AutonatError(f"{path}:{i}: a frontier record needs fid, flops_per_image and steps")
            try:
                pts.append({"gflops": float(r["flops_per_image"]) / 1e9, "fid": float(r["fid"]),
                            "group": str(r.get("series") or path.stem),
                            "label": str(r.get("label") or f"T={r['steps']}"),
                            "seconds_per_image": float(r["seconds_per_image"]) if r.get("seconds_per_image") else None})
            except (TypeError, ValueError):
                raise AutonatError(f"{path}:{i}: fid, flops_per_image must be numbers") from None
    if not pts:
        raise AutonatError("no evaluate results found in the given files")
    return pts
