"""The one argument-checking vocabulary of the library.

Every module checks its arguments with these functions, so that every user error reads the same way:
:func:`arg_error` builds every message (``"op: name: expected …, got …"``), :func:`check_number` and
:func:`check_float_tensor` check single arguments, and one function per op family checks a whole call
of the reference norms (:func:`check_norm_args` for ``layer_norm``/``rms_norm``, shared with the kernels
so that both raise the same errors for the same mistakes; :func:`check_batch_norm_args`,
:func:`check_instance_norm_args`, :func:`check_group_norm_args`). User errors raise
``ValueError``/``TypeError`` naming the op, the argument, the expected and the actual value, where
PyTorch often raises ``RuntimeError`` from C++. :mod:`lnbook.norms` holds the mathematics and calls one
of these at the top of each function.
"""

from __future__ import annotations

import math
import numbers
import operator

import torch
from torch import Tensor

__all__ = [
    "FLOAT_DTYPES",
    "arg_error",
    "check_batch_norm_args",
    "check_float_tensor",
    "check_group_norm_args",
    "check_instance_norm_args",
    "check_norm_args",
    "check_number",
]

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_DTYPE_NAMES = "(float16, bfloat16, float32, float64)"


# ------------------------------------------------------------------------ single arguments


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


# ------------------------------------------------------------------- the calls of the norms


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
    it means :func:`lnbook.norms.default_rms_norm_eps`.
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


def check_batch_norm_args(x, running_mean, running_var, weight, bias, training, eps) -> None:
    """batch_norm's arguments: x is (N, C, *spatial), the others None or of shape (C,); evaluation
    needs both running statistics, training more than one value per channel."""
    op = "batch_norm"
    _check_channel_args(
        x, eps, op, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias
    )
    _check_running_stats(running_mean, running_var, not training, "in evaluation mode (training=False)", op)
    if training:
        _check_more_than_one_value(x, x.shape[0] * math.prod(x.shape[2:]), "channel when training", op)


def check_instance_norm_args(x, running_mean, running_var, weight, bias, use_input_stats, eps) -> None:
    """instance_norm's arguments: as batch_norm's, with ``use_input_stats`` for ``training`` and
    more than one value per instance (its spatial size)."""
    op = "instance_norm"
    _check_channel_args(
        x, eps, op, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias
    )
    _check_running_stats(running_mean, running_var, not use_input_stats, "when use_input_stats=False", op)
    if use_input_stats:
        # (N, C) input has no spatial dims (count 1): caught here, before a mean over dim=() reduces all.
        _check_more_than_one_value(x, math.prod(x.shape[2:]), "instance (spatial size)", op)


def check_group_norm_args(x, num_groups, weight, bias, eps) -> None:
    """group_norm's arguments: x is (N, C, *spatial), weight and bias None or of shape (C,), and
    num_groups a positive divisor of C."""
    op = "group_norm"
    C = _check_channel_args(x, eps, op, weight=weight, bias=bias)
    check_number(op, "num_groups", num_groups, lambda g: g > 0 and C % g == 0,
                 f"a positive divisor of C = x.shape[1] = {C}", integral=True)
