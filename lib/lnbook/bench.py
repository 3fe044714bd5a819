"""``python -m lnbook.bench``: effective bandwidth of the row-norm kernels against PyTorch.

A row norm does almost no arithmetic per byte, so its speed limit is memory bandwidth. The
*effective* bandwidth of a run is ``bytes_moved(...) / time``, where :func:`bytes_moved` counts
what a perfect implementation must read and write once; the same run measures the device's copy
bandwidth, and every result is also reported as a fraction of it.

Providers: ``lnbook`` (our Triton kernels), ``torch`` (eager), ``torch.compile`` (compiled once
per shape with ``dynamic=False``, as a peer tuning for one shape would) and ``liger`` (Liger-Kernel,
when installed, out of place). On a GPU each forward is also replayed from a CUDA graph
(``graph_ms``): where that is much faster than ``ms``, CPU launch overhead, not bandwidth, is
what the plain timing measured. On a machine without CUDA only ``torch`` eager is timed (our
kernels run there in Triton's interpreter, which is for correctness, not speed), on a smaller
problem; the GPU tables need a GPU. Results go to a JSON file only when asked: ``--out FILE``, or
``--save`` for ``bench-<device>.json`` in :func:`data_dir` (where the book looks for records).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from lnbook import kernels
from lnbook.kernels import rownorm
from lnbook.kernels.heuristics import supports_bfloat16
from lnbook.kernels.traffic import bytes_moved

OPS = tuple(rownorm.OPS)  # the one op list, lnbook.kernels.rownorm.OPS
MODES = ("forward", "backward", "forward+backward")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
WIDTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
NUMEL = {"cuda": 4096 * 8192, "cpu": 2**20}  # M·N, fixed while N varies (M = NUMEL / N)
CPU_COPY_BYTES = 64 * 2**20  # a CPU copy this large measures bandwidth, not call overhead


def data_dir() -> pathlib.Path:
    """Where benchmark records live: ``$LNBOOK_DATA`` if set, else ``book/data`` of the checkout
    that holds the working directory (a chapter runs in ``book/``), else that of this file's checkout."""
    if os.environ.get("LNBOOK_DATA"):
        return pathlib.Path(os.environ["LNBOOK_DATA"])
    here = pathlib.Path.cwd().resolve()
    for root in (here, *here.parents, pathlib.Path(__file__).resolve().parents[2]):
        if (root / "_toc.yml").is_file() and (root / "book").is_dir():  # the book's checkout
            return root / "book" / "data"
    return here / "book" / "data"


# ------------------------------------------------------------------------------- the providers


# One Python function per op: torch.compile caches per code object, and F.layer_norm and F.rms_norm
# share one (their torch-function wrapper), so compiling them directly would share one cache.
def torch_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return F.layer_norm(x, normalized_shape, weight, bias, eps)


def torch_rms_norm(x, normalized_shape, weight=None, eps=None):
    return F.rms_norm(x, normalized_shape, weight, eps)


def torch_add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5):
    s = x + residual
    return F.layer_norm(s, normalized_shape, weight, bias, eps), s


TORCH = {"layer_norm": torch_layer_norm, "rms_norm": torch_rms_norm, "add_layer_norm": torch_add_layer_norm}
OURS = {"layer_norm": kernels.layer_norm, "rms_norm": kernels.rms_norm, "add_layer_norm": kernels.add_layer_norm}


def _liger() -> dict:
    try:
        from liger_kernel.transformers.functional import liger_layer_norm, liger_rms_norm
    except ImportError:
        return {}
    return {
        "layer_norm": lambda x, shape, w, b, eps=1e-5: liger_layer_norm(x, w, b, eps),
        # in_place=False: by default Liger overwrites the upstream gradient, which the timing reuses
        "rms_norm": lambda x, shape, w, eps=1e-6: liger_rms_norm(x, w, eps, in_place=False),
    }


class CompiledPerShape:
    """``torch.compile(fn, dynamic=False)`` anew for every shape and dtype: a reused compiled
    function would switch to dynamic shapes after the first width and time slower kernels.
    :func:`run` also resets Dynamo before each shape (:func:`fresh_compiles`), or its limit of
    recompilations per function (8) would leave the widest shapes running eagerly."""

    def __init__(self, fn, backend: str = "inductor"):
        self.fn, self.backend, self.compiled = fn, backend, {}

    def __call__(self, x, *args):
        key = (tuple(x.shape), x.dtype)
        if key not in self.compiled:
            self.compiled[key] = torch.compile(self.fn, dynamic=False, backend=self.backend)
        return self.compiled[key](x, *args)


def fresh_compiles() -> None:
    """Forget every compiled graph and Dynamo's counters: the next shape compiles from scratch."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()


def compiled_graphs() -> int:
    """Graphs Dynamo compiled since :func:`fresh_compiles` (0: the call ran eagerly)."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def providers(device: torch.device) -> dict[str, dict]:
    if device.type != "cuda":
        return {"torch": TORCH}
    compiled = {op: CompiledPerShape(fn) for op, fn in TORCH.items()}
    found = {"lnbook": OURS, "torch": TORCH, "torch.compile": compiled}
    liger = _liger()
    return found | ({"liger": liger} if liger else {})


