"""Triton kernels for LayerNorm, RMSNorm and fused residual-add + LayerNorm.

Drop-in replacements for ``torch.nn.functional.layer_norm`` and ``rms_norm`` (plus
``add_layer_norm(x, residual, ...) -> (y, x + residual)``), with autograd.

On a machine without CUDA the same kernels run through Triton's interpreter on CPU tensors. The
interpreter is chosen when ``@triton.jit`` decorates a kernel, so the switch has to happen here,
before :mod:`lnbook.kernels.rownorm` is imported. Set ``TRITON_INTERPRET`` yourself to override.

To trace one op, read in this order: ``layer_norm.py`` (checks, its row of ``flags.OPS``) →
``autograd.py`` (reshape to rows) → ``rownorm.forward`` / ``rownorm.backward`` (the launches) →
the kernels at the top of ``rownorm.py`` → ``heuristics.py`` (block shapes). ``aot.py`` compiles
and ``traffic.py`` counts the same launches.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from lnbook.kernels.add_layer_norm import add_layer_norm  # noqa: E402
from lnbook.kernels.heuristics import INTERPRETED  # noqa: E402
from lnbook.kernels.layer_norm import layer_norm  # noqa: E402
from lnbook.kernels.rms_norm import rms_norm  # noqa: E402

__all__ = ["INTERPRETED", "add_layer_norm", "layer_norm", "rms_norm"]
