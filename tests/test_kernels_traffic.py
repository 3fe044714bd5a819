"""The traffic model (lnbook.kernels.traffic) against bytes counted by hand from the kernels' passes,
and against the ratios the kernels are built to meet."""

from __future__ import annotations

import math

import pytest
import torch

from lnbook import bench
from lnbook.kernels import heuristics, rownorm, traffic

BF16 = 2  # bytes
PROGRAMS = 128  # backward programs at M = 4096 on 132 SMs (see below)


def test_forward_at_the_target_shape_moves_the_ideal_bytes():
    # A row of 8192 values is one block: x read once, y written once, nothing else.
    for op in ("layer_norm", "rms_norm", "add_layer_norm"):
        assert traffic.model(op, "forward", 4096, 8192)["ratio"] == 1.0


@pytest.mark.parametrize("op,parts", [("layer_norm", 2), ("rms_norm", 1), ("add_layer_norm", 2)])
def test_backward_at_the_target_shape_adds_the_partials_once(op, parts):
    # At most 132 programs (one per H100 SM) with equal row ranges: ⌈4096/132⌉ = 32 rows each, so 128
    # programs, each writing a float32 row of dw (and db) partials; the sum that follows reads them
    # from L2 (8.4 MB < 50 MB), so they count once.
    M, N = 4096, 8192
    expected = bench.bytes_moved(op, "backward", M, N, BF16) + parts * PROGRAMS * N * 4
    assert traffic.model(op, "backward", M, N)["bytes"] == expected
    assert traffic.model(op, "backward", M, N)["ratio"] <= 1.05  # the bound at 4096 × 8192


def test_partials_count_twice_when_they_do_not_fit_in_l2():
    M, N = 4096, 8192
    small_l2 = traffic.model("layer_norm", "backward", M, N, l2_bytes=2**20)["bytes"]
    assert small_l2 - traffic.model("layer_norm", "backward", M, N)["bytes"] == 2 * PROGRAMS * N * 4


WIDE = (128, 262144)  # M·N of the target shape, in rows of 512 KB


def test_split_rows_are_read_from_dram_once():
    M, N = WIDE
    chunks = N // heuristics.LOOP_BLOCK_N
    scratch = 2 * M * chunks * 2 * 4  # (M, chunks, 2) float32 moments, written and read
    counters = lambda n: 2 * n * 4  # noqa: E731  int32 zero-filled, then counted up
    forward = traffic.model("layer_norm", "forward", M, N)
    assert forward["bytes"] == bench.bytes_moved("layer_norm", "forward", M, N, BF16) + scratch + counters(M)
    # Backward: groups of rows whose x and dy fit in GROUP_BYTES, one float32 row of dw and db
    # partials per group (read back from L2 by the sum).
    groups = math.ceil(M / (heuristics.GROUP_BYTES // (2 * N * BF16)))
    backward = traffic.model("layer_norm", "backward", M, N)
    extra = 2 * groups * N * 4 + scratch + counters(groups)
    assert backward["bytes"] == bench.bytes_moved("layer_norm", "backward", M, N, BF16) + extra
    for op in ("layer_norm", "rms_norm", "add_layer_norm"):  # the bound at 262144
        assert traffic.model(op, "forward", M, N)["ratio"] <= 1.15 and traffic.model(op, "backward", M, N)["ratio"] <= 1.15


def test_without_l2_a_split_row_is_read_twice():
    M, N = WIDE
    act = M * N * BF16
    fits = traffic.model("layer_norm", "forward", M, N)["bytes"]
    assert traffic.model("layer_norm", "forward", M, N, l2_bytes=2**20)["bytes"] - fits == act


def test_the_model_counts_the_launches_that_run():
    """The model reads the same Launch objects the kernels run from: one forward launch, two in the
    backward (rows or split rows, then the sum of the partials)."""
    assert len(rownorm.launches_for("layer_norm", "forward", 64, 512, torch.bfloat16, 132)) == 1
    for N in (512, 65536):
        kernels = [l.kernel for l in rownorm.launches_for("layer_norm", "backward", 64, N, torch.bfloat16, 132)]
        one_block = heuristics.plan(64, N, "backward").one_block
        assert kernels == [rownorm._backward_kernel if one_block else rownorm._split_backward_kernel,
                           rownorm._sum_partials_kernel]
