"""Argument checks for the kernels: those of :mod:`lnbook.norms`, plus dtypes and devices."""

from __future__ import annotations

import torch

from lnbook import norms
from lnbook.kernels.heuristics import INTERPRETED

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_kernel_args(x, normalized_shape, weight, bias, eps, op: str) -> tuple[int, ...]:
    """Validate like :func:`lnbook.norms.check_norm_args`; returns ``normalized_shape``."""
    shape = norms.check_norm_args(x, normalized_shape, weight, bias, eps, op)
    check_dtypes(op, x=x, weight=weight, bias=bias)
    check_devices(x, op, weight=weight, bias=bias)
    return shape


def check_dtypes(op: str, **tensors) -> None:
    for name, t in tensors.items():
        if t is not None and t.dtype not in KERNEL_DTYPES:
            raise norms.arg_error(TypeError, op, name, "float16, bfloat16 or float32 (the kernels' dtypes)", t.dtype)


def check_devices(x: torch.Tensor, op: str, **others) -> None:
    """x on a device the kernels can run on, and every other tensor on x's device."""
    if x.device.type != "cuda" and not INTERPRETED:
        expected = "a CUDA tensor (for CPU tensors set TRITON_INTERPRET=1 before importing lnbook.kernels)"
        raise norms.arg_error(ValueError, op, "x", expected, f"a tensor on {x.device}")
    for name, t in others.items():
        if t is not None and t.device != x.device:
            raise norms.arg_error(ValueError, op, name, f"a tensor on {x.device} (x's device)", f"one on {t.device}")
