"""The traffic model (lnbook.kernels.traffic) against bytes counted by hand from the kernels' passes,
and against the ratios the kernels are built to meet."""

from __future__ import annotations

import pytest
import torch

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
    expected = traffic.bytes_moved(op, "backward", M, N, BF16) + parts * PROGRAMS * N * 4
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
    counters = lambda n: 2 * (n + 1) * 4  # int32 zero-filled, then counted up; + the ticket
    forward = traffic.model("layer_norm", "forward", M, N)
    assert forward["bytes"] == traffic.bytes_moved("layer_norm", "forward", M, N, BF16) + scratch + counters(M)
    # Backward: one float32 row of dw and db partials per sub-range of a group (read back from L2
    # by the sum), and a counter per sub-range; the counts of groups and sub-ranges are the plan's.
    split = heuristics.split_plan(M, N, BF16, window=5, slots=traffic.H100_SMS)
    partials = split.groups * split.parts
    backward = traffic.model("layer_norm", "backward", M, N)
    extra = 2 * partials * N * 4 + scratch + counters(partials)
    assert backward["bytes"] == traffic.bytes_moved("layer_norm", "backward", M, N, BF16) + extra
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


def _group_and_window(mode: str, M: int, N: int) -> tuple[int, int]:
    """LayerNorm's split launch: bytes of one tensor's rows of a group, and its window counted by
    hand: forward x read, y written, the next group's x read; backward x and dy read, dx written,
    the next group's x and dy read."""
    (launch,) = [l for l in rownorm.launches_for("layer_norm", mode, M, N, torch.bfloat16, traffic.H100_SMS)
                 if l.kernel in (rownorm._split_forward_kernel, rownorm._split_backward_kernel)]
    group = launch.args["group_rows"] * N * BF16
    return group, {"forward": 3, "backward": 5}[mode] * group


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_the_second_read_needs_the_whole_window_in_l2(mode):
    """The L2 rule asks how long a group stays: its window (its reads, writes and the next group's
    reads) must fit, not just the group. An L2 that holds the group but not the window re-reads."""
    M, N = WIDE
    group, window = _group_and_window(mode, M, N)
    reread = {"forward": 1, "backward": 2}[mode] * M * N * BF16  # x, or x and dy, once more
    fits = traffic.model("layer_norm", mode, M, N, l2_bytes=window)["bytes"]
    assert traffic.model("layer_norm", mode, M, N, l2_bytes=window - 1)["bytes"] - fits == reread
    assert {"forward": 1, "backward": 2}[mode] * group < window - 1  # the re-read tensors alone would fit


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm", "add_layer_norm"])
@pytest.mark.parametrize("N", [32768, 65536, 262144])
def test_every_window_fits_an_a100s_l2(op, N):
    """heuristics.WINDOW_BYTES sizes the groups so that the window fits a 40 MiB L2 at every split
    width of the bench (M·N = 4096·8192): nothing more is read from DRAM than with an unlimited L2."""
    M = 4096 * 8192 // N
    for mode in ("forward", "backward"):
        a100 = traffic.model(op, mode, M, N, l2_bytes=40 * 2**20)
        assert a100["bytes"] == traffic.model(op, mode, M, N, l2_bytes=2**40)["bytes"], (mode, a100)


@pytest.mark.parametrize("M", [4096, 2048])
@pytest.mark.parametrize("N", [16384, 65536])
def test_split_backward_has_two_column_programs_per_sm(M, N):
    """The column phase, one program per (group, sub-range, chunk), fills every H100 SM twice."""
    split = heuristics.split_plan(M, N, BF16, window=5, slots=traffic.H100_SMS)
    assert split.column_programs >= 2 * traffic.H100_SMS
    (launch, _) = rownorm.launches_for("layer_norm", "backward", M, N, torch.bfloat16, traffic.H100_SMS)
    args = launch.args
    columns = launch.grid[0] - split.groups * args["group_rows"] * args["chunks"]  # minus the statistics programs
    assert columns == split.column_programs and args["parts"] == split.parts
