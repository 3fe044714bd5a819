"""Reference normalization layers, written to be read.

This is the book's reference implementation of LayerNorm, RMSNorm, BatchNorm, InstanceNorm and
GroupNorm. Each function has the signature and the semantics of its ``torch.nn.functional``
namesake but is built from torch primitives (``mean``, ``rsqrt``, ``reshape``), so that a chapter
can show its source next to the equation it implements, and the tests can hold it against PyTorch.
Speed is not a goal: the Triton kernels in ``lnbook.kernels`` are the fast versions, and they are
tested against this module.

Every norm is the same recipe with a different set of reduced dimensions. LayerNorm and RMSNorm
write it out line by line (``layer_norm_forward``, ``rms_norm_forward``: the arithmetic chapter 1
prints); BatchNorm, InstanceNorm and GroupNorm share it through three helpers::

    mean, var = moments of x over the reduced dims      (_moments)
    xhat      = (x - mean) * rstd,  rstd = 1/sqrt(var + eps)   (_standardize)
    y         = xhat * w + b, w and b per feature/channel      (_affine)

    op              statistics per            reduced over
    layer_norm      row (leading index)       the trailing normalized_shape dims
    rms_norm        row                       the same, without centring (mean = 0)
    batch_norm      channel                   (N, *spatial)
    instance_norm   (sample, channel)         (*spatial)
    group_norm      (sample, group)           (C / num_groups, *spatial)

Names follow the book from prose to kernel: ``x, w, b, mean, rstd, xhat, dy, dx, dw, db``; M rows
of N normalized elements.

Precision: statistics are computed in float32 for float16, bfloat16 and float32 input and in
float64 for float64 input; the affine is applied in that precision and the result is rounded once
to the dtype of x, as PyTorch's CPU LayerNorm, RMSNorm and GroupNorm do. (PyTorch's CPU BatchNorm
and InstanceNorm round the batch mean to float16/bfloat16 when the parameters are in that dtype
or absent; this module does not.)

Gradients: everything is differentiable by autograd. LayerNorm and RMSNorm also have analytic
backward passes in the style of llm.c: ``layer_norm_forward`` returns ``(y, cache)`` and
``layer_norm_backward(dy, cache)`` returns ``(dx, dw, db)``.

Validation: one vocabulary for the whole library. :func:`arg_error` builds every message,
:func:`check_number` and :func:`check_float_tensor` check single arguments, :func:`stats_dtype`
is the precision rule, and :func:`check_norm_args` checks the arguments of
``layer_norm``/``rms_norm`` and is shared with the kernels, so that both raise the same errors for
the same mistakes. User errors raise ``ValueError``/``TypeError`` naming the argument, the expected
and the actual value, where PyTorch often raises ``RuntimeError`` from C++.

Where this module departs from PyTorch 2.13 on purpose: ``normalized_shape`` may be an int (as in
``nn.LayerNorm``; ``F.layer_norm`` wants a sequence); weight and bias may be in any float dtype;
an empty batch leaves instance_norm's running statistics alone (PyTorch writes NaN, and raises
IndexError when there is a weight); group_norm accepts groups of one value (they normalize to 0;
PyTorch raises for some such shapes and not others, by a batch-size check meant for batch_norm).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "FLOAT_DTYPES",
    "NormCache",
    "arg_error",
    "batch_norm",
    "check_float_tensor",
    "check_norm_args",
    "check_number",
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

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_DTYPE_NAMES = "(float16, bfloat16, float32, float64)"


# --------------------------------------------------------------------------------- validation


def arg_error(exc: type[Exception], op: str, name: str, expected: str, got: object) -> Exception:
    # One message shape for every user error, so tests and readers know where to look.
    return exc(f"{op}: {name}: expected {expected}, got {got}")


def check_float_tensor(op: str, name: str, t: object) -> None:
    """Raise TypeError unless ``t`` is a torch.Tensor of a floating dtype (float16 … float64)."""
    if not isinstance(t, Tensor):
        raise arg_error(TypeError, op, name, "a torch.Tensor", type(t).__name__)
    if t.dtype not in FLOAT_DTYPES:
        raise arg_error(TypeError, op, name, f"a floating dtype {_DTYPE_NAMES}", t.dtype)


def _check_param(t: Tensor | None, name: str, shape: tuple[int, ...], why: str, op: str) -> None:
    """weight, bias or a running statistic: None, or a float tensor of the given shape."""
    if t is None:
        return
    check_float_tensor(op, name, t)
    if tuple(t.shape) != shape:
        raise arg_error(ValueError, op, name, f"shape {shape} ({why})", tuple(t.shape))


def check_number(op: str, name: str, value: object, ok, expected: str, integral: bool = False) -> None:
    """Raise TypeError unless ``value`` is a real number (an int if ``integral``; never a bool), and
    ValueError unless ``ok(value)``; ``expected`` says in words what ``ok`` accepts."""
    kind = numbers.Integral if integral else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise arg_error(TypeError, op, name, "an int" if integral else "a real number", type(value).__name__)
    if not ok(value):  # NaN fails every comparison, so it is rejected too
        raise arg_error(ValueError, op, name, expected, value)


def _check_eps(eps: object, op: str) -> None:
    # eps = 0 is allowed: the book studies the unregularized normalizer.
    check_number(op, "eps", eps, lambda v: v >= 0, "a number >= 0")


def _index(n: object) -> int:
    if isinstance(n, bool):  # True would silently pass operator.index as 1
        raise TypeError
    return operator.index(n)


def _as_shape(normalized_shape: object, op: str) -> tuple[int, ...]:
    try:
        if isinstance(normalized_shape, str):
            raise TypeError
        if isinstance(normalized_shape, numbers.Integral):
            return (_index(normalized_shape),)
        return tuple(_index(n) for n in normalized_shape)
    except TypeError:
        raise arg_error(
            TypeError, op, "normalized_shape", "an int or a sequence of ints", repr(normalized_shape)
        ) from None


def check_norm_args(
    x: Tensor,
    normalized_shape: int | tuple[int, ...] | list[int] | torch.Size,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float | None = 1e-5,
    op: str = "layer_norm",
) -> tuple[int, ...]:
    """Validate the arguments of a row norm (layer_norm, rms_norm, their kernels).

    Returns ``normalized_shape`` as a tuple of ints. Raises ``TypeError`` for a wrong type
    (non-tensor x, non-floating dtype, non-integer shape, non-numeric eps) and ``ValueError`` for
    a wrong value (shape mismatch, negative or NaN eps); the message names ``op``, the argument,
    the expected and the actual value. ``eps=None`` is accepted only for ``op="rms_norm"``, where
    it means :func:`default_rms_norm_eps`.
    """
    check_float_tensor(op, "x", x)
    shape = _as_shape(normalized_shape, op)
    if not shape:
        raise arg_error(ValueError, op, "normalized_shape", "at least one dimension", shape)
    if min(shape) <= 0:
        raise arg_error(ValueError, op, "normalized_shape", "positive sizes", shape)
    if len(shape) > x.dim() or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        expected = f"the trailing dimensions of x.shape = {tuple(x.shape)}"
        raise arg_error(ValueError, op, "normalized_shape", expected, shape)
    _check_param(weight, "weight", shape, "= normalized_shape", op)
    _check_param(bias, "bias", shape, "= normalized_shape", op)
    if not (eps is None and op == "rms_norm"):
        _check_eps(eps, op)
    return shape


def _check_channel_args(x: Tensor, eps: float, op: str, **params: Tensor | None) -> int:
    """x is (N, C, *spatial); each of params is None or of shape (C,). Returns C."""
    check_float_tensor(op, "x", x)
    if x.dim() < 2:
        raise arg_error(ValueError, op, "x", "shape (N, C, *) with at least 2 dimensions", tuple(x.shape))
    C = x.shape[1]
    for name, t in params.items():
        _check_param(t, name, (C,), "= (C,) with C = x.shape[1]", op)
    _check_eps(eps, op)
    return C


def _check_running_stats(running_mean, running_var, required: bool, when: str, op: str) -> None:
    if required and running_mean is None:
        raise arg_error(ValueError, op, "running_mean", f"a tensor {when}", None)
    if required and running_var is None:
        raise arg_error(ValueError, op, "running_var", f"a tensor {when}", None)
    if (running_mean is None) != (running_var is None):
        describe = lambda t: "None" if t is None else "a tensor"
        got = f"running_mean {describe(running_mean)} and running_var {describe(running_var)}"
        raise arg_error(ValueError, op, "running_mean and running_var", "both None or both tensors", got)


def _check_more_than_one_value(x: Tensor, count: int, what: str, op: str) -> None:
    # A single value normalizes to 0 whatever it is, and its unbiased variance divides by zero:
    # almost always a shape mistake such as (N, C) where (N, C, L) was meant. PyTorch raises too.
    if count == 1:
        raise arg_error(ValueError, op, "x", f"more than 1 value per {what}", f"x.shape = {tuple(x.shape)}")


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


def _moments(xs: Tensor, dims: tuple[int, ...], center: bool = True) -> tuple[Tensor | None, Tensor]:
    """Mean (None when not centring) and biased variance of xs over dims (dims kept, size 1).

    Two passes (mean, then the mean of squared deviations) rather than E[x^2] - E[x]^2, which
    cancels catastrophically when |mean| >> std. Without centring, var is the mean square.
    """
    mean = xs.mean(dim=dims, keepdim=True) if center else None  # reduced dims -> 1
    xc = xs if mean is None else xs - mean
    var = xc.square().mean(dim=dims, keepdim=True)  # biased (divide by the count): what is normalized
    return mean, var


def _standardize(xs: Tensor, mean: Tensor | None, var: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """xhat = (xs - mean) * rstd and rstd = 1/sqrt(var + eps), both broadcast against xs."""
    rstd = torch.rsqrt(var + eps)
    xhat = (xs if mean is None else xs - mean) * rstd  # xs.shape
    return xhat, rstd


def _affine(xhat: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    """xhat * w + b in xhat's (statistics) precision, w and b reshaped to broadcast as `shape`."""
    y = xhat
    if weight is not None:
        y = y * weight.to(xhat.dtype).reshape(shape)
    if bias is not None:
        y = y + bias.to(xhat.dtype).reshape(shape)
    return y


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (x.shape[1],) + (1,) * (x.dim() - 2)  # (C, 1, ..., 1): per channel over (N, C, *spatial)


