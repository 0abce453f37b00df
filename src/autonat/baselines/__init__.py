"""Peers autonat's NATs are compared with (docs/RESULTS.md, "Peers"); need the `[baselines]` extra.

    pixel_diffusion   class-conditional pixel-space DDPM (diffusers UNet2DModel) + DPM-Solver++ / DDIM
    diffusion_train   its training on autonat's trainer skeleton (resumable, keyed randomness)
    solver_checks     model-free checks of the solvers (exact targets, DDIM vs DPM-Solver++ agreement)
    ar                autoregressive transformer over the NATs' tokens (raster order, KV cache, guidance, top-k)
    ar_train          its training on a token cache, on the same trainer skeleton
"""
