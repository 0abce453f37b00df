"""Muse-family models from diffusers behind autonat's contract: aMUSEd loaded for sampling and
strategy search (`amused`), the noise mode that draws as diffusers' AmusedScheduler does
(`noise`), and a diffusers scheduler that follows any autonat strategy (`scheduler`)."""
from .amused import AmusedNAT, AmusedTextEncoder, AmusedVQ, is_amused_dir, load_amused
from .noise import AmusedNoise

__all__ = ["AmusedNAT", "AmusedNoise", "AmusedTextEncoder", "AmusedVQ", "is_amused_dir", "load_amused"]
