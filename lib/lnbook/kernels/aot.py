"""The compile table: every kernel compiled for a GPU that is not there, with its resources.

Triton compiles ahead of time for any NVIDIA target with the ``ptxas`` it ships, no GPU or driver
needed, and ``cuobjdump`` (also shipped) reports each binary's registers, stack and shared memory.
The kernels compiled here are the ones that run: the launches come from the same host code
(:func:`lnbook.kernels.rownorm.launches_for`, on ``meta`` tensors of the requested shape), and the signature carries the alignment facts Triton's runtime specializes
on (16-byte divisible pointers and integers, integers equal to 1 as constants). It needs Triton's
compiler, not its interpreter: on a machine without CUDA, where importing :mod:`lnbook.kernels`
selects the interpreter, the command runs itself again in a process with ``TRITON_INTERPRET=0``::

    python -m lnbook.kernels.aot --json     # a JSON list, one row per kernel
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from lnbook.hardware import BY_CAPABILITY
from lnbook.kernels import rownorm, runtime

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
WIDTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
SMS = {cap: d.sms for cap, d in BY_CAPABILITY.items()}  # the backward's programs (one per SM)
ROWS = 4096  # M of the compiled launches; only the alignment facts depend on it


def _type_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.int32: "i32"}[dtype]


def specialize(value) -> tuple[str, bool]:
    """(Triton type, 16-byte divisible) of a runtime argument, as Triton's launcher decides them:
    a tensor is a pointer (its address; the caching allocator aligns to 256 bytes), an integer
    1 becomes the constant 1, an integer is i64 from 2^31 on."""
    if isinstance(value, torch.Tensor):
        return "*" + _type_name(value.dtype), value.data_ptr() % 16 == 0
    if isinstance(value, bool):
        return "i1", False
    if isinstance(value, int):
        if value == 1:
            return "constexpr", False
        return ("i64" if abs(value) >= 2**31 else "i32"), value % 16 == 0
    return "fp32", False


def compile_launch(launch: rownorm.Launch, capability: int):
    """Compile one launch for ``sm_<capability>`` with the runtime's signature and alignment facts."""
    if runtime.INTERPRETED:
        raise RuntimeError("aot: expected TRITON_INTERPRET=0 before lnbook.kernels is imported, got the interpreter")
    fn = launch.kernel
    constexprs, signature, attrs = {}, {}, {}
    for index, param in enumerate(fn.params):
        value = launch.args[param.name]
        kind, aligned = ("constexpr", False) if param.is_constexpr else specialize(value)
        signature[param.name] = kind
        if kind == "constexpr":
            constexprs[param.name] = value
        elif aligned:
            attrs[(index,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    target = GPUTarget("cuda", capability, 32)
    return triton.compile(source, target=target, options={"num_warps": launch.num_warps})


def resources(kernel) -> dict:
    """Registers and stack (spill) bytes per thread from ``cuobjdump``, shared bytes per block from
    the compiler's metadata; from the PTX, whether it copies asynchronously (cp.async) and its widest
    global load; from the TritonGPU IR, the copies still in flight at the loop's wait."""
    cuobjdump = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        cubin = pathlib.Path(tmp) / "kernel.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        out = subprocess.run([str(cuobjdump), "-res-usage", str(cubin)], capture_output=True, text=True, check=True).stdout
    usage = {key: int(value) for key, value in re.findall(r"\b(REG|STACK):(\d+)", out)}
    ptx = kernel.asm["ptx"]
    return {"registers": usage.get("REG", 0), "spill_bytes": usage.get("STACK", 0),
            "shared_bytes": kernel.metadata.shared,  # dynamic shared memory: what the launch requests
            "async_copy": "cp.async" in ptx, "vector_bytes": widest_load(ptx),
            "copies_in_flight": copies_in_flight(kernel.asm["ttgir"])}


def copies_in_flight(ttgir: str) -> int:
    """Asynchronous copies left in flight where a pipelined loop waits: the largest ``num`` of the
    IR's ``async_wait`` ops (a wait lets ``num`` copy groups, one per load of a later tile, stay
    outstanding). 0 means every wait drains all copies, so no load overlaps the arithmetic, as
    after a loop or in a loop with one buffer (``num_stages=2``); 0 also without async copies."""
    return max((int(n) for n in re.findall(r"async_wait\b[^{\n]*\{num = (\d+)", ttgir)), default=0)


def widest_load(ptx: str) -> int:
    """Bytes of the widest load from global memory in the PTX (``ld.global.v4.b32``: 16;
    ``cp.async.cg.shared.global [..], [..], 0x10``: 16)."""
    widths = [int(v or 1) * int(bits) // 8 for v, bits in re.findall(r"ld\.global[.\w]*?(?:\.v(\d))?\.[bfsu](\d+)\s", ptx)]
    widths += [int(n, 0) for n in re.findall(r"cp\.async\.c[ag]\.shared\.global\s*\[[^]]*\],\s*\[[^]]*\],\s*(\w+)", ptx)]
    return max(widths, default=0)


def report(capability: int = 90, dtypes=tuple(DTYPES), widths=WIDTHS, ops=tuple(rownorm.OPS), max_fused_n=None) -> list[dict]:
    """One row per compiled kernel: op, pass (forward, backward, or sum for the dw/db sum), dtype,
    N, arch, the kernel's name, the launch plan (warps, blocks, programs) and :func:`resources`."""
    rows = []
    for op, direction, dtype, N in itertools.product(ops, ("forward", "backward"), dtypes, widths):
        for launch in rownorm.launches_for(op, direction, ROWS, N, DTYPES[dtype], SMS[capability], max_fused_n):
            kernel = compile_launch(launch, capability)
            name = "sum" if launch.kernel is rownorm._sum_partials_kernel else direction
            rows.append({"op": op, "pass": name, "dtype": dtype, "N": N, "arch": f"sm_{capability}",
                         "kernel": launch.kernel.__name__, "num_warps": launch.num_warps,
                         "block_m": launch.args.get("BLOCK_M"), "block_n": launch.args["BLOCK_N"],
                         "programs": launch.grid[0], **resources(kernel)})
    return rows


def _compiled(argv: list[str]) -> int:
    """Run this command again in a process that compiles (``TRITON_INTERPRET=0``), with this
    process's import path, so that ``lnbook`` is found wherever it was found here."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-m", "lnbook.kernels.aot", *argv], env=env).returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if runtime.INTERPRETED:  # lnbook.kernels chose the interpreter (no CUDA here): compile elsewhere
        return _compiled(argv)
    parser = argparse.ArgumentParser(prog="python -m lnbook.kernels.aot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", type=int, choices=tuple(SMS), default=tuple(SMS), help="compute capabilities")
    parser.add_argument("--dtypes", nargs="+", choices=tuple(DTYPES), default=tuple(DTYPES))
    parser.add_argument("--widths", nargs="+", type=int, default=WIDTHS, help="values of N")
    parser.add_argument("--ops", nargs="+", choices=tuple(rownorm.OPS), default=tuple(rownorm.OPS))
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of one line per kernel")
    parser.add_argument("--one-block", action="store_true", help="hold every row as one block (to see where it spills)")
    args = parser.parse_args(argv)
    max_fused_n = {"forward": 1 << 20, "backward": 1 << 20} if args.one_block else None
    rows = []
    for capability in args.arch:
        dtypes = [d for d in args.dtypes if d != "bf16" or capability >= 80]  # no bfloat16 before sm_80
        rows += report(capability, dtypes, args.widths, args.ops, max_fused_n)
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(" ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
