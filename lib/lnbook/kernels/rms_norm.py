"""``rms_norm``: the Triton RMSNorm, a drop-in for ``torch.nn.functional.rms_norm``."""

from __future__ import annotations

import math

from lnbook.kernels.autograd import RowNorm
from lnbook.kernels.checks import check_kernel_args
from lnbook.norms import default_rms_norm_eps

OP = "rms_norm"  # its row in lnbook.kernels.flags.OPS


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """RMSNorm over the trailing ``normalized_shape`` dims: ``x / sqrt(mean(x²) + eps) * weight``.

    ``eps=None`` means what it means in PyTorch (:func:`lnbook.norms.default_rms_norm_eps`).
    """
    shape = check_kernel_args(x, normalized_shape, weight, None, eps, OP)
    eps = default_rms_norm_eps(x.dtype) if eps is None else float(eps)
    return RowNorm.apply(x, weight, None, math.prod(shape), eps, OP)
