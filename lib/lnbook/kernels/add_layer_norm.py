"""``add_layer_norm``: the residual add and the LayerNorm after it, in one pass over memory.

``y, s = add_layer_norm(x, residual, normalized_shape, weight, bias, eps)`` equals
``s = x + residual; y = layer_norm(s, ...)``, but reads x and residual once and writes s and y
once, instead of writing s and reading it back (claim R11 counts the bytes).
"""

from __future__ import annotations

import math

from lnbook import norms
from lnbook.kernels.autograd import AddLayerNorm
from lnbook.kernels.checks import check_devices, check_dtypes, check_kernel_args

OP = "add_layer_norm"  # its row in lnbook.kernels.flags.OPS


def add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Returns ``(layer_norm(x + residual), x + residual)``; both outputs are differentiable."""
    shape = check_kernel_args(x, normalized_shape, weight, bias, eps, OP)
    norms.check_norm_args(residual, normalized_shape, None, None, eps, OP)  # a float tensor
    check_dtypes(OP, residual=residual)
    if residual.shape != x.shape:
        raise norms.arg_error(ValueError, OP, "residual", f"shape {tuple(x.shape)} (x's shape)", tuple(residual.shape))
    if residual.dtype != x.dtype:
        raise norms.arg_error(TypeError, OP, "residual", f"dtype {x.dtype} (x's dtype)", residual.dtype)
    check_devices(x, OP, residual=residual)
    return AddLayerNorm.apply(x, residual, weight, bias, math.prod(shape), float(eps))
