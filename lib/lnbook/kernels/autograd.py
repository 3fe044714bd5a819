"""The autograd adapters: reshape to rows, call the launchers in :mod:`rownorm`, reshape back.

No math here (the kernels have it). Tensors reach the kernels as 2-D ``(M, N)`` views whose last
dimension is contiguous; a view that cannot be expressed that way is copied once.
"""

from __future__ import annotations

import torch

from lnbook.kernels import rownorm


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
    """``op`` (``"layer_norm"`` or ``"rms_norm"``, see :mod:`lnbook.kernels.flags`) over the last N values."""

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
