"""The compile table (lnbook.kernels.aot): the launched kernels compiled for real GPUs with Triton's
own ptxas, no GPU needed. What the interpreter cannot check: that every variant compiles, spills
nothing, loads 16 bytes at a time and pipelines its loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import triton

from lnbook.kernels import aot, rownorm

# The compile table is built once per process (a module fixture); keep its users on one xdist worker.
AOT_GROUP = pytest.mark.xdist_group("aot-table")

COMPILE = [
    ["--arch", "90", "--widths", "512", "8192", "262144"],  # H100: every op and dtype; short, target, widest
    ["--arch", "80", "--dtypes", "bf16", "--widths", "8192"],  # A100
    ["--arch", "75", "--dtypes", "fp16", "--widths", "8192"],  # T4 (Colab): no bfloat16 there
]


@pytest.fixture(scope="module")
def table() -> list[dict]:
    # The command as documented: no TRITON_INTERPRET (without CUDA, lnbook.kernels would choose the
    # interpreter; aot then compiles in a process of its own).
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env |= {"TRITON_DEFAULT_FP_FUSION": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    rows = []
    for args in COMPILE:
        out = subprocess.run([sys.executable, "-m", "lnbook.kernels.aot", "--json", *args], env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    return rows


# Triton 3.6 (Colab's, the floor pyproject.toml declares for compiled kernels) spills where later releases do
# not: two kernels of this table keep 8 bytes a thread in local memory, both fp16 at N = 512 on sm_90, one block
# of 8 rows at 16 warps: layer_norm's forward (40 registers) and rms_norm's backward (64 registers). Triton 3.7 and
# newer spill nothing in this table (measured with `make floors`' Triton, 3.6.0, and this suite's). The forward
# at 8 warps spills nothing on 3.6 either (48 registers), but the warp counts stay until a GPU measures what
# fewer warps cost. Listed exactly: any other spill fails, and so does one of these disappearing.
FLOOR_SPILLS = {("layer_norm", "forward", "fp16", 512, "sm_90"): 8, ("rms_norm", "backward", "fp16", 512, "sm_90"): 8}


def expected_spill(row: dict, version: str = triton.__version__) -> int:
    """The spill bytes ``row`` of the compile table is expected to show under Triton ``version``."""
    below_3_7 = tuple(int(v) for v in version.split(".")[:2]) < (3, 7)
    key = (row["op"], row["pass"], row["dtype"], row["N"], row["arch"])
    return FLOOR_SPILLS.get(key, 0) if below_3_7 else 0


def test_only_triton_below_3_7_is_allowed_its_listed_spills():
    row = {"op": "layer_norm", "pass": "forward", "dtype": "fp16", "N": 512, "arch": "sm_90"}
    assert expected_spill(row, "3.6.0") == 8 and expected_spill(row, "3.7.0") == 0 and expected_spill(row, "3.9.0") == 0
    assert expected_spill({**row, "dtype": "bf16"}, "3.6.0") == 0
    backward = {"op": "rms_norm", "pass": "backward", "dtype": "fp16", "N": 512, "arch": "sm_90"}
    assert expected_spill(backward, "3.6.0") == 8 and expected_spill(backward, "3.8.0") == 0
    assert expected_spill({**backward, "op": "layer_norm"}, "3.6.0") == 0


@AOT_GROUP
def test_every_launched_kernel_compiles_without_spilling(table):
    # sm_90: 3 ops × 3 dtypes × 3 widths forward; backward: 2 kernels each (rows and sum, or
    # coefficients and columns); sm_80 and sm_75: one dtype at one width.
    assert len(table) == 3 * 3 * 3 * 3 + 2 * 3 * 3
    assert {r["pass"] for r in table} == {"forward", "backward", "sum"}
    for row in table:
        assert row["spill_bytes"] == expected_spill(row), row
        assert row["registers"] <= min(255, 65536 // (32 * row["num_warps"])), row


@AOT_GROUP
def test_loads_are_16_bytes_wide_at_aligned_widths(table):
    # Every N here is a multiple of 8 values and every tensor starts 16-byte aligned, so the
    # runtime's divisibility facts allow 16-byte (8 × bfloat16, 4 × float32) loads everywhere.
    assert all(row["vector_bytes"] == 16 for row in table), [r for r in table if r["vector_bytes"] != 16]


@AOT_GROUP
def test_the_target_backward_is_pipelined(table):
    (row,) = [r for r in table if (r["op"], r["pass"], r["dtype"], r["N"], r["arch"])
              == ("layer_norm", "backward", "bf16", 8192, "sm_90")]
    assert row["kernel"] == "_backward_kernel" and row["async_copy"] and row["shared_bytes"] > 0, row


@AOT_GROUP
def test_every_backward_loop_keeps_copies_in_flight(table):
    """Prefetch, not just cp.async: at the loop's wait the next rows' copies are still outstanding."""
    # sm_75 (T4) has no cp.async: its loops load synchronously, with the warps of other blocks to hide latency.
    backward = [r for r in table if r["pass"] == "backward" and r["arch"] != "sm_75"]
    assert {r["kernel"] for r in backward} == {"_backward_kernel", "_split_backward_kernel"}
    assert all(r["copies_in_flight"] >= 1 for r in backward), [r for r in backward if r["copies_in_flight"] < 1]


def test_two_stages_wait_for_every_copy():
    """What the column catches: with num_stages=2 the loop has one buffer and waits for all copies."""
    code = ("import torch\n"
            "from lnbook.kernels import aot, heuristics, rownorm\n"
            "heuristics.NUM_STAGES = 2\n"
            "launch = rownorm.launches_for('layer_norm', 'backward', 4096, 8192, torch.bfloat16, 132)[0]\n"
            "print(aot.resources(aot.compile_launch(launch, 90))['copies_in_flight'])\n")
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) == 0


def test_copies_in_flight_reads_the_loops_wait():
    ir = ("%a = ttg.async_wait %x, %y {num = 4 : i32} loc(#loc1)\n"  # in the loop: 4 copies outstanding
          "%b = ttg.async_wait  {num = 0 : i32} loc(#loc2)\n")  # after it: drained
    assert aot.copies_in_flight(ir) == 4 and aot.copies_in_flight("tt.load") == 0


def test_without_alignment_facts_the_loads_narrow():
    """The facts matter: the same kernel, told nothing about alignment, loads 2 bytes at a time."""
    code = ("import torch\n"
            "from lnbook.kernels import aot, rownorm\n"
            "(launch,) = rownorm.launches_for('layer_norm', 'forward', 4096, 8192, torch.bfloat16, 132)\n"
            "runtime = aot.specialize\n"
            "aot.specialize = lambda value: (runtime(value)[0], False)  # same types, no divisibility\n"
            "print(aot.resources(aot.compile_launch(launch, 90))['vector_bytes'])\n")
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) < 16


@pytest.mark.parametrize("value", [1, 16, 17, 4096, 2**31, 1e-5,
                                   torch.empty(3, dtype=torch.bfloat16, device="meta"),
                                   torch.empty(3, dtype=torch.float32, device="meta")],
                         ids=["one", "16", "17", "4096", "2^31", "float", "bf16-tensor", "fp32-tensor"])
def test_specialization_is_the_runtimes(value):
    """aot's rule agrees with the launcher's own specializer (where this Triton exposes it)."""
    native = pytest.importorskip("triton._C.libtriton").__dict__.get("native_specialize_impl")
    if native is None:
        pytest.skip("this Triton has no native_specialize_impl")
    from triton.backends.compiler import BaseBackend

    kind, attr = native(BaseBackend, value, False, True, True)
    ours_kind, ours_aligned = aot.specialize(value)
    assert ours_kind == kind and ours_aligned == (attr == "D"), (value, kind, attr)


def test_launches_are_built_from_the_kernels_own_arguments():
    for op in ("layer_norm", "rms_norm", "add_layer_norm"):
        for direction in ("forward", "backward"):
            for N in (512, 65536):
                for launch in rownorm.launches_for(op, direction, 64, N, torch.bfloat16, 132):
                    assert set(launch.args) == set(launch.kernel.arg_names), (op, direction, N, launch.kernel)
