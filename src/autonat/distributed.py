"""torch.distributed helpers: the same code runs as one process or under `torchrun`.

Backend: NCCL when the device is CUDA, gloo on CPU. Work is split so results do not depend on the
number of processes: a global batch (or a list of samples) is cut into contiguous per-rank shards
and results are gathered back in global order.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> bool:
    """Join the process group described by torchrun's environment (no-op when not launched by it).
    Returns True when running distributed."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    if not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return True


def local_device(device: torch.device) -> torch.device:
    """Under torchrun with CUDA, each process uses its LOCAL_RANK GPU."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ and device.index is None:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(n: int) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous share of n items."""
    w, r = world_size(), rank()
    return n * r // w, n * (r + 1) // w


def gather_cat(x: torch.Tensor, total: int | None = None) -> torch.Tensor:
    """Concatenate every rank's `x` (first dims may differ by one) in rank order."""
    if not is_distributed():
        return x
    w = world_size()
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(w)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.long))
    biggest = int(max(s.item() for s in sizes))
    pad = torch.zeros((biggest - x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    bufs = [torch.empty((biggest, *x.shape[1:]), dtype=x.dtype, device=x.device) for _ in range(w)]
    dist.all_gather(bufs, torch.cat([x, pad]).contiguous())
    out = torch.cat([b[:int(s.item())] for b, s in zip(bufs, sizes)])
    return out if total is None else out[:total]


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return values
    v = values.clone()
    dist.all_reduce(v)
    return v / world_size()


def broadcast_object(obj):
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
