"""The benchmark harness: its bytes-moved formula, and a CPU run end to end (timings are not tested)."""

from __future__ import annotations

import json

import pytest

from lnbook import bench
from lnbook.kernels import traffic


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
    assert traffic.bytes_moved(op, mode, 2, 3, 2) == expected


def test_forward_plus_backward_is_the_sum():
    for op in bench.OPS:
        parts = traffic.bytes_moved(op, "forward", 64, 512, 4) + traffic.bytes_moved(op, "backward", 64, 512, 4)
        assert traffic.bytes_moved(op, "forward+backward", 64, 512, 4) == parts


def test_fusing_the_add_saves_the_round_trip_of_the_sum():
    # Unfused: the add reads x and residual and writes s; LayerNorm then reads s back.
    M, N, size = 64, 512, 2
    act = M * N * size
    unfused_forward = 3 * act + traffic.bytes_moved("layer_norm", "forward", M, N, size)
    assert unfused_forward - traffic.bytes_moved("add_layer_norm", "forward", M, N, size) == act


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
    assert record["copy_gbps"] > 0.5  # see test_cpu_copy_bandwidth_measures_bytes_not_call_overhead
    assert "layer_norm" in captured.out and str(out) in captured.out


def test_cpu_run_writes_nothing_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LNBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--ops", "layer_norm", "--modes", "forward", "--dtypes", "fp32", "--widths", "256",
                       "--numel", "4096"]) == 0
    assert not (tmp_path / "data").exists() and list(tmp_path.iterdir()) == []
    assert "wrote" not in capsys.readouterr().out
    assert bench.main(["--ops", "layer_norm", "--modes", "forward", "--dtypes", "fp32", "--widths", "256",
                       "--numel", "4096", "--save"]) == 0
    (saved,) = (tmp_path / "data").glob("bench-*.json")
    assert str(saved) in capsys.readouterr().out


def test_cpu_copy_bandwidth_measures_bytes_not_call_overhead():
    # A 16 KB copy is dominated by the call (~µs); the figure must come from a copy large enough
    # to be bandwidth-bound. Any CPU of the last twenty years copies faster than 0.5 GB/s.
    import torch

    assert bench.copy_gbps(torch.device("cpu"), 4096 * 4) > 0.5


def test_data_dir_is_found_from_a_chapter_or_the_environment(tmp_path, monkeypatch):
    root = tmp_path / "clone"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: intro\n")
    monkeypatch.delenv("LNBOOK_DATA", raising=False)
    monkeypatch.chdir(root / "book")  # where a launched chapter runs
    assert bench.data_dir() == root / "book" / "data"
    monkeypatch.setenv("LNBOOK_DATA", str(tmp_path / "records"))
    assert bench.data_dir() == tmp_path / "records"


def test_torch_compile_is_compiled_once_per_shape(monkeypatch):
    """A fresh static-shape compilation per shape and dtype (a reused one turns dynamic)."""
    import torch

    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, dynamic=None, backend=None: calls.append(dynamic) or fn)
    compiled = bench.CompiledPerShape(lambda x, shape: x * 2)
    for n in (4, 4, 8):
        compiled(torch.ones(2, n), (n,))
    compiled(torch.ones(2, 8, dtype=torch.float64), (8,))
    assert calls == [False, False, False]  # (2, 4), (2, 8), (2, 8) in float64


def test_a_failing_provider_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    """One provider's error (Liger-Kernel above N = 65536, say) is a result; the rest is measured,
    and the record on disk holds every result measured so far."""

    def broken(x, shape, *args):
        raise ValueError(f"N = {shape[0]} is too wide")

    monkeypatch.setattr(bench, "providers", lambda device: {"broken": {"layer_norm": broken}, "torch": bench.TORCH})
    saved = []
    monkeypatch.setattr(bench, "save", lambda record, out: saved.append(len(record["results"])))
    record = bench.run(ops=("layer_norm",), modes=("forward",), dtypes=("fp32",), widths=(256, 512), numel=4096,
                       device="cpu", out=tmp_path / "r.json")
    by = {(r["provider"], r["N"]): r for r in record["results"]}
    assert by[("broken", 512)]["error"] == "failed: ValueError: N = 512 is too wide" and by[("broken", 512)]["ms"] is None
    assert by[("torch", 256)]["error"] is None and by[("torch", 512)]["ms"] > 0
    assert saved == [1, 2, 3, 4]  # written after every result
    assert "-" in bench.table(record)


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_the_compiled_provider_really_compiles_every_shape(op):
    """Reset before each shape: no shape runs eagerly after Dynamo's recompile limit (8), and each
    op has its own function (F.rms_norm and F.layer_norm share a wrapper Dynamo would cache once)."""
    import torch

    compiled = bench.CompiledPerShape(bench.TORCH[op], backend="eager")  # Dynamo's graphs, no codegen
    for N in (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096):  # more shapes than the recompile limit
        bench.fresh_compiles()
        ms, _, error = bench.measure_guarded(compiled, op, "forward", 2, N, torch.float32, torch.device("cpu"))
        assert error is None and ms > 0 and bench.compiled_graphs() >= 1, (N, error)


def test_an_eager_run_of_the_compiled_provider_is_a_failure(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)  # "compiled" without Dynamo
    bench.fresh_compiles()
    compiled = bench.CompiledPerShape(bench.torch_layer_norm)
    _, _, error = bench.measure_guarded(compiled, "layer_norm", "forward", 2, 8, torch.float32, torch.device("cpu"))
    assert error == "failed: torch.compile compiled no graph (the call ran eagerly)"
