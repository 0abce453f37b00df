"""Gradio demo: pick a model (NAT = U-ViT, or ENAT; class- or text-conditional), a class or a
prompt, and a per-step generation strategy, then look at the samples, the decoding strip (the
canvas after every step) and the cost. A text model shows a prompt box instead of the class list;
several prompts separated by `|` are sampled in turn (one column each).

    autonat demo                        # http://127.0.0.1:7860
    python -c "import autonat.app as a; a.launch()"

The strategy table holds one row per step t with the paper's r, tau1, tau2, s (see
`autonat.strategy`); it is prefilled from a preset and is what "Generate" uses, so edits take
effect. Every user error (bad table, no searched strategy for T, out-of-range inputs) is an
`AutonatError` whose message is shown in the status box. Pipelines are loaded once per model
name and cached; models that fail to load are left out of the model choice. This module only
builds the UI: sampling, strategies, plots and costs come from the library.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import math
import threading
import time
from typing import Any, Sequence

import torch

from .images import grid_image, strip_image
from .io import AutonatError
from .metrics.cost import sampling_flops
from .pipeline import Pipeline
from .strategy import Strategy

COLUMNS = ["t", "r", "tau1", "tau2", "s"]
PRESETS = ("maskgit", "halton", "autonat")
ARCH_LABELS = {"uvit": "NAT (U-ViT)", "enat": "ENAT"}
SCALE = 5           # nearest-neighbour upscaling of the 28x28 images
STRIP_ROWS = 4      # samples shown in the decoding strip


def strategy_table(st: Strategy) -> list[list[float]]:
    """Rows [t, r, tau1, tau2, s] (t = 1..T) of a strategy, rounded for display."""
    return [[t + 1, round(st.r[t], 5), round(st.tau1[t], 5), round(st.tau2[t], 5), round(st.s[t], 5)]
            for t in range(st.steps)]


def table_strategy(rows: Any, steps: int | None = None) -> Strategy:
    """A validated Strategy from table rows (lists or a DataFrame); AutonatError if invalid."""
    if hasattr(rows, "values") and hasattr(rows, "columns"):          # pandas DataFrame
        rows = rows.values.tolist()
    rows = [list(r) for r in (rows or []) if any(str(v).strip() for v in r)]
    if not rows:
        raise AutonatError("the strategy table is empty; press 'Load preset into table'")
    cols: dict[str, list[float]] = {c: [] for c in COLUMNS[1:]}
    for i, row in enumerate(rows, 1):
        if len(row) != len(COLUMNS):
            raise AutonatError(f"strategy table row {i} has {len(row)} values; expected {len(COLUMNS)} "
                               f"({', '.join(COLUMNS)})")
        for c, v in zip(COLUMNS[1:], row[1:]):
            try:
                cols[c].append(float(v))
            except (TypeError, ValueError):
                raise AutonatError(f"strategy table row {i}, column {c}: {v!r} is not a number") from None
    if steps is not None and len(rows) != steps:
        raise AutonatError(f"the strategy table has {len(rows)} rows but steps = {steps}; "
                           f"press 'Load preset into table' or set steps to {len(rows)}")
    return Strategy(**cols, name="table")


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise AutonatError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise AutonatError(f"{name} must be a whole number, got {value!r}")
    if not lo <= int(f) <= hi:
        raise AutonatError(f"{name} must lie in [{lo}, {hi}], got {int(f)}")
    return int(f)


class DemoBackend:
    """The demo's callbacks, independent of the widgets (also usable from Python and tests)."""

    def __init__(self, models: Sequence[str | None], device: str = "cpu", max_batch: int = 64,
                 max_steps: int = 32):
        if max_batch < 1 or max_steps < 1:
            raise AutonatError("max_batch and max_steps must be >= 1")
        self.device, self.max_batch, self.max_steps = device, int(max_batch), int(max_steps)
        self._pipes: dict[str, Pipeline] = {}
        self._flops: dict[tuple, int] = {}
        self._lock = threading.RLock()
        self.labels: dict[str, str] = {}       # radio label -> model name
        self.unavailable: dict[str, str] = {}  # model name -> why it did not load
        for name in dict.fromkeys(m for m in models if m):
            try:
                pipe = self.pipeline(name)
            except AutonatError as e:
                self.unavailable[name] = str(e)
                continue
            label = f"{ARCH_LABELS.get(pipe.model.arch, pipe.model.arch)}: {pipe.name or name}"
            self.labels[label if label not in self.labels else f"{label} ({name})"] = name
        if not self.labels:
            raise AutonatError("no model could be loaded for the demo: " + "; ".join(
                f"{n}: {msg}" for n, msg in self.unavailable.items()))

    def pipeline(self, name: str) -> Pipeline:
        """The pipeline of a model name or label, loaded on first use and cached."""
        name = self.labels.get(name, name)
        with self._lock:
            if name not in self._pipes:
                self._pipes[name] = Pipeline.from_pretrained(name, device=self.device)
            return self._pipes[name]

    def class_names(self, model: str) -> list[str]:
        return list(self.pipeline(model).class_names)

    def is_text(self, model: str) -> bool:
        """The model takes prompts (else class labels)."""
        return self.pipeline(model).bundle.is_text

    @staticmethod
    def prompts(text: Any) -> list[str]:
        """The prompts of the prompt box: `|`-separated, blanks dropped."""
        if not isinstance(text, str) or not text.strip():
            raise AutonatError("type a prompt (several: separate them with |)")
        out = [p.strip() for p in text.split("|") if p.strip()]
        if not out:
            raise AutonatError("type a prompt (several: separate them with |)")
        return out

    def preset(self, model: str, preset: str, steps: Any) -> Strategy:
        steps = _check_int(steps, "steps", 1, self.max_steps)
        if preset not in PRESETS:
            raise AutonatError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        return self.pipeline(model).strategy(preset, steps)

    def load_table(self, model: str, preset: str, steps: Any) -> tuple[list[list[float]] | None, str]:
        """(table rows or None if unchanged, status message)."""
        try:
            st = self.preset(model, preset, steps)
        except AutonatError as e:
            return None, f"error: {e}"
        return strategy_table(st), f"loaded preset {preset!r} ({st.name or preset}, T={st.steps})"

    def gflops(self, model: str, st: Strategy, reuse: bool = True) -> float:
        pipe = self.pipeline(model)
        key = (self.labels.get(model, model), st, reuse)
        with self._lock:
            if key not in self._flops:
                example = pipe.bundle.conditioner.condition(["a prompt"] if pipe.bundle.is_text else [0])
                self._flops[key] = sampling_flops(pipe.model if reuse else pipe.model.without_reuse(), st, example)
        return self._flops[key] / 1e9

    def retarget_table(self, model: str, preset: str, steps: Any, table: Any) -> tuple[list[list[float]] | None, str]:
        """When T changes: the user's (edited) table resampled to the new T, so edits are kept;
        if the table is not a valid strategy, the preset for the new T (and a message saying so)."""
        try:
            steps = _check_int(steps, "steps", 1, self.max_steps)
            st = table_strategy(table)
        except AutonatError as e:
            rows, msg = self.load_table(model, preset, steps)
            return rows, f"{msg} (the table was not a valid strategy: {e})"
        if st.steps == steps:
            return None, f"table kept (T={steps})"
        return strategy_table(st.interpolate(steps)), (f"table resampled from T={st.steps} to T={steps} "
                                                       f"(piecewise-linear in t/T); 'Load preset' resets it")

    def generate(self, model: str, class_index: Any, steps: Any, num_images: Any, seed: Any,
                 table: Any, reuse: bool = True, prompt: Any = None):
        """(sample grid, decoding strip, stats markdown, status); images are None on error.
        A text model reads `prompt` (`|`-separated prompts in turn), a class model `class_index`."""
        try:
            return self._generate(model, class_index, steps, num_images, seed, table, reuse, prompt)
        except AutonatError as e:
            return None, None, "", f"error: {e}"

    def _condition(self, pipe: Pipeline, class_index: Any, prompt: Any, n: int) -> dict:
        """The pipeline's condition keyword for n images: prompts or class labels."""
        if pipe.bundle.is_text:
            prompts = self.prompts(prompt)
            return {"prompt": [prompts[i % len(prompts)] for i in range(n)]}
        k = len(pipe.class_names)
        if class_index is None:
            raise AutonatError("choose a class")
        if isinstance(class_index, str):      # a class name (API callers)
            if class_index not in pipe.class_names:
                raise AutonatError(f"unknown class {class_index!r}; classes: {', '.join(pipe.class_names)}")
            class_index = pipe.class_names.index(class_index)
        c = _check_int(class_index, "class", 0, k)            # k = all classes in turn
        return {"class_labels": [i % k for i in range(n)] if c == k else [c] * n}

    def _generate(self, model, class_index, steps, num_images, seed, table, reuse, prompt):
        steps = _check_int(steps, "steps", 1, self.max_steps)
        n = _check_int(num_images, "number of images", 1, self.max_batch)
        seed = _check_int(seed, "seed", 0, 2**63 - 1)
        pipe = self.pipeline(model)
        condition = self._condition(pipe, class_index, prompt, n)
        st = table_strategy(table, steps)
        with self._lock:
            t0 = time.perf_counter()
            out = pipe(**condition, num_steps=steps, strategy=st, guidance=None,
                       generator=torch.Generator().manual_seed(seed), return_trace=True,
                       progress=False, reuse=bool(reuse))
            latency_ms = 1e3 * (time.perf_counter() - t0)
            with torch.inference_mode():
                strip_img = strip_image(pipe, out, rows=min(STRIP_ROWS, n), scale=SCALE)
        gflops = self.gflops(model, st, reuse=bool(reuse))
        names = out.prompts if pipe.bundle.is_text else pipe.class_names
        grid = grid_image(out.images, out.labels, names, ncol=min(8, n), scale=SCALE)
        variant = "" if pipe.model.without_reuse() is pipe.model else (" (feature reuse)" if reuse else " (no reuse)")
        stats = (f"**{gflops:.4f} GFLOPs / image** (NAT forward, T={steps}{variant})  \n"
                 f"**latency {latency_ms:.0f} ms** for {n} image{'s' * (n != 1)} "
                 f"({latency_ms / n:.1f} ms / image, {self.device}), incl. tokenizer decode")
        masked = " -> ".join(str(m) for m in out.masked_counts)
        return grid, strip_img, stats, f"ok: {n} image(s), seed {seed}; masked tokens per step: {masked}"


