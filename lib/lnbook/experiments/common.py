"""Small helpers shared by the chapter experiments: seeded tensors and a log-log slope."""

from __future__ import annotations

import math

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
