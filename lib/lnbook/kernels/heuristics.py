"""Launch heuristics: block shapes, warps, pipeline stages and the number of backward programs.

These are starting points, not tuned tables: one rule per decision, written so the chapter can
explain it. The numbers in comments are for an H100 (132 SMs, 256 KiB registers per SM). Every
limit is a parameter with the module's constant as its default, so the chapter can ask "what if"
(for instance, one block at every width) without patching this module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton

from lnbook.kernels.runtime import INTERPRETED

# A row of at most this many values is held in registers as one block; wider rows are split into
# chunks of LOOP_BLOCK_N values, one program each (split_plan). The limit is on values, not bytes: the kernels compute in float32 whatever
# the input dtype. A multiprocessor has 65536 registers, so a thread of a 32-warp (1024-thread)
# block gets at most 64. Compiled for sm_90 (lnbook.kernels.aot reports this without a GPU), a
# forward block of 16384 values fits and one of 32768 spills; the backward keeps x, dy, w·dy,
# xhat and the dw, db sums live, fits at 8192 and spills from 16384 on.
MAX_FUSED_N = {"forward": 16384, "backward": 8192}
LOOP_BLOCK_N = 4096
# Values per program when several short rows share one program: enough to keep a warp group
# busy on a GPU; far more under the interpreter, whose cost is per program, not per value.
VALUES_PER_PROGRAM = 16384 if INTERPRETED else 4096
# Rows wider than a block are split across programs, in groups of rows that must stay in L2 from
# their first read to their second. While a group is resident, L2 also takes what the group writes
# and the next group's first reads (the programs that start beside its second phase); the group is
# sized so that all of that, its *residency window*, fits in this many bytes: four fifths of an
# A100's L2 (40 MiB), under two thirds of an H100's (50 MiB); lnbook.kernels.traffic checks the
# window against the L2 it is given. Smaller groups would leave more room but cost traffic: the
# split backward writes a float32 row of dw (and db) partials per group.
WINDOW_BYTES = 32 * 2**20
# Programs per SM (program slot) that the split backward's column phase should have at least:
# with one 16-warp block per SM, two waves let one program's loads overlap another's arithmetic.
# Each column program writes one float32 row of dw (and db) partials, so more cost traffic.
COLUMN_PROGRAMS_PER_SLOT = 2
# Pipeline stages of the loops that stream rows (cp.async on sm_80 and newer). Triton keeps
# NUM_STAGES - 1 tiles in shared memory: with 2 there is one buffer, and the loop waits for every
# copy (``async_wait {num = 0}``) before each tile, so nothing overlaps; with 3 there are two
# buffers and the next tile's copies stay in flight while this one is reduced (lnbook.kernels.aot
# reports the copies in flight at the wait). Triton's interpreter runs the loop as a plain range.
NUM_STAGES = 3
# Warps per block. The forward uses up to a whole SM (1024 threads). The pipelined backward keeps
# the next tile in shared memory and more values live: at 32 warps (64 registers a thread) it
# spills at N = 8192; at 16 warps it needs 127 of the 128 registers a thread may have, and fits.
MAX_WARPS = {"forward": 32, "backward": 16}


@dataclass(frozen=True)
class Plan:
    block_m: int  # rows per block
    block_n: int  # columns per block (a power of two)
    one_block: bool  # True: the whole row is one block; False: loop over column chunks
    num_warps: int


def plan(M: int, N: int, direction: str, max_fused_n: dict[str, int] | None = None) -> Plan:
    """Block shape for M rows of N values; ``direction`` is ``"forward"`` or ``"backward"``.

    ``max_fused_n`` overrides :data:`MAX_FUSED_N` (the widest row held as one block).
    """
    block_n = triton.next_power_of_2(N)
    one_block = block_n <= (max_fused_n or MAX_FUSED_N)[direction]
    if not one_block:
        block_n = LOOP_BLOCK_N
    block_m = 1
    if one_block:
        block_m = min(triton.next_power_of_2(max(M, 1)), max(1, VALUES_PER_PROGRAM // block_n))
    # About 8 float32 values per thread per live array, up to MAX_WARPS (aot's table for sm_90):
    num_warps = min(MAX_WARPS[direction], max(1, triton.next_power_of_2(block_m * block_n // 256)))
    return Plan(block_m, block_n, one_block, num_warps)


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def program_slots(device: torch.device) -> int:
    """Programs that run at once in the backward: one per SM on a GPU, 4 under the interpreter."""
    return _multiprocessors(device) if device.type == "cuda" else 4


def backward_programs(M: int, block_m: int, slots: int) -> int:
    """How many programs share the rows in the backward; each writes one row of dw/db partials.

    ``slots`` comes from :func:`program_slots`: a fixed number per device (never the launch's
    timing) keeps the reduction order, and hence the bits of dw and db, the same from run to run.
    One program per SM: each adds a (2, N) float32 row of partials to the traffic
    (:mod:`lnbook.kernels.traffic` counts it).
    """
    return max(1, min(triton.cdiv(max(M, 1), block_m), slots))


@dataclass(frozen=True)
class SplitPlan:
    block_n: int  # columns per program (LOOP_BLOCK_N)
    block_c: int  # a power of two ≥ chunks
    chunks: int  # programs per row
    group_rows: int  # rows per group
    groups: int
    parts: int = 1  # sub-ranges of a group's rows in the backward's column phase
    part_rows: int = 0  # rows per sub-range (the last may have fewer); group_rows when parts == 1

    @property
    def column_programs(self) -> int:
        """Programs of the backward's column phase: one per (group, sub-range, chunk)."""
        return self.groups * self.parts * self.chunks


