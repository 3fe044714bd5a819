"""The benchmark harness: its bytes-moved formula, and a CPU run end to end (timings are not tested)."""

from __future__ import annotations

import json

import pytest

from lnbook import bench


@pytest.mark.parametrize(
    "op,mode,expected",
    [
        # M = 2 rows, N = 3 values, 2-byte elements: an activation is 12 bytes, a parameter 6,
        # float32 statistics 8 bytes per kind (mean, rstd) for the two rows.
        ("layer_norm", "forward", 12 + 12 + 6 + 6 + 8 + 8),  # x; y; w, b; mean, rstd
        ("layer_norm", "backward", 12 + 12 + 12 + 6 + 6 + 6 + 8 + 8),  # x, dy; dx; w; dw, db; stats
        ("rms_norm", "forward", 12 + 12 + 6 + 8),  # x; y; w; rstd
        ("rms_norm", "backward", 12 + 12 + 12 + 6 + 6 + 8),  # x, dy; dx; w; dw; rstd
        ("add_layer_norm", "forward", 12 * 4 + 6 + 6 + 8 + 8),  # x, residual; y, s; w, b; stats
        ("add_layer_norm", "backward", 12 * 4 + 6 + 6 + 6 + 8 + 8),  # s, dy, ds; dx; w; dw, db; stats
    ],
)
def test_bytes_moved_by_hand(op, mode, expected):
    assert bench.bytes_moved(op, mode, 2, 3, 2) == expected


def test_forward_plus_backward_is_the_sum():
    for op in bench.OPS:
        parts = bench.bytes_moved(op, "forward", 64, 512, 4) + bench.bytes_moved(op, "backward", 64, 512, 4)
        assert bench.bytes_moved(op, "forward+backward", 64, 512, 4) == parts


def test_fusing_the_add_saves_the_round_trip_of_the_sum():
    # Unfused: the add reads x and residual and writes s; LayerNorm then reads s back.
    M, N, size = 64, 512, 2
    act = M * N * size
    unfused_forward = 3 * act + bench.bytes_moved("layer_norm", "forward", M, N, size)
    assert unfused_forward - bench.bytes_moved("add_layer_norm", "forward", M, N, size) == act


def test_cpu_run_writes_a_complete_record(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--widths", "256", "512", "--numel", "4096", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "need one" in captured.err or "cuda" in json.loads(out.read_text())["environment"]["device"].lower()
    record = json.loads(out.read_text())
    env = record["environment"]
    assert {"device", "driver", "torch", "triton", "commit", "date"} <= env.keys()
    assert env["torch"] and env["triton"]
    cases = {(r["op"], r["mode"], r["dtype"], r["N"]) for r in record["results"] if r["provider"] == "torch"}
    assert len(cases) == len(bench.OPS) * len(bench.MODES) * len(bench.DTYPES) * 2
    assert all(r["ms"] > 0 and r["gbps"] > 0 for r in record["results"])
    assert record["copy_gbps"] > 0
    assert "layer_norm" in captured.out and str(out) in captured.out
