"""Reference normalization layers, written to be read.

This is the book's reference implementation of LayerNorm, RMSNorm, BatchNorm, InstanceNorm and
GroupNorm. Each function has the signature and the semantics of its ``torch.nn.functional``
namesake but is built from torch primitives (``mean``, ``rsqrt``, ``reshape``), so that a chapter
can show its source next to the equation it implements, and the tests can hold it against PyTorch.
Speed is not a goal: the Triton kernels in ``lnbook.kernels`` are the fast versions, and they are
tested against this module.

Every norm is the same recipe with a different set of reduced dimensions. LayerNorm and RMSNorm
write it out line by line (``layer_norm_forward``, ``rms_norm_forward``: the arithmetic chapter 1
prints); BatchNorm, InstanceNorm and GroupNorm share its first two steps through two helpers::

    mean, var = moments of x over the reduced dims      (_moments)
    xhat      = (x - mean) * rstd,  rstd = 1/sqrt(var + eps)   (_standardize)
    y         = xhat * w + b, w and b per feature/channel      (written out in each forward)

    op              statistics per            reduced over
    layer_norm      row (leading index)       the trailing normalized_shape dims
    rms_norm        row                       the same, without centring (mean = 0)
    batch_norm      channel                   (N, *spatial)
    instance_norm   (sample, channel)         (*spatial)
    group_norm      (sample, group)           (C / num_groups, *spatial)

Names follow the book from prose to kernel: ``x, w, b, mean, rstd, xhat, dy, dx, dw, db``; M rows
of N normalized elements.

Precision: statistics are computed in float32 for float16, bfloat16 and float32 input and in
float64 for float64 input (:func:`stats_dtype`); the affine is applied in that precision and the
result is rounded once to the dtype of x, as PyTorch's CPU LayerNorm, RMSNorm and GroupNorm do.
(PyTorch's CPU BatchNorm and InstanceNorm round the batch mean to float16/bfloat16 when the
parameters are in that dtype or absent; this module does not.)

Gradients: everything is differentiable by autograd. LayerNorm and RMSNorm also have analytic
backward passes in the style of llm.c: ``layer_norm_forward`` returns ``(y, cache)`` and
``layer_norm_backward(dy, cache)`` returns ``(dx, dw, db)``.

Arguments: this module holds the mathematics only. Each public function makes one call to
:mod:`lnbook.args` at its top (``args.check_norm_args`` for the row norms, which the kernels share),
so user errors raise ``ValueError``/``TypeError`` naming the argument, the expected and the actual
value, where PyTorch often raises ``RuntimeError`` from C++.

Where this module departs from PyTorch 2.13 on purpose: ``normalized_shape`` may be an int (as in
``nn.LayerNorm``; ``F.layer_norm`` wants a sequence); weight and bias may be in any float dtype;
an empty batch leaves instance_norm's running statistics alone (PyTorch writes NaN, and raises
IndexError when there is a weight); group_norm accepts groups of one value (they normalize to 0;
PyTorch raises for some such shapes and not others, by a batch-size check meant for batch_norm).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lnbook import args

__all__ = [
    "NormCache",
    "batch_norm",
    "default_rms_norm_eps",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_forward",
    "rms_norm",
    "rms_norm_backward",
    "rms_norm_forward",
    "stats_dtype",
]


# ------------------------------------------------------------------------- the shared recipe


def stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are computed in for input of ``dtype``: float64 for float64, else float32."""
    # A mean rounded to float16/bfloat16 (11/8 significant bits) moves every xhat by up to half
    # its ulp / std: many output ulps when |mean| >> std. float64 input keeps float64.
    return torch.float64 if dtype == torch.float64 else torch.float32


def default_rms_norm_eps(dtype: torch.dtype) -> float:
    """The eps ``torch.nn.functional.rms_norm`` uses when ``eps=None``.

    PyTorch's docs say ``torch.finfo(x.dtype).eps``, but the op takes the eps of the type it
    computes in: float32's (1.19e-7) for float16 and bfloat16 input, not 9.8e-4 or 7.8e-3.
    """
    return torch.finfo(stats_dtype(dtype)).eps


