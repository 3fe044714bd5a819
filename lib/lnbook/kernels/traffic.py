"""The traffic model: bytes the launches actually made move through DRAM, against the ideal.

The ideal (:func:`bytes_moved`) reads and writes every tensor once. The model counts
what the launches of :func:`lnbook.kernels.rownorm.launches_for` touch, with two rules:

- every pass a launch makes over a tensor counts (the float32 dw/db partials, a split row's
  moments and counters, the zero-filled counters included); parameters and per-row statistics
  count once per pass, since all programs read the same few values from L2;
- what is read again soon is read from L2 when it fits there (``l2_bytes``, an H100's 50 MiB by
  default): a buffer one launch writes and the next reads (the partials: its write counts, its
  read does not), and a split launch's second read of a group of rows when the group's
  *residency window* fits. A group must stay in L2 from its first read to its second; meanwhile
  L2 also takes the group's other passes (y, s, dx written, ds read) and the first reads of the
  next group, whose programs start while the group's second phase runs (programs start in ticket
  order, group after group). The rule assumes L2 keeps the most recently used lines (an ideal LRU
  cache of ``l2_bytes``), that a group has more programs than run at once (so only one next
  group overlaps it: true at the shapes of :func:`table`, thousands of programs a group), and
  counts nothing for the lines other kernels leave there.

No clock is involved: these are counts from the launch arguments, the same on any machine.
"""

from __future__ import annotations

import torch

from lnbook.hardware import H100
from lnbook.kernels import rownorm

H100_L2_BYTES = H100.l2_bytes
H100_SMS = H100.sms


def bytes_moved(op: str, mode: str, M: int, N: int, element_size: int) -> int:
    """Bytes a perfect implementation reads and writes, each tensor exactly once.

    Activations are M×N values of ``element_size`` bytes, parameters N values of the same size,
    statistics float32 per row (mean and rstd; rstd only for RMSNorm).

    forward   reads x (and residual), w (and b); writes y (and s = x + residual), the statistics
    backward  reads x (s for add), dy (and ds), w, the statistics; writes dx (one tensor: x and
              residual share it), dw (and db)
    """
    act, par = M * N * element_size, N * element_size
    params = 1 if op == "rms_norm" else 2  # w, or w and b
    stats = M * 4 * (1 if op == "rms_norm" else 2)
    fused = op == "add_layer_norm"
    forward = (2 if fused else 1) * act * 2 + params * par + stats
    backward = (3 if fused else 2) * act + act + par + params * par + stats
    return {"forward": forward, "backward": backward, "forward+backward": forward + backward}[mode]


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _reads(a: dict, *names: str) -> list[tuple[str, str, int]]:
    return [(name, "read", _bytes(a[name])) for name in names]


def _writes(a: dict, *names: str) -> list[tuple[str, str, int]]:
    return [(name, "write", _bytes(a[name])) for name in names]


def _flagged(a: dict, pairs) -> list[str]:
    return [name for name, flag in pairs if a[flag]]


def residency_window(a: dict, first: list[str], others: list[str]) -> int:
    """Bytes that enter L2 while a group of a split launch must stay there: its ``first`` reads
    and the next group's, and its ``others`` passes (the second read is the group's own bytes)."""
    group = lambda names: sum(a["group_rows"] * a["N"] * a[name].element_size() for name in names)
    return 2 * group(first) + group(others)


def _rereads(a: dict, l2_bytes: int, reread: list[str], first: list[str], others: list[str]):
    """A split launch's second read of a group of rows: from L2 when its residency window fits."""
    return [] if residency_window(a, first, others) <= l2_bytes else _reads(a, *reread)


