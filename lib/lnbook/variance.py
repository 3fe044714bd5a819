"""Three ways to compute the variance of a row, and why only two of them are safe.

All three return the biased (population) variance over the last dimension, the one LayerNorm
divides by, and do their arithmetic in the dtype of ``x``: no silent upcast, so that the precision
lesson shows (float32 in, float32 arithmetic). Each reduction goes through ``torch.sum``/``mean``
in that dtype; PyTorch may use wider accumulators inside one reduction (it does for float16 and
bfloat16 on CPU), but every intermediate that this module keeps is rounded to ``x.dtype``.

* :func:`naive`: ``E[x²] − E[x]²``, one pass over the data. When ``|mean| ≫ std`` both terms are
  about ``mean²`` and their difference cancels catastrophically: in float32 with mean 1e4 and
  std 1, ``E[x²] ≈ 1e8`` is stored to the nearest multiple of 8, so the variance is lost entirely.
* :func:`two_pass`: the mean first, then the mean of squared deviations (what :mod:`lnbook.norms`
  does). The deviations are small numbers, so nothing cancels.
* :func:`welford`: one pass that updates a running mean and sum of squared deviations element by
  element (Welford 1962); as accurate as two passes, and the form a streaming or blocked kernel
  uses. Written as a Python loop over the row (vectorized over rows): slow, for reading.

:func:`relative_errors` measures all three against float64 (chapter 3's T05, chapter 5's R13);
:func:`tree_sum` adds the way a GPU reduction tree does, every partial sum rounded to the vector's
dtype (chapter 4's W08, the kernels chapter's float16 overflow table).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lnbook import args

__all__ = ["FP16_MAX", "naive", "relative_errors", "tree_sum", "two_pass", "welford"]

FP16_MAX = torch.finfo(torch.float16).max  # 65504: the largest finite float16


def _check(x: object, op: str) -> None:
    args.check_float_tensor(op, "x", x)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise args.arg_error(ValueError, op, "x", "at least one element in the last dimension", f"shape {tuple(x.shape)}")


def naive(x: Tensor) -> Tensor:
    """E[x²] − E[x]² over the last dimension, in x's dtype: x.shape[:-1]."""
    _check(x, "variance.naive")
    mean = x.mean(-1)
    return (x * x).mean(-1) - mean * mean


def two_pass(x: Tensor) -> Tensor:
    """mean((x − mean(x))²) over the last dimension, in x's dtype: x.shape[:-1]."""
    _check(x, "variance.two_pass")
    mean = x.mean(-1, keepdim=True)  # (..., 1)
    return (x - mean).square().mean(-1)


def welford(x: Tensor) -> Tensor:
    """Welford's single-pass update over the last dimension, in x's dtype: x.shape[:-1]."""
    _check(x, "variance.welford")
    mean = torch.zeros(x.shape[:-1], dtype=x.dtype)  # (...,) running mean of the first k values
    m2 = torch.zeros_like(mean)  # running sum of squared deviations from the running mean
    for k in range(x.shape[-1]):
        delta = x[..., k] - mean
        mean = mean + delta / (k + 1)
        m2 = m2 + delta * (x[..., k] - mean)  # old and new deviations: no cancellation
    return m2 / x.shape[-1]


def tree_sum(v: Tensor) -> Tensor:
    """Sum of a vector the way a GPU reduction tree adds: pairwise, every add rounded to v's dtype."""
    while v.numel() > 1:
        if v.numel() % 2:
            v = torch.cat([v, v.new_zeros(1)])
        v = v[0::2] + v[1::2]  # (n/2,) elementwise, rounded to v's dtype
    return v[0]


def relative_errors(mean: float, dtype: torch.dtype = torch.float32, rows: int = 32, d: int = 1024,
                    seed: int = 0) -> dict[str, float]:
    """Largest relative error, over ``rows`` rows of ``d`` values of std 1 around ``mean`` stored in
    ``dtype``, of :func:`naive`, :func:`two_pass` and :func:`welford` computed in ``dtype``, and of two
    passes in float32 (``fp32_stats``), against the float64 variance of the same stored values."""
    op = "variance.relative_errors"
    args.check_number(op, "mean", mean, lambda v: abs(v) < float("inf"), "a finite number")
    args.check_number(op, "rows", rows, lambda v: v >= 1, "an int >= 1", integral=True)
    args.check_number(op, "d", d, lambda v: v >= 2, "an int >= 2 (one value has no spread)", integral=True)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, d, generator=gen, dtype=torch.float64) + mean).to(dtype)  # (rows, d)
    ref = x.double().var(-1, correction=0)  # (rows,) exact to float64 for the stored values
    rel = lambda v: float(((v.double() - ref).abs() / ref).max())
    out = {f.__name__: rel(f(x)) for f in (naive, two_pass, welford)}
    return out | {"fp32_stats": rel(two_pass(x.float()))}