def _moments(xs: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance of xs over dims (dims kept, size 1).

    Two passes (mean, then the mean of squared deviations) rather than E[x^2] - E[x]^2, which
    cancels catastrophically when |mean| >> std.
    """
    mean = xs.mean(dim=dims, keepdim=True)  # reduced dims -> 1
    var = (xs - mean).square().mean(dim=dims, keepdim=True)  # biased (divide by the count): what is normalized
    return mean, var


def _standardize(xs: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    """xhat = (xs - mean) * rstd with rstd = 1/sqrt(var + eps), mean and var broadcast against xs."""
    rstd = torch.rsqrt(var + eps)
    return (xs - mean) * rstd  # xs.shape


def _per_channel(t: Tensor, x: Tensor) -> Tensor:
    """A per-channel tensor (C,) as (C, 1, ..., 1) in the statistics dtype, to broadcast over x = (N, C, *spatial)."""
    return t.to(stats_dtype(x.dtype)).reshape((x.shape[1],) + (1,) * (x.dim() - 2))


# ------------------------------------------------------------------- LayerNorm and RMSNorm


class NormCache(NamedTuple):
    """What the analytic backward of layer_norm / rms_norm needs (detached from autograd)."""

    xhat: Tensor  # x.shape, statistics dtype (float32, or float64 for float64 x)
    mean: Tensor | None  # x.shape[:-k] + (1,) * k, statistics dtype; None for rms_norm
    rstd: Tensor  # x.shape[:-k] + (1,) * k, statistics dtype
    weight: Tensor | None  # normalized_shape, as given (dw comes back in its dtype)
    bias: Tensor | None  # normalized_shape, as given (db comes back in its dtype); None for rms_norm
    normalized_shape: tuple[int, ...]  # k = len(normalized_shape) trailing dims


def _row_dims(x: Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(range(x.dim() - len(shape), x.dim()))  # the normalized (trailing) dims


def _detached(*ts: Tensor | None) -> list[Tensor | None]:
    # The cache is data for the analytic backward, not part of the autograd graph.
    return [None if t is None else t.detach() for t in ts]


def _sum_rows(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    # Reshape rather than sum(dim=leading dims): for 1-D x there are none, and sum(dim=()) would
    # reduce over everything.
    return t.reshape(-1, *shape).sum(dim=0)  # (M, *normalized_shape) -> normalized_shape


# Shapes below: x is (..., N) with M rows, where N stands for the normalized_shape dims (one or more)
# and "..., 1" for the leading dims with the normalized ones kept as size 1.


def layer_norm_forward(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> tuple[Tensor, NormCache]:
    """LayerNorm over the trailing ``normalized_shape`` dims; returns ``(y, cache)``.

    y = (x - mean) * rstd * w + b, mean and rstd = 1/sqrt(var + eps) (biased var) per row.
    """
    shape = args.check_norm_args(x, normalized_shape, weight, bias, eps, op="layer_norm")
    dims = _row_dims(x, shape)
    xs = x.to(stats_dtype(x.dtype))  # (..., N) in float32 (float64 for float64 x)
    mean = xs.mean(dim=dims, keepdim=True)  # (..., 1)
    var = (xs - mean).square().mean(dim=dims, keepdim=True)  # (..., 1) biased: divided by N
    rstd = torch.rsqrt(var + eps)  # (..., 1)
    xhat = (xs - mean) * rstd  # (..., N)
    y = xhat if weight is None else xhat * weight.to(xs.dtype)  # (..., N) y = xhat * w + b, w and b optional
    y = y if bias is None else y + bias.to(xs.dtype)
    cache = NormCache(*_detached(xhat, mean, rstd, weight, bias), shape)  # data, not part of the graph
    return y.to(x.dtype), cache


def layer_norm_backward(dy: Tensor, cache: NormCache) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Gradients ``(dx, dw, db)`` of layer_norm from the upstream gradient dy (dw/db None if unused).

    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = w * dy, means over the
    row: the Jacobian of xhat removes the mean direction and the direction of xhat itself (the scale).
    dw = sum over rows of dy * xhat; db = sum over rows of dy. dx comes back in dy's dtype (y's, x's).
    """
    xhat, rstd, w, b, shape = cache.xhat, cache.rstd, cache.weight, cache.bias, cache.normalized_shape
    dims = _row_dims(xhat, shape)
    dys = dy.to(xhat.dtype)  # (..., N) in the statistics dtype, as xs in the forward
    dxhat = dys if w is None else dys * w.to(xhat.dtype)  # (..., N) the gradient at xhat
    dx = rstd * (dxhat - dxhat.mean(dim=dims, keepdim=True)  # (..., N)
                 - xhat * (dxhat * xhat).mean(dim=dims, keepdim=True))
    dw = None if w is None else _sum_rows(dys * xhat, shape).to(w.dtype)  # (N,) summed over the M rows
    db = None if b is None else _sum_rows(dys, shape).to(b.dtype)  # (N,)
    return dx.to(dy.dtype), dw, db


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """``torch.nn.functional.layer_norm`` from primitives (differentiable by autograd)."""
    return layer_norm_forward(x, normalized_shape, weight, bias, eps)[0]


def rms_norm_forward(x, normalized_shape, weight=None, eps=None) -> tuple[Tensor, NormCache]:
    """RMSNorm over the trailing ``normalized_shape`` dims; returns ``(y, cache)``.

    y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps) per row; ``eps=None`` means
    :func:`default_rms_norm_eps` (what PyTorch does). ``cache.mean`` and ``cache.bias`` are None.
    """
    shape = args.check_norm_args(x, normalized_shape, weight, None, eps, op="rms_norm")
    eps = default_rms_norm_eps(x.dtype) if eps is None else eps
    dims = _row_dims(x, shape)
    xs = x.to(stats_dtype(x.dtype))  # (..., N) in float32 (float64 for float64 x)
    rstd = torch.rsqrt(xs.square().mean(dim=dims, keepdim=True) + eps)  # (..., 1) no mean subtracted
    xhat = xs * rstd  # (..., N)
    y = xhat if weight is None else xhat * weight.to(xs.dtype)  # (..., N) y = xhat * w, w optional
    cache = NormCache(*_detached(xhat, None, rstd, weight, None), shape)  # data, not part of the graph
    return y.to(x.dtype), cache


def rms_norm_backward(dy: Tensor, cache: NormCache) -> tuple[Tensor, Tensor | None]:
    """Gradients ``(dx, dw)`` of rms_norm (dw None without weight).

    dx = rstd * (dxhat - xhat * mean(dxhat * xhat)) with dxhat = w * dy: LayerNorm's without the
    mean term, because RMSNorm does not centre.
    """
    xhat, rstd, w, shape = cache.xhat, cache.rstd, cache.weight, cache.normalized_shape
    dims = _row_dims(xhat, shape)
    dys = dy.to(xhat.dtype)  # (..., N) in the statistics dtype, as xs in the forward
    dxhat = dys if w is None else dys * w.to(xhat.dtype)  # (..., N) the gradient at xhat
    dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(dim=dims, keepdim=True))  # (..., N)
    dw = None if w is None else _sum_rows(dys * xhat, shape).to(w.dtype)  # (N,) summed over the M rows
    return dx.to(dy.dtype), dw


