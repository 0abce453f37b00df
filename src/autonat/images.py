"""Image composition for people to look at: labelled sample grids and decoding strips (paper Fig. 2).

Small images (28 px) are upscaled with nearest-neighbour so they can be judged (at least
`MIN_CELL` pixels per image by default), and every grid says what it shows: class names above the
columns of a sample grid; step numbers and masked counts above the columns of a strip, class
names at the start of its rows.
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

MIN_CELL = 112
BG = (255, 255, 255)
INK = (20, 20, 20)


def auto_scale(size: int, scale: int = 0) -> int:
    """`scale` if given (> 0), else the smallest integer factor bringing `size` to MIN_CELL px."""
    return scale if scale > 0 else max(1, -(-MIN_CELL // max(1, size)))


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:              # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def labelled_grid(cells: Sequence[Image.Image], ncol: int, *, col_labels: Sequence[str] = (),
                  row_labels: Sequence[str] = (), scale: int = 0, pad: int = 4) -> Image.Image:
    """Cells (equal-size PIL images) in rows of `ncol`, upscaled, with optional column headers
    and row labels. Always RGB."""
    if not cells:
        raise ValueError("no images for a grid")
    w0, h0 = cells[0].size
    k = auto_scale(max(w0, h0), scale)
    w, h = w0 * k, h0 * k
    ncol = max(1, min(ncol, len(cells)))
    nrow = -(-len(cells) // ncol)
    font = _font(max(10, min(16, w // 8)))
    head = 18 if col_labels else 0
    left = (max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=font) for t in row_labels) + 8
            if row_labels else 0)
    left = int(left)
    grid = Image.new("RGB", (left + ncol * (w + pad) + pad, head + nrow * (h + pad) + pad), BG)
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(col_labels[:ncol]):
        draw.text((left + pad + c * (w + pad), 2), str(text)[: max(4, w // 6)], fill=INK, font=font)
    for r, text in enumerate(row_labels[:nrow]):
        draw.text((4, head + pad + r * (h + pad) + h // 2 - 6), str(text), fill=INK, font=font)
    for i, im in enumerate(cells):
        r, c = divmod(i, ncol)
        grid.paste(im.convert("RGB").resize((w, h), Image.NEAREST), (left + pad + c * (w + pad), head + pad + r * (h + pad)))
    return grid


def grid_image(images: Sequence[Image.Image], labels: Sequence[int], class_names: Sequence[str],
               ncol: int = 10, scale: int = 0) -> Image.Image:
    """Samples in rows of `ncol`; when every column holds one class (round-robin labels), the
    class names head the columns."""
    ncol = max(1, min(ncol, len(images)))
    cols = [labels[c::ncol] for c in range(ncol)]
    names = [class_names[c[0]] if c[0] < len(class_names) else "uncond" for c in cols if c]
    uniform = all(len(set(c)) == 1 for c in cols if c)
    return labelled_grid(images, ncol, col_labels=names if uniform else (), scale=scale)


def strip_cells(pipe, out, rows: int = 4) -> tuple[list[Image.Image], list[str]]:
    """Cells of a decoding strip for the first `rows` samples of a traced PipelineOutput: the canvas
    after steps 1 .. T-1 ([MASK] = grey) and the final image; and the column headers."""
    T = len(out.trace)
    per_step = [pipe.decode_canvas(s["ids"][:rows], s["mask"][:rows]) for s in out.trace[:-1]]
    n = min(rows, len(out.images))
    cells = [im for r in range(n) for im in [per_step[t][r] for t in range(T - 1)] + [out.images[r]]]
    counts = out.masked_counts
    heads = [f"t={t + 1} ({counts[t + 1]})" for t in range(T - 1)] + [f"t={T} final"]
    return cells, heads


def strip_image(pipe, out, rows: int = 4, scale: int = 0) -> Image.Image:
    """Decoding strip: one row per sample (labelled with its class), one column per step (headed
    with the step and the number of tokens still masked), the final image last."""
    cells, heads = strip_cells(pipe, out, rows)
    n = len(cells) // len(heads)
    names = [pipe.class_names[c] if c < len(pipe.class_names) else "uncond" for c in out.labels[:n]]
    return labelled_grid(cells, len(heads), col_labels=heads, row_labels=names, scale=scale)
