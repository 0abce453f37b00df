"""Loading weights into a module with every check done before anything is trusted.

`build_and_load(cls, config, weights_path)`:
1. builds the module on the `meta` device (no memory) to learn the expected names and shapes, and
   refuses configs whose size does not fit the weights file (an absurd `dim` in a config.json is
   an error, not an allocator failure);
2. reads the safetensors header only and compares names and shapes, reporting a readable diff
   (missing, unexpected, and mismatched names with both shapes);
3. loads the tensors, rejects non-finite values (a NaN weight would sample garbage silently) and
   converts floating dtypes (fp16/bf16 storage -> fp32) explicitly; other dtypes must match.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import safe_open

from .io import AutonatError, load_tensors

MAX_LISTED = 6


def _diff(expected: dict[str, tuple], found: dict[str, tuple], label=lambda k: k) -> list[str]:
    """Missing, unexpected and wrong-shape names (`label` names a key for the reader, e.g. the
    checkpoint key it came from)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    out = []
    if missing:
        out.append(f"missing {len(missing)}: {', '.join(map(label, missing[:MAX_LISTED]))}"
                   + (" ..." if len(missing) > MAX_LISTED else ""))
    if unexpected:
        out.append(f"unexpected {len(unexpected)}: {', '.join(map(label, unexpected[:MAX_LISTED]))}"
                   + (" ..." if len(unexpected) > MAX_LISTED else ""))
    if wrong:
        out.append("shape mismatch: " + ", ".join(f"{label(k)}: expected {list(expected[k])}, found {list(found[k])}"
                                                  for k in wrong[:MAX_LISTED]) + (" ..." if len(wrong) > MAX_LISTED else ""))
    return out


def check_state(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], what: str,
                label=lambda k: k) -> dict[str, torch.Tensor]:
    """Every expected name present with its shape and kind of dtype, nothing unexpected, no
    non-finite value; returns the state with floating tensors as fp32. `expected` may hold meta
    tensors (a skeleton's state dict)."""
    problems = _diff({k: tuple(v.shape) for k, v in expected.items()}, {k: tuple(v.shape) for k, v in state.items()},
                     label)
    if problems:
        raise AutonatError(f"{what}: weights do not match the model ({'; '.join(problems)})")
    wrong = [k for k, v in state.items() if expected[k].is_floating_point() != v.is_floating_point()]
    if wrong:
        k = wrong[0]
        raise AutonatError(f"{what}: weight {label(k)} is stored as {state[k].dtype}, expected "
                           f"{'a floating-point' if expected[k].is_floating_point() else 'an integer'} tensor "
                           f"({len(wrong)} such weight(s))")
    return check_tensors(state, what, label)


def header_shapes(path: Path) -> dict[str, tuple]:
    """Tensor names and shapes of a safetensors file, read from its header only."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for damaged headers
        raise AutonatError(f"cannot read weights {path}: {str(e).splitlines()[0][:200]}") from None


def check_tensors(state: dict[str, torch.Tensor], what: str, label=lambda k: k) -> dict[str, torch.Tensor]:
    """Reject non-finite floating values; floating tensors become fp32."""
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            v = v.float()
            if not bool(torch.isfinite(v).all()):
                bad = int((~torch.isfinite(v)).sum())
                raise AutonatError(f"{what}: weight {label(k)} contains {bad} non-finite value(s) (NaN/inf); "
                                   f"the file is damaged or the training diverged")
        elif v.dtype not in (torch.int64, torch.int32, torch.bool, torch.uint8):
            raise AutonatError(f"{what}: weight {label(k)} has unsupported dtype {v.dtype}")
        out[k] = v
    return out


def build_and_load(cls: type[nn.Module] | Any, config: Any, path: str | Path, what: str = "",
                   allow_missing: tuple[str, ...] = ()) -> nn.Module:
    """A `cls(config)` (a module class or any factory of its config) holding the weights of the safetensors file `path` (checked; see module doc)."""
    path = Path(path)
    what = what or str(path)
    if not path.is_file():
        raise AutonatError(f"{what}: missing weights file {path}")
    try:
        with torch.device("meta"):
            skeleton = cls(config)
    except AutonatError:
        raise
    except Exception as e:
        raise AutonatError(f"{what}: config cannot build a model ({e})") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    need = sum(math.prod(s) for s in expected.values())
    found = header_shapes(path)
    if need > path.stat().st_size:   # even 1-byte weights could not fill this model
        raise AutonatError(f"{what}: the config describes {need:,} weights but {path.name} holds only "
                           f"{path.stat().st_size:,} bytes; config.json does not belong to these weights")
    problems = _diff({k: v for k, v in expected.items() if k not in allow_missing or k in found}, found)
    if problems:
        raise AutonatError(f"{what}: weights do not match the config ({'; '.join(problems)})")
    model = cls(config)
    state = load_tensors(path)
    kinds = {k: v for k, v in skeleton.state_dict().items() if k in state}
    state = check_state(kinds, state, what)
    model.load_state_dict(state, strict=not allow_missing)
    return model
