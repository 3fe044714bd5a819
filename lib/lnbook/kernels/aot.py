"""Compile the kernels for a GPU that is not there, and read their register use.

Triton compiles ahead of time for any NVIDIA target with the ``ptxas`` it ships, no GPU or driver
needed, and ``cuobjdump`` (also shipped) reports each binary's registers and stack. That checks
what the interpreter cannot (that every variant compiles, and which block sizes spill), on any
machine. Run it in a process where ``TRITON_INTERPRET`` is ``0``, set before anything imports
:mod:`lnbook.kernels`, since interpreted kernels cannot be compiled::

    TRITON_INTERPRET=0 python -m lnbook.kernels.aot        # prints one line per variant
"""

from __future__ import annotations

import itertools
import pathlib
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from lnbook.kernels import heuristics, rownorm

OPS = {  # op -> forward flags, backward flags
    "layer_norm": ({"CENTER": True, "HAS_R": False, "HAS_B": True}, {"CENTER": True, "HAS_B": True, "HAS_DS": False}),
    "rms_norm": ({"CENTER": False, "HAS_R": False, "HAS_B": False}, {"CENTER": False, "HAS_B": False, "HAS_DS": False}),
    "add_layer_norm": ({"CENTER": True, "HAS_R": True, "HAS_B": True}, {"CENTER": True, "HAS_B": True, "HAS_DS": True}),
}


def _signature(names: str, dtype: str) -> dict[str, str]:
    """Argument types: ``P`` a pointer to dtype, ``F`` a pointer to float32, ``i`` int32, ``f`` float32."""
    kinds = {"P": f"*{dtype}", "F": "*fp32", "i": "i32", "f": "fp32"}
    return {name: kinds[kind] for name, kind in (item.split(":") for item in names.split())}


FORWARD_ARGS = ("X:P R:P S:P Y:P W:P B:P MEAN:F RSTD:F stride_x:i stride_r:i stride_s:i stride_y:i M:i N:i eps:f")
BACKWARD_ARGS = ("X:P W:P DY:P DS:P DX:P MEAN:F RSTD:F DW_PART:F DB_PART:F stride_x:i stride_dy:i stride_ds:i "
                 "stride_dx:i M:i N:i rows_per_program:i")


def compile_kernel(op: str, direction: str, dtype: str, N: int, capability: int = 90):
    """The compiled kernel for ``op``'s ``direction`` at row width N, with the launch plan's blocks."""
    if heuristics.INTERPRETED:
        raise RuntimeError("aot: expected TRITON_INTERPRET=0 before lnbook.kernels is imported, got the interpreter")
    plan = heuristics.plan(4096, N, direction)
    forward_flags, backward_flags = OPS[op]
    flags = forward_flags if direction == "forward" else backward_flags
    consts = {**flags, "HAS_W": True, "BLOCK_M": plan.block_m, "BLOCK_N": plan.block_n, "ONE_BLOCK": plan.one_block}
    fn, args = (rownorm._forward_kernel, FORWARD_ARGS) if direction == "forward" else (rownorm._backward_kernel, BACKWARD_ARGS)
    signature = _signature(args, dtype) | {name: "constexpr" for name in consts}
    source = ASTSource(fn=fn, signature=signature, constexprs=consts)
    return plan, triton.compile(source, target=GPUTarget("cuda", capability, 32), options={"num_warps": plan.num_warps})


def resource_usage(kernel) -> dict[str, int]:
    """Registers per thread and stack bytes per thread (spills land on the stack) of a compiled kernel."""
    cuobjdump = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        cubin = pathlib.Path(tmp) / "kernel.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        out = subprocess.run([str(cuobjdump), "-res-usage", str(cubin)], capture_output=True, text=True, check=True).stdout
    return {key.lower(): int(value) for key, value in re.findall(r"\b(REG|STACK):(\d+)", out)}


def report(capability: int = 90, dtypes=("bf16", "fp16", "fp32"), widths=(512, 4096, 8192, 16384, 65536),
           ops=tuple(OPS)) -> list[dict]:
    """Every op, direction, dtype and width: the plan and the compiled kernel's register use."""
    rows = []
    for op, direction, dtype, N in itertools.product(ops, ("forward", "backward"), dtypes, widths):
        plan, kernel = compile_kernel(op, direction, dtype, N, capability)
        rows.append({"op": op, "direction": direction, "dtype": dtype, "N": N, "block_m": plan.block_m,
                     "block_n": plan.block_n, "one_block": plan.one_block, "num_warps": plan.num_warps,
                     **resource_usage(kernel)})
    return rows


def main(argv: list[str] | None = None) -> int:
    capability = int((argv or sys.argv[1:] or ["90"])[0])
    for row in report(capability):
        print(" ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
