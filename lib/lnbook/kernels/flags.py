"""The one table of what distinguishes the three ops: read by the op files, the launchers and
:mod:`lnbook.kernels.aot`. Each flag becomes a compile-time constant of the kernels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpFlags:
    center: bool  # CENTER: subtract the row mean (LayerNorm) or not (RMSNorm)
    residual: bool  # HAS_R / HAS_DS: add a residual first and store the sum; add the sum's gradient
    bias: bool  # the op takes a bias (HAS_B when one is given)


OPS = {
    "layer_norm": OpFlags(center=True, residual=False, bias=True),
    "rms_norm": OpFlags(center=False, residual=False, bias=False),
    "add_layer_norm": OpFlags(center=True, residual=True, bias=True),
}
