"""``layer_norm``, ``rms_norm``, ``add_layer_norm``: drop-ins for ``torch.nn.functional``, with their
argument checks and autograd.

Each op checks its arguments (those of :mod:`lnbook.args`, plus the kernels' dtypes and devices) and
hands them to an autograd Function, named by its row of :data:`lnbook.kernels.rownorm.OPS` (the flags
that pick what the kernels do). The Functions hold no math (the kernels have it): they reshape to
2-D ``(M, N)`` rows whose last dimension is contiguous (a view that cannot be expressed that way is
copied once), call :func:`rownorm.forward` / :func:`rownorm.backward`, and reshape back.
"""

from __future__ import annotations

import math

import torch

from lnbook import args
from lnbook.kernels import rownorm
from lnbook.kernels.runtime import INTERPRETED, UNAVAILABLE
from lnbook.norms import default_rms_norm_eps

# ------------------------------------------------------------------------------------- the ops


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm over the trailing ``normalized_shape`` dims of ``x`` (float16, bfloat16, float32).

    Statistics in float32; the output has x's dtype; differentiable in x, weight and bias.
    """
    shape = check_kernel_args(x, normalized_shape, weight, bias, eps, "layer_norm")
    return RowNorm.apply(x, weight, bias, math.prod(shape), float(eps), "layer_norm")


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """RMSNorm over the trailing ``normalized_shape`` dims: ``x / sqrt(mean(x²) + eps) * weight``.

    ``eps=None`` means what it means in PyTorch (:func:`lnbook.norms.default_rms_norm_eps`).
    """
    shape = check_kernel_args(x, normalized_shape, weight, None, eps, "rms_norm")
    eps = default_rms_norm_eps(x.dtype) if eps is None else float(eps)
    return RowNorm.apply(x, weight, None, math.prod(shape), eps, "rms_norm")


def add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Returns ``(layer_norm(x + residual), x + residual)``; both outputs are differentiable.

    The residual add and the LayerNorm after it in one pass over memory: reads x and residual once
    and writes s and y once, instead of writing s and reading it back (claim R11 counts the bytes).
    """
    op = "add_layer_norm"
    shape = check_kernel_args(x, normalized_shape, weight, bias, eps, op)
    args.check_norm_args(residual, normalized_shape, None, None, eps, op)  # a float tensor
    check_dtypes(op, residual=residual)
    if residual.shape != x.shape:
        raise args.arg_error(ValueError, op, "residual", f"shape {tuple(x.shape)} (x's shape)", tuple(residual.shape))
    if residual.dtype != x.dtype:
        raise args.arg_error(TypeError, op, "residual", f"dtype {x.dtype} (x's dtype)", residual.dtype)
    check_devices(x, op, residual=residual)
    return AddLayerNorm.apply(x, residual, weight, bias, math.prod(shape), float(eps))


# --------------------------------------------------------------------------- argument checks

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_kernel_args(x, normalized_shape, weight, bias, eps, op: str) -> tuple[int, ...]:
    """Validate like :func:`lnbook.args.check_norm_args`, plus dtypes and devices; returns ``normalized_shape``."""
    shape = args.check_norm_args(x, normalized_shape, weight, bias, eps, op)
    check_dtypes(op, x=x, weight=weight, bias=bias)
    check_devices(x, op, weight=weight, bias=bias)
    return shape


def check_dtypes(op: str, **tensors) -> None:
    for name, t in tensors.items():
        if t is not None and t.dtype not in KERNEL_DTYPES:
            raise args.arg_error(TypeError, op, name, "float16, bfloat16 or float32 (the kernels' dtypes)", t.dtype)


def check_devices(x: torch.Tensor, op: str, **others) -> None:
    """x on a device the kernels can run on, and every other tensor on x's device."""
    if x.device.type != "cuda" and UNAVAILABLE is not None:
        raise RuntimeError(f"{op}: {UNAVAILABLE}")
    if x.device.type != "cuda" and not INTERPRETED:
        expected = "a CUDA tensor (for CPU tensors set TRITON_INTERPRET=1 before importing lnbook.kernels)"
        raise args.arg_error(ValueError, op, "x", expected, f"a tensor on {x.device}")
    for name, t in others.items():
        if t is not None and t.device != x.device:
            raise args.arg_error(ValueError, op, name, f"a tensor on {x.device} (x's device)", f"one on {t.device}")


# ---------------------------------------------------------------------------------- autograd


def as_rows(t: torch.Tensor, N: int) -> torch.Tensor:
    rows = t.reshape(-1, N)  # (M, N): a view when the strides allow it
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def _flat(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.reshape(-1).contiguous()  # normalized_shape -> (N,)


def _shaped(grad: torch.Tensor | None, shape) -> torch.Tensor | None:
    return None if grad is None else grad.view(shape)


def _remember(ctx, x, weight, bias, N: int) -> None:
    ctx.N, ctx.x_shape = N, x.shape
    ctx.bias_dtype = None if bias is None else bias.dtype
    ctx.param_shape = next((t.shape for t in (weight, bias) if t is not None), None)  # normalized_shape


class RowNorm(torch.autograd.Function):
    """``op`` (``"layer_norm"`` or ``"rms_norm"``, a row of :data:`rownorm.OPS`) over the last N values."""

    @staticmethod
    def forward(ctx, x, weight, bias, N: int, eps: float, op: str):
        x_rows = as_rows(x, N)
        y, _, mean, rstd = rownorm.forward(x_rows, _flat(weight), _flat(bias), None, eps, op)
        ctx.save_for_backward(x_rows, weight, mean, rstd)
        _remember(ctx, x, weight, bias, N)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x_rows, weight, mean, rstd = ctx.saved_tensors
        dx, dw, db = rownorm.backward(as_rows(dy, ctx.N), x_rows, _flat(weight), ctx.bias_dtype, mean, rstd)
        return dx.view(ctx.x_shape), _shaped(dw, ctx.param_shape), _shaped(db, ctx.param_shape), None, None, None


class AddLayerNorm(torch.autograd.Function):
    """``s = x + residual``, ``y = layer_norm(s)``; returns ``(y, s)``, gradients for both."""

    @staticmethod
    def forward(ctx, x, residual, weight, bias, N: int, eps: float):
        residual_rows = as_rows(residual, N)
        y, s, mean, rstd = rownorm.forward(as_rows(x, N), _flat(weight), _flat(bias), residual_rows, eps, "add_layer_norm")
        ctx.save_for_backward(s, weight, mean, rstd)
        _remember(ctx, x, weight, bias, N)
        return y.view(x.shape), s.view(x.shape)

    @staticmethod
    def backward(ctx, dy, ds):
        # Autograd hands zeros for an output that was not used, so dy and ds are both tensors.
        s, weight, mean, rstd = ctx.saved_tensors
        N = ctx.N
        dx, dw, db = rownorm.backward(as_rows(dy, N), s, _flat(weight), ctx.bias_dtype, mean, rstd, as_rows(ds, N))
        dx = dx.view(ctx.x_shape)
        # x and residual get the same gradient; returning one tensor twice is safe, because autograd
        # copies a gradient before keeping it as a leaf's .grad when anything else holds it.
        return dx, dx, _shaped(dw, ctx.param_shape), _shaped(db, ctx.param_shape), None, None