# ------------------------------------------------------------------- LayerNorm and RMSNorm


class NormCache(NamedTuple):
    """What the analytic backward of layer_norm / rms_norm needs (detached from autograd)."""

    xhat: Tensor  # x.shape, statistics dtype (float32, or float64 for float64 x)
    mean: Tensor | None  # x.shape[:-k] + (1,) * k, statistics dtype; None for rms_norm
    rstd: Tensor  # x.shape[:-k] + (1,) * k, statistics dtype
    weight: Tensor | None  # normalized_shape, as given
    bias_dtype: torch.dtype | None  # db's dtype; None when there was no bias
    x_dtype: torch.dtype  # dx's dtype
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
    shape = check_norm_args(x, normalized_shape, weight, bias, eps, op="layer_norm")
    dims = _row_dims(x, shape)
    xs = x.to(stats_dtype(x.dtype))  # (..., N) in float32 (float64 for float64 x)
    mean = xs.mean(dim=dims, keepdim=True)  # (..., 1)
    var = (xs - mean).square().mean(dim=dims, keepdim=True)  # (..., 1) biased: divided by N
    rstd = torch.rsqrt(var + eps)  # (..., 1)
    xhat = (xs - mean) * rstd  # (..., N)
    y = _affine(xhat, weight, bias, shape)  # (..., N) xhat * w + b, either optional
    xhat, mean, rstd, w = _detached(xhat, mean, rstd, weight)  # the cache: data, not part of the graph
    b_dtype = None if bias is None else bias.dtype
    return y.to(x.dtype), NormCache(xhat, mean, rstd, w, b_dtype, x.dtype, shape)


