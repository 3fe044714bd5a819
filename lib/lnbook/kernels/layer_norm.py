"""``layer_norm``: the Triton LayerNorm, a drop-in for ``torch.nn.functional.layer_norm``."""

from __future__ import annotations

import math

from lnbook.kernels.autograd import RowNorm
from lnbook.kernels.checks import check_kernel_args

OP = "layer_norm"  # its row in lnbook.kernels.flags.OPS


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm over the trailing ``normalized_shape`` dims of ``x`` (float16, bfloat16, float32).

    Statistics in float32; the output has x's dtype; differentiable in x, weight and bias.
    """
    shape = check_kernel_args(x, normalized_shape, weight, bias, eps, OP)
    return RowNorm.apply(x, weight, bias, math.prod(shape), float(eps), OP)
