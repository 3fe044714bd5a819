"""The kernels chapter's computations (lnbook.experiments.kernels) against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from lnbook.experiments import kernels as kx
from lnbook.kernels import traffic


def test_tree_sum_rounds_every_addition_in_the_vector_dtype():
    # Integers up to 2^11 are exact in float16, so a sum of small integers is exact...
    assert kx.tree_sum(torch.arange(64, dtype=torch.float16)).item() == 64 * 63 / 2
    # ...but 2048 + 1 is not representable: the tree rounds it back to 2048 (ties to even).
    assert kx.tree_sum(torch.tensor([2048.0, 1.0], dtype=torch.float16)).item() == 2048.0
    assert kx.tree_sum(torch.tensor([2048.0, 1.0], dtype=torch.float32)).item() == 2049.0


def test_float16_sum_of_squares_overflows_where_the_closed_form_says():
    for row in kx.overflow_table((1, 64, 4096)):
        # The sum is N·rms² up to float16 rounding of the squares and the partial sums (a few 1e-4
        # relative at these widths), so the threshold agrees with √(65504/N) to well within 1 %.
        assert math.isclose(row["measured"], row["predicted"], rel_tol=1e-2), row


def test_float16_statistics_erase_the_row_while_float32_statistics_do_not():
    demo = kx.half_statistics_output()
    assert math.isinf(demo["var_half"]) and demo["max_abs_half"] == 0.0
    assert demo["err_ours"] < 4e-3  # half an ulp of float16 at |y| <= 4 is 2e-3; twice that


def test_variance_algorithms_on_a_large_mean():
    e = kx.variance_errors()
    assert e["naive"] > 1.0  # cancellation: wrong by more than the variance itself
    # Two-pass in float32 on mean 1e4: each deviation carries about ulp(1e4)/2 = 5e-4 absolute
    # error, so the relative error of a unit variance is ~1e-5 at worst; measured far below.
    for key in ("two_pass", "kernel_one_block", "kernel_chunked"):
        assert e[key] < 1e-5, (key, e[key])


def test_summation_order_changes_the_bits_but_not_the_value():
    g = kx.summation_order_gap()
    assert g["gap"] > 0.0  # a different order gives a different float32 result
    # Each is within the pairwise-summation bound, log2(n)·eps·Σ|v|, of the exact sum.
    bound = 16 * torch.finfo(torch.float32).eps * 2**16
    assert abs(g["stored"] - g["exact"]) < bound and abs(g["shuffled"] - g["exact"]) < bound


def test_kernel_backward_is_the_jacobian_transpose_product():
    assert kx.backward_vs_jacobian() < 1e-6  # float32 rounding of O(1) values


def test_add_traffic_counts_the_round_trip_of_the_sum():
    M, N = 8, 16
    act = M * N * 4
    t = kx.add_traffic(M, N, torch.float32)
    assert t["unfused"]["forward"] - t["fused"]["forward"] == act  # s is not read back
    assert t["unfused"]["backward"] - t["fused"]["backward"] == 2 * act  # ds + dx is not a separate pass


def test_eager_traffic_counts_operations_and_bytes():
    M, N = 8, 16
    ln, rms = kx.eager_traffic("layer_norm", M, N), kx.eager_traffic("rms_norm", M, N)
    assert ln["ops"] == ["native_layer_norm.default"]
    # x and y (M×N float32), w and b (N), mean and rstd (M each): one fused pass
    assert ln["bytes"] == (2 * M * N + 2 * N + 2 * M) * 4
    assert len(rms["ops"]) > 1 and rms["bytes"] > 2 * ln["bytes"]  # composed: intermediates go through memory


def test_eager_traffic_rejects_an_unknown_op():
    with pytest.raises(ValueError, match=r"op.*'layer_norm', 'rms_norm'.*'batch_norm'"):
        kx.eager_traffic("batch_norm")


def test_chapter6_exercise_answers():
    a = kx.exercise_answers()
    assert math.isclose(a["overflow_rms_768"], math.sqrt(65504 / 768), rel_tol=1e-2)  # float16 rounding, as above
    assert a["fp32_fused_saving_mb"] == 4096 * 8192 * 4 / 1e6
    # (dw, db) × (write, read) × 132 programs × 8192 float32, over x, dy, dx in bfloat16 plus w,
    # dw, db (8192 bfloat16 each) and float32 mean, rstd (4096 each).
    backward = 3 * 4096 * 8192 * 2 + 3 * 8192 * 2 + 2 * 4096 * 4
    assert math.isclose(a["partials_overhead_h100"], 2 * 2 * 132 * 8192 * 4 / backward, rel_tol=1e-12)
    assert backward == traffic.bytes_moved("layer_norm", "backward", 4096, 8192, 2)


def test_compile_table_subprocess_sees_this_process_path(monkeypatch):
    """Chapter 6 from a plain clone: lnbook is importable through sys.path only, and the compiler
    subprocess must get that path (issue 12)."""
    import os
    import subprocess
    import sys
    from types import SimpleNamespace

    seen = {}

    def fake_run(args, env, **kwargs):
        seen.update(env=env, args=args)
        return SimpleNamespace(stdout="[]\n")

    monkeypatch.setattr(sys, "path", [*sys.path, "/somewhere/lib"])
    monkeypatch.setattr(subprocess, "run", fake_run)
    assert kx.compile_table("--arch", "90") == []
    assert "/somewhere/lib" in seen["env"]["PYTHONPATH"].split(os.pathsep) and seen["env"]["TRITON_INTERPRET"] == "0"
    assert seen["args"][1:4] == ["-m", "lnbook.kernels.aot", "--json"]


def test_flag_blocks_are_the_kernels_own_if_blocks():
    """RMSNorm's difference is the CENTER blocks: each is an ``if CENTER:`` of a kernel's source."""
    blocks = kx.flag_blocks("CENTER")
    assert blocks and all(code.startswith("if CENTER") for _, code in blocks)
    assert {name for name, _ in blocks} <= {k.fn.__name__ for k in kx.ONE_BLOCK_KERNELS}
    assert kx.flag_blocks("NO_SUCH_FLAG") == []  # the null case: a flag no kernel tests finds nothing
    listing = kx.flag_listing("HAS_R", "HAS_DS")
    assert listing.startswith("```python\n# in ") and listing.endswith("\n```")