def rms_norm(x, normalized_shape, weight=None, eps=None) -> Tensor:
    """``torch.nn.functional.rms_norm`` from primitives (differentiable by autograd)."""
    return rms_norm_forward(x, normalized_shape, weight, eps)[0]


# ----------------------------------------------------------- BatchNorm, InstanceNorm, GroupNorm


def _update_running(buf: Tensor, stat: Tensor, momentum: float) -> None:
    """buf <- momentum * stat + (1 - momentum) * buf, stat averaged over the batch first (PyTorch's
    instance_norm averages the per-sample statistics; for batch_norm there is one sample)."""
    stat = stat.detach().reshape(-1, buf.shape[0]).mean(dim=0)  # (N or 1, C) -> (C,)
    buf.copy_(momentum * stat + (1 - momentum) * buf.to(stat.dtype))


def _channel_norm(x, dims, running_mean, running_var, weight, bias, use_input_stats, momentum, eps):
    """batch_norm and instance_norm: normalize over dims with x's statistics (updating the running
    ones if given), or with the running statistics."""
    xs = x.to(stats_dtype(x.dtype))
    if use_input_stats:
        mean, var = _moments(xs, dims)  # (1, C, 1, ...) for batch_norm, (N, C, 1, ...) for instance_norm
        # An empty batch has no statistics; PyTorch leaves the buffers alone in batch_norm too.
        if running_mean is not None and x.numel() > 0:
            n = math.prod(x.shape[d] for d in dims)  # values per statistic, > 1 (checked)
            _update_running(running_mean, mean, momentum)
            _update_running(running_var, var * (n / (n - 1)), momentum)  # unbiased, like PyTorch
    else:
        mean, var = _per_channel(running_mean, x), _per_channel(running_var, x)  # (C, 1, ...)
    xhat = _standardize(xs, mean, var, eps)  # (N, C, *spatial)
    y = xhat if weight is None else xhat * _per_channel(weight, x)  # y = xhat * w + b per channel, w and b optional
    y = y if bias is None else y + _per_channel(bias, x)
    return y.to(x.dtype)