def accesses(launch: rownorm.Launch, l2_bytes: int = H100_L2_BYTES) -> list[tuple[str, str, int]]:
    """``(argument, "read" or "write", bytes)`` for every pass the launch makes over a tensor in DRAM."""
    a, kernel = launch.args, launch.kernel
    stats = ["RSTD"] + (["MEAN"] if a.get("CENTER") else [])
    ds = ["DS"] if a.get("HAS_DS") else []
    weight = ["W"] if a.get("HAS_W") else []
    if kernel in (rownorm._forward_kernel, rownorm._split_forward_kernel):
        params = _flagged(a, (("W", "HAS_W"), ("B", "HAS_B")))
        summed = _reads(a, "R") + _writes(a, "S") if a["HAS_R"] else []
        out = _reads(a, "X", *params) + summed + _writes(a, "Y", *stats)
        if kernel is rownorm._split_forward_kernel:  # + moments, counters and the ticket; x (or s) again
            out += _writes(a, "MOMENTS", "ARRIVED", "TICKET") + _reads(a, "MOMENTS", "ARRIVED", "TICKET")
            first, others = (["X", "R"], ["S", "Y"]) if a["HAS_R"] else (["X"], ["Y"])
            out += _rereads(a, l2_bytes, ["S" if a["HAS_R"] else "X"], first, others)
        return out
    if kernel is rownorm._backward_kernel:
        parts = _flagged(a, (("DW_PART", "HAS_W"), ("DB_PART", "HAS_B")))
        return _reads(a, "X", "DY", *ds, *weight, *stats) + _writes(a, "DX", *parts)
    if kernel is rownorm._split_backward_kernel:
        parts = _flagged(a, (("DW_PART", "HAS_W"), ("DB_PART", "HAS_B")))
        scratch = _writes(a, "SUMS", "ARRIVED", "TICKET") + _reads(a, "SUMS", "ARRIVED", "TICKET")
        return (_reads(a, "X", "DY", *ds, *weight, *stats) + _writes(a, "DX", *parts) + scratch
                + _rereads(a, l2_bytes, ["X", "DY"], ["X", "DY"], ["DX", *ds]))
    pairs = [(part, total) for part, total, flag in (("DW_PART", "DW", "HAS_W"), ("DB_PART", "DB", "HAS_B")) if a[flag]]
    return [access for part, total in pairs for access in _reads(a, part) + _writes(a, total)]  # the dw/db sum


def dram_bytes(launches: list[rownorm.Launch], l2_bytes: int = H100_L2_BYTES) -> int:
    """DRAM bytes of a sequence of launches under the module's two rules."""
    total, written = 0, set()  # ids of the tensors the previous launch wrote
    for launch in launches:
        rows = [(id(launch.args[name]), kind, nbytes) for name, kind, nbytes in accesses(launch, l2_bytes)]
        from_previous = sum(n for t, kind, n in rows if kind == "read" and t in written)
        in_l2 = from_previous <= l2_bytes
        total += sum(n for t, kind, n in rows if not (in_l2 and kind == "read" and t in written))
        written = {t for t, kind, _ in rows if kind == "write"}
    return total


def model(op: str, mode: str, M: int, N: int, dtype: torch.dtype = torch.bfloat16,
          slots: int = H100_SMS, l2_bytes: int = H100_L2_BYTES) -> dict:
    """``{"bytes", "ideal", "ratio"}`` for ``op``'s ``mode`` ("forward" or "backward") at M × N."""
    moved = dram_bytes(rownorm.launches_for(op, mode, M, N, dtype, slots), l2_bytes)
    ideal = bytes_moved(op, mode, M, N, dtype.itemsize)
    return {"bytes": moved, "ideal": ideal, "ratio": moved / ideal}


def table(shapes=((4096, 8192), (128, 262144)), ops=("layer_norm", "rms_norm", "add_layer_norm"),
          modes=("forward", "backward"), dtype: torch.dtype = torch.bfloat16) -> list[dict]:
    """One row per op, mode and shape: model bytes, ideal bytes and their ratio."""
    return [{"op": op, "mode": mode, "M": M, "N": N, **model(op, mode, M, N, dtype)}
            for (M, N) in shapes for op in ops for mode in modes]
