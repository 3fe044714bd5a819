"""Small helpers shared by the chapter experiments: seeded tensors, a log-log slope, timing."""

from __future__ import annotations

import contextlib
import math
import time

import torch

F64 = torch.float64


def randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Standard normal tensor from its own seeded generator (experiments never share RNG state)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    lx = torch.tensor([math.log(v) for v in x], dtype=F64)
    ly = torch.tensor([math.log(v) for v in y], dtype=F64)
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch work on one thread, then restore the setting: small layers gain nothing
    from a thread pool, and timings on a shared machine are steadier without one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def median_time(fn, repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
