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

Chapter 3 (T05) measures their errors; the kernels chapter reuses them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lnbook import norms

__all__ = ["naive", "two_pass", "welford"]


def _check(x: object, op: str) -> None:
    if not isinstance(x, Tensor):
        raise norms.arg_error(TypeError, op, "x", "a torch.Tensor", type(x).__name__)
    if x.dtype not in norms.FLOAT_DTYPES:
        raise norms.arg_error(TypeError, op, "x", "a floating dtype (float16, bfloat16, float32, float64)", x.dtype)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise norms.arg_error(ValueError, op, "x", "at least one element in the last dimension", f"shape {tuple(x.shape)}")


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
