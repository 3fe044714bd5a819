"""The traffic model: bytes the launches actually made move through DRAM, against the ideal.

The ideal (:func:`lnbook.bench.bytes_moved`) reads and writes every tensor once. The model counts
what the launches of :func:`lnbook.kernels.rownorm.launches_for` touch, with two rules:

- every pass a launch makes over a tensor counts (a wide row's second read of x, the float32
  dw/db partials, the wide backward's per-row coefficients and its second read of x and dy);
  parameters and per-row statistics count once per pass, since all programs read the same few
  values from L2;
- a buffer one launch writes and the next launch reads (the partials) is read from L2 when it fits
  there (``l2_bytes``, an H100's 50 MiB by default): its write counts, its read does not.

No clock is involved: these are counts from the launch arguments, the same on any machine.
"""

from __future__ import annotations

import torch

from lnbook import bench
from lnbook.kernels import rownorm

H100_L2_BYTES = 50 * 2**20
H100_SMS = 132


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _reads(a: dict, *names: str) -> list[tuple[str, str, int]]:
    return [(name, "read", _bytes(a[name])) for name in names]


def _writes(a: dict, *names: str) -> list[tuple[str, str, int]]:
    return [(name, "write", _bytes(a[name])) for name in names]


def _flagged(a: dict, pairs) -> list[str]:
    return [name for name, flag in pairs if a[flag]]


def accesses(launch: rownorm.Launch) -> list[tuple[str, str, int]]:
    """``(argument, "read" or "write", bytes)`` for every pass the launch makes over a tensor."""
    a, kernel = launch.args, launch.kernel
    stats = ["RSTD"] + (["MEAN"] if a.get("CENTER") else [])
    params = _flagged(a, (("W", "HAS_W"), ("B", "HAS_B"))) if kernel is rownorm._forward_kernel else []
    if kernel is rownorm._forward_kernel:
        second = [] if a["ONE_BLOCK"] else _reads(a, "S" if a["HAS_R"] else "X") + _reads(a, *params)
        summed = _reads(a, "R") + _writes(a, "S") if a["HAS_R"] else []
        return _reads(a, "X", *params) + summed + second + _writes(a, "Y", *stats)
    ds = ["DS"] if a.get("HAS_DS") else []
    weight = ["W"] if a.get("HAS_W") else []
    if kernel is rownorm._backward_kernel:
        parts = _flagged(a, (("DW_PART", "HAS_W"), ("DB_PART", "HAS_B")))
        return _reads(a, "X", "DY", *ds, *weight, *stats) + _writes(a, "DX", *parts)
    if kernel is rownorm._coefficients_kernel:
        return _reads(a, "X", "DY", *weight, *stats) + _writes(a, "COEF")
    if kernel is rownorm._columns_kernel:
        grads = _flagged(a, (("DW", "HAS_W"), ("DB", "HAS_B")))
        return _reads(a, "X", "DY", *ds, *weight, *stats, "COEF") + _writes(a, "DX", *grads)
    pairs = [(part, total) for part, total, flag in (("DW_PART", "DW", "HAS_W"), ("DB_PART", "DB", "HAS_B")) if a[flag]]
    return [access for part, total in pairs for access in _reads(a, part) + _writes(a, total)]  # the dw/db sum


def dram_bytes(launches: list[rownorm.Launch], l2_bytes: int = H100_L2_BYTES) -> int:
    """DRAM bytes of a sequence of launches under the module's two rules."""
    total, written = 0, set()  # ids of the tensors the previous launch wrote
    for launch in launches:
        rows = [(id(launch.args[name]), kind, nbytes) for name, kind, nbytes in accesses(launch)]
        from_previous = sum(n for t, kind, n in rows if kind == "read" and t in written)
        in_l2 = from_previous <= l2_bytes
        total += sum(n for t, kind, n in rows if not (in_l2 and kind == "read" and t in written))
        written = {t for t, kind, _ in rows if kind == "write"}
    return total


def model(op: str, mode: str, M: int, N: int, dtype: torch.dtype = torch.bfloat16,
          slots: int = H100_SMS, l2_bytes: int = H100_L2_BYTES) -> dict:
    """``{"bytes", "ideal", "ratio"}`` for ``op``'s ``mode`` ("forward" or "backward") at M × N."""
    moved = dram_bytes(rownorm.launches_for(op, mode, M, N, dtype, slots), l2_bytes)
    ideal = bench.bytes_moved(op, mode, M, N, dtype.itemsize)
    return {"bytes": moved, "ideal": ideal, "ratio": moved / ideal}


def table(shapes=((4096, 8192), (128, 262144)), ops=("layer_norm", "rms_norm", "add_layer_norm"),
          modes=("forward", "backward"), dtype: torch.dtype = torch.bfloat16) -> list[dict]:
    """One row per op, mode and shape: model bytes, ideal bytes and their ratio."""
    return [{"op": op, "mode": mode, "M": M, "N": N, **model(op, mode, M, N, dtype)}
            for (M, N) in shapes for op in ops for mode in modes]
