"""Sharing the 2 cores: the torch thread count chosen from what other processes use, and the
options every bench/diffusion command shares."""
from __future__ import annotations

import os

import torch


class ThreadGuard:
    """Pick torch's intra-op thread count from what OTHER processes used since the last check.

    Measured on this 2-core machine (bf16 training step, batch 128): 1.28 s with 2 threads when
    the machine is free, but 1.2-45 s (erratic) with 2 threads while another process keeps one
    core busy (the two threads wait for each other at every parallel region), and a steady
    2.1 s with 1 thread. So: 2 threads while others use < `busy` cores, 1 thread otherwise.
    `others_cpu` (cores used by other processes, averaged over the interval) is logged so
    contention is visible afterwards.
    """

    def __init__(self, mode: str = "auto", busy: float = 0.3):
        self.mode, self.busy = mode, busy
        self.max_threads = torch.get_num_threads()
        self.others_cpu = 0.0
        self._last = self._sample()
        if mode != "auto":
            torch.set_num_threads(int(mode))

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        """(wall seconds, busy CPU seconds of the whole machine, CPU seconds of this process)."""
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / tick      # minus idle and iowait
        own = sum(os.times()[:2])
        import time as _t
        return _t.monotonic(), busy, own

    def check(self) -> int:
        """Update others_cpu and (in auto mode) the thread count; returns the thread count."""
        now = self._sample()
        dt = max(now[0] - self._last[0], 1e-6)
        self.others_cpu = max(0.0, ((now[1] - self._last[1]) - (now[2] - self._last[2])) / dt)
        self._last = now
        if self.mode == "auto":
            torch.set_num_threads(1 if self.others_cpu >= self.busy else self.max_threads)
        return torch.get_num_threads()



def add_runtime_args(p) -> None:
    """The options every bench/diffusion command shares."""
    p.add_argument("--threads", default="auto",
                   help="torch threads: auto (2, or 1 while other processes use a core), 1, 2")
    p.add_argument("--quiet", action="store_true")
