"""Peers autonat's NATs are compared with (docs/RESULTS.md, "Peers"); need the `[baselines]` extra.

    pixel_diffusion   class-conditional pixel-space DDPM (diffusers UNet2DModel) + DPM-Solver++ / DDIM
    diffusion_train   its training on autonat's trainer skeleton (resumable, keyed randomness)
    solver_checks     model-free checks of the solvers (exact targets, DDIM vs DPM-Solver++ agreement)
    latent_diffusion  the controlled peer: DDPM on the NATs' latent grid (the tokenizer's code vectors) with
                      a U-ViT of the NAT's size, decoded by the same tokenizer; solved by pixel_diffusion's loop
    latent_train      its training on the NATs' token cache
    ar                autoregressive transformer over the NATs' tokens (raster order, KV cache, guidance, top-k)
    ar_train          its training on a token cache, on the same trainer skeleton
    peer_loop         the optimisation step all three trainers share (restore, lr, AdamW + clip, EMA, log, checkpoint)
"""