# ------------------------------------------------------------------------------------ timing


def _time_cpu(fn, grad_to_none, reps: int = 20) -> float:
    times = []
    for _ in range(reps + 3):  # three warm-up calls
        for t in grad_to_none:
            t.grad = None
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[3:])


def time_ms(fn, device: torch.device, grad_to_none=()) -> float:
    """Median milliseconds per call (CUDA: Triton's do_bench, which flushes the L2 cache)."""
    if device.type != "cuda":
        return _time_cpu(fn, grad_to_none)
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100, grad_to_none=list(grad_to_none), return_mode="median")


def _inputs(op: str, M: int, N: int, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=gen, device=device, dtype=dtype)
    acts = [rand(M, N).requires_grad_() for _ in range(2 if op == "add_layer_norm" else 1)]
    params = [rand(N).requires_grad_() for _ in range(1 if op == "rms_norm" else 2)]
    return acts, params


def graph_ms(fn, device: torch.device) -> float | None:
    """Milliseconds per call replayed from a CUDA graph (no CPU launch cost); None off CUDA or
    where the call cannot be captured."""
    if device.type != "cuda":
        return None
    try:
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            fn()  # warm-up outside the capture (compilation, allocator)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    except RuntimeError:
        return None
    return time_ms(graph.replay, device)


def measure(fn, op: str, mode: str, M: int, N: int, dtype, device) -> tuple[float, float | None]:
    """Milliseconds for one call of ``mode`` of ``fn`` on fresh seeded inputs, and for the
    forward the same call replayed from a CUDA graph (None otherwise)."""
    acts, params = _inputs(op, M, N, dtype, device)
    leaves = [*acts, *params]
    call = lambda: fn(*acts, (N,), *params)
    outs = call()
    outs = outs if isinstance(outs, tuple) else (outs,)
    grads = [torch.randn_like(o) for o in outs]
    if mode == "forward":  # with autograd recording, as in training
        return time_ms(call, device), graph_ms(call, device)
    if mode == "backward":
        return time_ms(lambda: torch.autograd.backward(outs, grads, retain_graph=True), device, leaves), None

    def both():
        result = call()
        torch.autograd.backward(result if isinstance(result, tuple) else (result,), grads)

    return time_ms(both, device, leaves), None


def copy_gbps(device: torch.device, nbytes: int) -> float:
    """The device's copy bandwidth: read nbytes and write nbytes (on a CPU at least
    CPU_COPY_BYTES, or the figure is the cost of a call, not of the bytes)."""
    if device.type != "cuda":
        nbytes = max(nbytes, CPU_COPY_BYTES)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    return 2 * nbytes / time_ms(lambda: dst.copy_(src), device) / 1e6


# ------------------------------------------------------------------------------- the record


def _command(*args: str) -> str | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The checkout's commit, with "-dirty" when tracked files changed; None outside a checkout."""
    here = pathlib.Path(__file__).resolve().parent
    commit = _command("git", "-C", str(here), "rev-parse", "HEAD")
    dirty = _command("git", "-C", str(here), "status", "--porcelain", "--untracked-files=no")
    return None if commit is None else commit + ("-dirty" if dirty else "")


