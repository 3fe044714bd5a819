"""Launch heuristics: block shapes, warps and the number of backward programs.

These are starting points, not tuned tables: one rule per decision, written so the chapter can
explain it. The numbers in comments are for an H100 (132 SMs, 256 KiB registers per SM).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
from triton import knobs

#: True when the kernels run on the CPU through Triton's interpreter (no CUDA).
INTERPRETED = bool(knobs.runtime.interpret)

# A row of at most this many values is held in registers as one block; wider rows loop over chunks
# of LOOP_BLOCK_N values. The limit is on values, not bytes: the kernels compute in float32 whatever
# the input dtype. A multiprocessor has 65536 registers, so a thread of a 32-warp (1024-thread)
# block gets at most 64. Compiled for sm_90 (lnbook.kernels.aot reports this without a GPU), a
# forward block of 16384 values fits and one of 32768 spills about 336 bytes a thread; the backward
# keeps x, dy, w·dy, xhat and the dw, db sums live, fits at 8192 and spills from 16384 on.
MAX_FUSED_N = {"forward": 16384, "backward": 8192}
LOOP_BLOCK_N = 4096
# Values per program when several short rows share one program: enough to keep a warp group
# busy on a GPU; far more under the interpreter, whose cost is per program, not per value.
VALUES_PER_PROGRAM = 16384 if INTERPRETED else 4096


@dataclass(frozen=True)
class Plan:
    block_m: int  # rows per block
    block_n: int  # columns per block (a power of two)
    one_block: bool  # True: the whole row is one block; False: loop over column chunks
    num_warps: int


def plan(M: int, N: int, direction: str) -> Plan:
    """Block shape for M rows of N values; ``direction`` is ``"forward"`` or ``"backward"``."""
    block_n = triton.next_power_of_2(N)
    one_block = block_n <= MAX_FUSED_N[direction]
    if not one_block:
        block_n = LOOP_BLOCK_N
    block_m = 1
    if one_block:
        block_m = min(triton.next_power_of_2(max(M, 1)), max(1, VALUES_PER_PROGRAM // block_n))
    # About 8 float32 values per thread per live array, up to 32 warps (1024 threads, a whole SM):
    # at 16 warps the backward at N = 8192 hits the 128-register cap and spills; at 32 it needs ~61.
    num_warps = min(32, max(1, triton.next_power_of_2(block_m * block_n // 256)))
    return Plan(block_m, block_n, one_block, num_warps)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def backward_programs(M: int, block_m: int, device: torch.device) -> int:
    """How many programs share the rows in the backward; each writes one row of dw/db partials.

    A fixed number per device (never the launch's timing) keeps the reduction order, and hence
    the bits of dw and db, the same from run to run.
    """
    row_blocks = triton.cdiv(max(M, 1), block_m)
    # One program per SM: each adds a (2, N) float32 write and read of partials to the traffic,
    # about 9 % of a 4096 x 8192 bfloat16 backward on an H100 (the kernels chapter works it out).
    slots = 4 if INTERPRETED else _multiprocessors(device)
    return max(1, min(row_blocks, slots))


def supports_bfloat16(device: torch.device) -> bool:
    """Whether Triton can compile bfloat16 kernels for ``device``.

    Triton's bfloat16 needs compute capability 8.0 (Ampere) or newer; Colab's free T4 is 7.5, where
    ``torch.cuda.is_bf16_supported()`` may still say True (PyTorch emulates it), so ask the
    capability. The interpreter handles bfloat16 on any CPU.
    """
    if device.type != "cuda":
        return INTERPRETED
    return torch.cuda.get_device_capability(device) >= (8, 0)