def layer_norm_backward(dy: Tensor, cache: NormCache) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Gradients ``(dx, dw, db)`` of layer_norm from the upstream gradient dy (dw/db None if unused).

    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = w * dy, means over the
    row: the Jacobian of xhat removes the mean direction and the direction of xhat itself (the scale).
    dw = sum over rows of dy * xhat; db = sum over rows of dy.
    """
    xhat, rstd, w, shape = cache.xhat, cache.rstd, cache.weight, cache.normalized_shape
    dims = _row_dims(xhat, shape)
    dy = dy.to(xhat.dtype)  # (..., N)
    dxhat = dy if w is None else dy * w.to(xhat.dtype)  # (..., N) the gradient at xhat
    dx = rstd * (dxhat - dxhat.mean(dim=dims, keepdim=True)  # (..., N)
                 - xhat * (dxhat * xhat).mean(dim=dims, keepdim=True))
    dw = None if w is None else _sum_rows(dy * xhat, shape).to(w.dtype)  # (N,) summed over the M rows
    db = None if cache.bias_dtype is None else _sum_rows(dy, shape).to(cache.bias_dtype)  # (N,)
    return dx.to(cache.x_dtype), dw, db


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """``torch.nn.functional.layer_norm`` from primitives (differentiable by autograd)."""
    return layer_norm_forward(x, normalized_shape, weight, bias, eps)[0]


def rms_norm_forward(x, normalized_shape, weight=None, eps=None) -> tuple[Tensor, NormCache]:
    """RMSNorm over the trailing ``normalized_shape`` dims; returns ``(y, cache)``.

    y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps) per row; ``eps=None`` means
    :func:`default_rms_norm_eps` (what PyTorch does). ``cache.mean`` is None.
    """
    shape = check_norm_args(x, normalized_shape, weight, None, eps, op="rms_norm")
    eps = default_rms_norm_eps(x.dtype) if eps is None else eps
    dims = _row_dims(x, shape)
    xs = x.to(stats_dtype(x.dtype))  # (..., N) in float32 (float64 for float64 x)
    rstd = torch.rsqrt(xs.square().mean(dim=dims, keepdim=True) + eps)  # (..., 1) no mean subtracted
    xhat = xs * rstd  # (..., N)
    y = _affine(xhat, weight, None, shape)  # (..., N) xhat * w, w optional
    xhat, rstd, w = _detached(xhat, rstd, weight)  # the cache: data, not part of the graph
    return y.to(x.dtype), NormCache(xhat, None, rstd, w, None, x.dtype, shape)


def rms_norm_backward(dy: Tensor, cache: NormCache) -> tuple[Tensor, Tensor | None]:
    """Gradients ``(dx, dw)`` of rms_norm (dw None without weight).

    dx = rstd * (dxhat - xhat * mean(dxhat * xhat)) with dxhat = w * dy: LayerNorm's without the
    mean term, because RMSNorm does not centre.
    """
    xhat, rstd, w, shape = cache.xhat, cache.rstd, cache.weight, cache.normalized_shape
    dims = _row_dims(xhat, shape)
    dy = dy.to(xhat.dtype)  # (..., N)
    dxhat = dy if w is None else dy * w.to(xhat.dtype)  # (..., N) the gradient at xhat
    dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(dim=dims, keepdim=True))  # (..., N)
    dw = None if w is None else _sum_rows(dy * xhat, shape).to(w.dtype)  # (N,) summed over the M rows
    return dx.to(cache.x_dtype), dw


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
        mean = running_mean.to(xs.dtype).reshape(_channel_shape(x))
        var = running_var.to(xs.dtype).reshape(_channel_shape(x))
    xhat, _ = _standardize(xs, mean, var, eps)
    return _affine(xhat, weight, bias, _channel_shape(x)).to(x.dtype)


def batch_norm(
    x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
) -> Tensor:
    """``torch.nn.functional.batch_norm`` from primitives. x is (N, C, *spatial).

    Training: per-channel statistics over (N, *spatial); running_mean/running_var, when given, are
    updated in place with the unbiased variance. Evaluation: the running statistics are used.
    """
    op = "batch_norm"
    _check_channel_args(
        x, eps, op, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias
    )
    _check_running_stats(running_mean, running_var, not training, "in evaluation mode (training=False)", op)
    dims = (0, *range(2, x.dim()))  # all but the channel dim
    if training:
        _check_more_than_one_value(x, math.prod(x.shape[d] for d in dims), "channel when training", op)
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
    op = "instance_norm"
    _check_channel_args(
        x, eps, op, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias
    )
    _check_running_stats(running_mean, running_var, not use_input_stats, "when use_input_stats=False", op)
    dims = tuple(range(2, x.dim()))  # spatial dims
    if use_input_stats:
        # (N, C) input has no spatial dims (count 1): caught here before mean(dim=()) reduces all.
        _check_more_than_one_value(x, math.prod(x.shape[2:]), "instance (spatial size)", op)
    return _channel_norm(x, dims, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5) -> Tensor:
    """``torch.nn.functional.group_norm`` from primitives. x is (N, C, *spatial).

    The C channels are split into num_groups groups of consecutive channels; each (sample, group)
    is standardized LayerNorm-style over its C/num_groups channels and the spatial dims, then the
    per-channel affine is applied. One group is LayerNorm over (C, *spatial), C groups InstanceNorm.
    """
    op = "group_norm"
    C = _check_channel_args(x, eps, op, weight=weight, bias=bias)
    check_number(op, "num_groups", num_groups, lambda g: g > 0 and C % g == 0,
                 f"a positive divisor of C = x.shape[1] = {C}", integral=True)
    # Explicit group size instead of reshape(N, G, -1), which is ambiguous when N = 0.
    group_size = C // num_groups * math.prod(x.shape[2:])
    xs = x.to(stats_dtype(x.dtype)).reshape(x.shape[0], num_groups, group_size)  # (N, G, group_size)
    mean, var = _moments(xs, (2,))  # (N, G, 1)
    xhat, _ = _standardize(xs, mean, var, eps)
    return _affine(xhat.reshape(x.shape), weight, bias, _channel_shape(x)).to(x.dtype)
