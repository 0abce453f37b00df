"""autonat: fast token-based image synthesis with non-autoregressive Transformers (AutoNAT, ENAT).

Front door: `autonat.Pipeline.from_pretrained("fashion-mnist")`. The pieces: `autonat.sampling.sample`
(pure decoding loop), `autonat.strategy.Strategy` (r, tau1, tau2, s), `autonat.tokenizer`,
`autonat.models`, `autonat.training`, `autonat.evaluation`, `autonat.search`.
"""
__version__ = "0.1.0"


# AutonatScheduler: the diffusers scheduler that follows an autonat strategy (autonat.muse).
_LAZY = {"Pipeline": "pipeline", "PipelineOutput": "pipeline", "Strategy": "strategy",
         "AutonatScheduler": "muse.scheduler"}
_MODULES = ("tokenizer", "models", "sampling", "strategy", "presets", "training", "evaluation", "search",
            "metrics", "pipeline", "data", "tokens", "masking", "muse")


def __getattr__(name):
    # Lazy imports keep `import autonat` (and the CLI's --help) fast.
    import importlib
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'autonat' has no attribute {name!r}")


__all__ = ["Pipeline", "PipelineOutput", "Strategy", "__version__", *_MODULES]
