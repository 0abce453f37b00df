"""Keyed randomness: every random draw in autonat comes from a `torch.Generator` seeded by a hash of
integers that name it - (seed, step, stream) in training, (seed, sample index, step, kind) when
sampling - never from call order or a global RNG. Resumed runs therefore replay exactly, results
do not depend on the number of processes or the batch size, and two runs that should share their
noise (common random numbers) share it by construction.
"""
from __future__ import annotations

import torch

from .io import AutonatError


def mix64(*values: int) -> int:
    """splitmix64-style hash of integers -> 63-bit seed (stable across runs and platforms)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def keyed_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by the hash of `key`."""
    return torch.Generator().manual_seed(mix64(*key))


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """The generator of one random stream (data order, flips, masks, ...) at one training step."""
    return keyed_generator(seed, step, stream)


def epoch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """Example indices of training `step`: epoch-wise permutations keyed by (seed, epoch); every
    example once per epoch, no batch drawn and discarded."""
    per_epoch = n // batch
    if per_epoch < 1:
        raise AutonatError(f"batch size {batch} exceeds the {n} training examples")
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=step_generator(seed, epoch, 1))
    return perm[k * batch:(k + 1) * batch]