def environment(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else f"CPU: {platform.processor() or platform.machine()}",
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if cuda else None,
        "driver": _command("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader") if cuda else None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "triton": package_version("triton"),
        "liger_kernel": package_version("liger-kernel"),
        "python": platform.python_version(),
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass
class Result:
    op: str
    mode: str
    dtype: str
    provider: str
    M: int
    N: int
    ms: float | None  # None where the measurement failed (see ``error``)
    gbps: float | None
    fraction_of_copy: float | None
    graph_ms: float | None  # forward replayed from a CUDA graph (see the module docstring)
    error: str | None = None  # "failed: <reason>"; the run goes on with the next measurement


def measure_guarded(fn, op: str, mode: str, M: int, N: int, dtype, device) -> tuple:
    """:func:`measure` under a guard: ``(ms, graph_ms, None)``, or ``(None, None, "failed: …")``
    where the provider raises (Liger-Kernel above N = 65536, say) or a compiled provider ran
    eagerly (Dynamo compiled no graph)."""
    try:
        ms, graph = measure(fn, op, mode, M, N, dtype, device)
    except Exception as error:  # noqa: BLE001  any provider's error is a result, not the end of the run
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # fails here too if the error left the device unusable
        return None, None, f"failed: {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    if isinstance(fn, CompiledPerShape) and compiled_graphs() == 0:
        return None, None, "failed: torch.compile compiled no graph (the call ran eagerly)"
    return ms, graph, None


def _result(name, op, mode, dtype_name, M, N, copy, measured) -> Result:
    ms, graph, error = measured
    gbps = None if ms is None else bytes_moved(op, mode, M, N, DTYPES[dtype_name].itemsize) / ms / 1e6
    return Result(op, mode, dtype_name, name, M, N, ms, gbps, None if gbps is None else gbps / copy, graph, error)


def cases(found: dict, device, ops, modes, dtypes, widths, numel):
    """(dtype, op, N, provider, mode) in the order :func:`run` measures them: shape by shape,
    every provider and mode of a shape together (one compilation per shape and provider)."""
    for dtype_name in dtypes:
        for op in ops:
            for N in widths:
                if numel % N:
                    continue
                for name, fns in found.items():
                    if op not in fns or (dtype_name == "bf16" and name != "torch" and not supports_bfloat16(device)):
                        continue  # e.g. a T4 (sm_75): Triton cannot compile bfloat16 there
                    for mode in modes:
                        yield dtype_name, op, N, name, mode


def save(record: dict, out: pathlib.Path) -> None:
    """Write the record whole, replacing the file only once the new text is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(out)


def run(ops=OPS, modes=MODES, dtypes=tuple(DTYPES), widths=WIDTHS, numel=None, device=None,
        out: pathlib.Path | None = None, record: dict | None = None) -> dict:
    """Measure every provider × op × mode × dtype × N under its own guard; with ``out``, the
    record is written after every result, so a run cut short keeps what it measured. Results
    are appended to ``record`` when one is given (several runs, one record)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    numel = numel or NUMEL[device.type]
    found = providers(device)
    if record is None or "environment" not in record:  # a new record, keeping what a caller noted in it
        record = {"environment": environment(device), "copy_gbps": copy_gbps(device, numel * 4), "numel": numel,
                  "bytes_moved": bytes_moved.__doc__.strip(), "results": [], **(record or {})}
    shape = None
    for dtype_name, op, N, name, mode in cases(found, device, ops, modes, dtypes, widths, numel):
        if (dtype_name, op, N, name) != shape:
            shape = (dtype_name, op, N, name)
            fresh_compiles()
        M = numel // N
        measured = measure_guarded(found[name][op], op, mode, M, N, DTYPES[dtype_name], device)
        record["results"].append(asdict(_result(name, op, mode, dtype_name, M, N, record["copy_gbps"], measured)))
        if out is not None:
            save(record, out)
    return record


def table(record: dict) -> str:
    """One line per (op, mode, dtype, N): GB/s of every provider; the first as a fraction of copy."""
    rows = {}
    for r in record["results"]:
        rows.setdefault((r["op"], r["mode"], r["dtype"], r["N"]), {})[r["provider"]] = r
    names = list(dict.fromkeys(r["provider"] for r in record["results"]))
    first = names[0] if names else "-"
    head = f"{'op':15} {'mode':17} {'dtype':5} {'N':>6} " + " ".join(f"{n:>14}" for n in names) + f"   {first}/copy"
    lines = [f"{record['environment']['device']}: copy {record['copy_gbps']:.1f} GB/s; GB/s at M·N = {record['numel']}",
             head, "-" * len(head)]
    for (op, mode, dtype, N), by in rows.items():
        cells = " ".join(f"{by[n]['gbps']:14.1f}" if by.get(n, {}).get("gbps") else f"{'-':>14}" for n in names)
        ratio = f"{by[first]['fraction_of_copy']:.0%}" if by.get(first, {}).get("fraction_of_copy") else "-"
        lines.append(f"{op:15} {mode:17} {dtype:5} {N:6d} {cells}   {ratio:>{len(first) + 5}}")
    return "\n".join(lines)


def default_path(record: dict) -> pathlib.Path:
    slug = re.sub(r"[^a-z0-9]+", "-", record["environment"]["device"].lower()).strip("-")
    return data_dir() / f"bench-{slug}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnbook.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", nargs="+", choices=OPS, default=OPS)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    parser.add_argument("--dtypes", nargs="+", choices=tuple(DTYPES), default=tuple(DTYPES))
    parser.add_argument("--widths", nargs="+", type=int, default=WIDTHS, help="values of N")
    parser.add_argument("--numel", type=int, help="M·N (default 4096·8192 on a GPU, 2^20 on a CPU)")
    parser.add_argument("--out", type=pathlib.Path, help="write the record to this JSON file")
    parser.add_argument("--save", action="store_true", help="write it to bench-<device>.json in data_dir() (book/data)")
    parser.add_argument("--append", action="store_true", help="add the results to the record already in --out")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU: the GPU tables (our kernels, torch.compile, Liger-Kernel) need one. On this CPU,\n"
              "timing torch eager only; our kernels run here in Triton's interpreter, for correctness.\n",
              file=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = args.out or (default_path({"environment": environment(device)}) if args.save else None)
    record = json.loads(out.read_text()) if args.append and out is not None and out.is_file() else None
    record = run(args.ops, args.modes, args.dtypes, args.widths, args.numel, device, out, record)
    print(table(record))
    failed = [r for r in record["results"] if r["error"]]
    for r in failed:
        print(f"{r['provider']} {r['op']} {r['mode']} {r['dtype']} N={r['N']}: {r['error']}", file=sys.stderr)
    if out is not None:
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