def build_app(model: str = "fashion-mnist", enat_model: str | None = "fashion-mnist-enat",
              device: str = "cpu", max_batch: int = 64, max_steps: int = 32,
              text_model: str | None = None) -> "gradio.Blocks":  # noqa: F821
    """The demo as a `gradio.Blocks` (not launched). `app.backend` holds the callbacks."""
    try:
        import gradio as gr
    except ImportError:
        raise AutonatError("the demo needs gradio: pip install 'autonat[demo]'") from None
    be = DemoBackend([model, enat_model, text_model], device=device, max_batch=max_batch, max_steps=max_steps)
    labels = list(be.labels)
    first = labels[0]
    steps0, n0 = min(8, be.max_steps), min(16, be.max_batch)
    table0, status0 = be.load_table(first, "maskgit", steps0)
    names = be.class_names(first)
    text0 = be.is_text(first)
    missing = "".join(f"\n\n*{n} is unavailable: {msg}*" for n, msg in be.unavailable.items())

    def class_choices(names: list[str]) -> list[tuple[str, int]]:
        return [(n, i) for i, n in enumerate(names)] + [("all classes (in turn)", len(names))]

    with gr.Blocks(title="autonat demo", analytics_enabled=False) as demo:
        gr.Markdown("## autonat: image generation with non-autoregressive Transformers\n"
                    "Pick a model, a class (or type a prompt for a text model) and a strategy; edit the "
                    "per-step schedule "
                    "(r = fraction still masked after step t, tau1 = sampling temperature, "
                    "tau2 = re-masking temperature, s = guidance scale), then Generate." + missing)
        with gr.Row():
            with gr.Column(scale=1):
                model_in = gr.Radio(labels, value=first, label="Model", elem_id="model")
                class_in = gr.Dropdown(class_choices(names), value=0 if names else None, label="Class",
                                       elem_id="class", visible=not text0)
                prompt_in = gr.Textbox("", label="Prompt (several: separate with |)", elem_id="prompt",
                                       visible=text0, placeholder="e.g. red apple | cat face")
                preset_in = gr.Dropdown(list(PRESETS), value="maskgit", label="Strategy preset",
                                        elem_id="preset")
                steps_in = gr.Slider(1, be.max_steps, value=steps0, step=1, label="Steps T", elem_id="steps")
                n_in = gr.Slider(1, be.max_batch, value=n0, step=1, label="Number of images",
                                 elem_id="num_images")
                seed_in = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id="seed")
                reuse_in = gr.Checkbox(True, label="ENAT feature reuse (ignored for U-ViT)", elem_id="reuse")
            with gr.Column(scale=1):
                table_in = gr.Dataframe(value=table0, headers=COLUMNS, datatype=["number"] * len(COLUMNS),
                                        type="array", interactive=True, elem_id="table",
                                        label="Strategy (one row per step; used by Generate)")
                with gr.Row():
                    load_btn = gr.Button("Load preset into table", elem_id="load_preset")
                    gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Textbox(status0, label="Status", interactive=False, elem_id="status")
                stats = gr.Markdown(elem_id="stats")
        samples = gr.Image(type="pil", format="png", label="Samples (one column per class)", interactive=False,
                           elem_id="samples")
        strip = gr.Image(type="pil", format="png", interactive=False, elem_id="strip",
                         label=f"Decoding strip (first {STRIP_ROWS} samples; grey = [MASK], in brackets: tokens "
                               f"still masked; last column = result)")

        def on_load(m, p, t):
            rows, msg = be.load_table(m, p, t)
            return (gr.update() if rows is None else rows), msg

        def on_model(m, p, t):
            rows, msg = on_load(m, p, t)
            text = be.is_text(m)
            names = be.class_names(m)
            return (gr.update(choices=class_choices(names), value=0 if names else None, visible=not text),
                    gr.update(visible=text), rows, msg)

        def on_steps(m, p, t, table):
            rows, msg = be.retarget_table(m, p, t, table)
            return (gr.update() if rows is None else rows), msg

        table_io = dict(inputs=[model_in, preset_in, steps_in], outputs=[table_in, status])
        load_btn.click(on_load, **table_io)
        preset_in.change(on_load, **table_io)
        steps_in.change(on_steps, inputs=[model_in, preset_in, steps_in, table_in], outputs=[table_in, status])
        model_in.change(on_model, inputs=[model_in, preset_in, steps_in],
                        outputs=[class_in, prompt_in, table_in, status])
        gen_btn.click(be.generate, inputs=[model_in, class_in, steps_in, n_in, seed_in, table_in, reuse_in, prompt_in],
                      outputs=[samples, strip, stats, status], api_name="generate", concurrency_limit=1)
    demo.backend = be
    return demo


def launch(model: str = "fashion-mnist", enat_model: str | None = "fashion-mnist-enat",
           host: str = "127.0.0.1", port: int = 7860, device: str = "cpu", share: bool = False,
           text_model: str | None = None) -> None:
    """Build the demo and serve it (blocks until interrupted)."""
    import sys
    print(f"autonat demo: loading {', '.join(m for m in (model, enat_model, text_model) if m)} and starting "
          f"the web server (the first start takes up to a minute) ...", file=sys.stderr, flush=True)
    app = build_app(model, enat_model, device=device, text_model=text_model)
    print(f"autonat demo: open http://{host}:{port} in a browser (Ctrl-C stops)", file=sys.stderr, flush=True)
    app.launch(server_name=host, server_port=port, share=share)


__all__ = ["build_app", "launch", "DemoBackend", "strategy_table", "table_strategy"]