def split_plan(M: int, N: int, element_size: int, window: int, slots: int = 0) -> SplitPlan:
    """How a wide row is split: chunks of LOOP_BLOCK_N columns, one program each, and groups of
    rows whose residency window, ``window`` activation tensors' worth of the group's rows (see
    WINDOW_BYTES), fits in WINDOW_BYTES, so that a group's second read comes from L2.

    With ``slots`` (the backward), each group's rows are cut into sub-ranges, each with its own
    column programs, until the column phase has COLUMN_PROGRAMS_PER_SLOT programs per slot."""
    chunks = triton.cdiv(N, LOOP_BLOCK_N)
    group_rows = max(1, min(M, WINDOW_BYTES // (window * N * element_size)))
    groups = triton.cdiv(M, group_rows)
    parts = min(group_rows, triton.cdiv(COLUMN_PROGRAMS_PER_SLOT * slots, groups * chunks))
    part_rows = triton.cdiv(group_rows, max(parts, 1))
    parts = triton.cdiv(group_rows, part_rows)  # no sub-range of a whole group is empty
    return SplitPlan(LOOP_BLOCK_N, triton.next_power_of_2(chunks), chunks, group_rows, groups, parts, part_rows)


def sum_block_n(N: int, slots: int) -> int:
    """Columns per program of the dw/db sum: at least one program per SM where N allows, at most
    64 columns (a 64 × 64 float32 tile is 32 values a thread at 4 warps: no spill); under the
    interpreter, whose cost is per program, up to 4096."""
    widest = 4096 if INTERPRETED else 64
    return max(16, min(widest, triton.next_power_of_2(triton.cdiv(N, slots))))


def supports_bfloat16(device: torch.device) -> bool:
    """Whether Triton can compile bfloat16 kernels for ``device``.

    Triton's bfloat16 needs compute capability 8.0 (Ampere) or newer; Colab's free T4 is 7.5, where
    ``torch.cuda.is_bf16_supported()`` may still say True (PyTorch emulates it), so ask the
    capability. The interpreter handles bfloat16 on any CPU.
    """
    if device.type != "cuda":
        return INTERPRETED
    return torch.cuda.get_device_capability(device) >= (8, 0)
