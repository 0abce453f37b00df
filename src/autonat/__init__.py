"""autonat: fast token-based image synthesis with non-autoregressive Transformers (AutoNAT, ENAT).

Front door: `autonat.Pipeline.from_pretrained("fashion-mnist")`. The pieces: `autonat.sampling.sample`
(pure decoding loop), `autonat.strategy.Strategy` (r, tau1, tau2, s), `autonat.tokenizer`,
`autonat.models`, `autonat.training`, `autonat.evaluation`, `autonat.search`.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy imports keep `import autonat` (and the CLI's --help) fast.
    if name in ("Pipeline", "PipelineOutput"):
        from . import pipeline
        return getattr(pipeline, name)
    if name == "Strategy":
        from .strategy import Strategy
        return Strategy
    raise AttributeError(f"module 'autonat' has no attribute {name!r}")


__all__ = ["Pipeline", "PipelineOutput", "Strategy", "__version__"]
