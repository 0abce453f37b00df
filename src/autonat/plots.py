"""Images and figures: sample grids, decoding strips (paper Fig. 2), the four schedules of a
strategy (paper-style panels), search curves, and the FID-vs-GFLOPs frontier (paper Fig. 1).

matplotlib runs headless (Agg). Every writer creates parent directories and writes atomically.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

from PIL import Image

from .io import atomic_write_bytes
from .strategy import Strategy


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_image(img: Image.Image, path: str | Path) -> None:
    atomic_write_bytes(path, _png_bytes(img))


def make_grid(images: Sequence[Image.Image], ncol: int = 10, pad: int = 2, scale: int = 1) -> Image.Image:
    if not images:
        raise ValueError("no images for a grid")
    w, h = images[0].size
    w, h = w * scale, h * scale
    ncol = max(1, min(ncol, len(images)))
    nrow = math.ceil(len(images) / ncol)
    grid = Image.new(images[0].mode, (ncol * (w + pad) + pad, nrow * (h + pad) + pad),
                     color=255 if images[0].mode == "L" else (255, 255, 255))
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        grid.paste(im.resize((w, h), Image.NEAREST) if scale != 1 else im,
                   (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def save_grid(images: Sequence[Image.Image], path: str | Path, ncol: int = 10, scale: int = 1) -> None:
    save_image(make_grid(images, ncol, scale=scale), path)


def strip_images(pipe, out, rows: int = 4) -> list[list[Image.Image]]:
    """Canvas after each step for the first `rows` samples of a traced PipelineOutput."""
    per_step = [pipe.decode_canvas(s["ids"][:rows], s["mask"][:rows]) for s in out.trace]
    return [[per_step[t][r] for t in range(len(per_step))] + [out.images[r]] for r in range(min(rows, len(out.images)))]


def save_strip(pipe, out, path: str | Path, rows: int = 4, scale: int = 3) -> None:
    """Decoding strip: one row per sample, one column per step (masked = grey), then the result."""
    strips = strip_images(pipe, out, rows)
    flat = [im for row in strips for im in row]
    save_grid(flat, path, ncol=len(strips[0]), scale=scale)


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
    panels = [("r", "re-masking ratio r(t)"), ("tau1", "sampling temp. tau1(t)"),
              ("tau2", "re-masking temp. tau2(t)"), ("s", "guidance scale s(t)")]
    for ax, (key, title) in zip(axes[0], panels):
        for label, st in strategies.items():
            t = list(range(1, st.steps + 1))
            vals = list(getattr(st, key))
            if key == "tau2" and st.steps > 1:  # tau2 at the last step is unused
                t, vals = t[:-1], vals[:-1]
            ax.plot(t, vals, marker="o", label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step t")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save_fig(plt, fig, path)


def plot_curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
                xlabel: str, ylabel: str = "FID", title: str = "", logx: bool = False) -> None:
    """Line plot of named (x, y) series, e.g. best-so-far FID vs number of FID evaluations."""
    plt, fig, axes = _figure(1, 1, (5.0, 3.5))
    ax = axes[0][0]
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), marker=".", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save_fig(plt, fig, path)


def plot_frontier(points: Sequence[dict], path: str | Path) -> None:
    """FID vs GFLOPs per image; `points` = dicts with gflops, fid, group (series), label."""
    plt, fig, axes = _figure(1, 1, (5.5, 4.0))
    ax = axes[0][0]
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(p.get("group", ""), []).append(p)
    for g, pts in groups.items():
        pts = sorted(pts, key=lambda p: p["gflops"])
        ax.plot([p["gflops"] for p in pts], [p["fid"] for p in pts], marker="o", label=g)
        for p in pts:
            if p.get("label"):
                ax.annotate(p["label"], (p["gflops"], p["fid"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    ax.set_xlabel("GFLOPs / image (both guidance passes)")
    ax.set_ylabel("FID")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save_fig(plt, fig, path)