def batch_norm(
    x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
) -> Tensor:
    """``torch.nn.functional.batch_norm`` from primitives. x is (N, C, *spatial).

    Training: per-channel statistics over (N, *spatial); running_mean/running_var, when given, are
    updated in place with the unbiased variance. Evaluation: the running statistics are used.
    """
    args.check_batch_norm_args(x, running_mean, running_var, weight, bias, training, eps)
    dims = (0, *range(2, x.dim()))  # all but the channel dim
    return _channel_norm(x, dims, running_mean, running_var, weight, bias, training, momentum, eps)


def instance_norm(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    momentum=0.1,
    eps=1e-5,
) -> Tensor:
    """``torch.nn.functional.instance_norm`` from primitives. x is (N, C, *spatial).

    Statistics per (sample, channel) over the spatial dims. The running statistics, when given,
    are updated with the batch average of the per-sample statistics, and are used instead of the
    input's when ``use_input_stats=False``.
    """
    args.check_instance_norm_args(x, running_mean, running_var, weight, bias, use_input_stats, eps)
    dims = tuple(range(2, x.dim()))  # spatial dims
    return _channel_norm(x, dims, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5) -> Tensor:
    """``torch.nn.functional.group_norm`` from primitives. x is (N, C, *spatial).

    The C channels are split into num_groups groups of consecutive channels; each (sample, group)
    is standardized LayerNorm-style over its C/num_groups channels and the spatial dims, then the
    per-channel affine is applied. One group is LayerNorm over (C, *spatial), C groups InstanceNorm.
    """
    args.check_group_norm_args(x, num_groups, weight, bias, eps)
    # Explicit group size instead of reshape(N, G, -1), which is ambiguous when N = 0.
    group_size = x.shape[1] // num_groups * math.prod(x.shape[2:])
    xs = x.to(stats_dtype(x.dtype)).reshape(x.shape[0], num_groups, group_size)  # (N, G, group_size)
    mean, var = _moments(xs, (2,))  # (N, G, 1)
    xhat = _standardize(xs, mean, var, eps).reshape(x.shape)  # (N, C, *spatial)
    y = xhat if weight is None else xhat * _per_channel(weight, x)  # y = xhat * w + b per channel, w and b optional
    y = y if bias is None else y + _per_channel(bias, x)
    return y.to(x.dtype)
