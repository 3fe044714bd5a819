"""`make gpu-check`: the kernel tests compiled, then the benchmark, on a GPU machine as it is.

The machine is offline and has its own ``python3`` with torch and Triton and nothing else, and a
check gets about ten minutes. So nothing is installed: it runs from the repository root as
``python3 -m tools.gpu_check``, ``lnbook`` is imported from ``lib/`` (put on the steps' ``PYTHONPATH``),
and each step runs in its own process under its own time limit (a hang costs one step, not the slot).
The benchmark writes its record after every measurement, to ``bench-<device>.json`` under
``$OUT`` when that is set, else under ``book/data/``; the steps' outcomes go into the same record.

Without pytest (the machine may lack it), the kernel-test step runs :func:`smoke`, the three ops
forward and backward against float64 at one block and split widths, twice for identical bits.

``--dry-run`` runs the same steps on a machine without a GPU, each shrunk to seconds (the tests
collected, not run; the bench on the CPU at a tiny size), so that a test can run the target.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNEL_TESTS = ["tests/test_kernels.py", "tests/test_kernel_lessons.py"]
WIDTHS = [str(n) for n in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)]
BUDGET_S = 480  # the whole check: 8 minutes of a ten-minute slot


@dataclass
class Step:
    name: str
    argv: list[str]
    timeout_s: int


def steps(record: pathlib.Path, dry: bool) -> list[Step]:
    """The check's steps, in order; their time limits add up to at most BUDGET_S."""
    py = sys.executable
    bench = [py, "-m", "lnbook.bench", "--out", str(record), "--append"]
    tiny = ["--numel", "4096", "--widths", "512", "1024"] if dry else []
    out = [Step("kernel tests, compiled", [py, "-m", "tools.gpu_check", "--tests", *(["--dry-run"] if dry else [])], 150)]
    for mode in ("forward", "backward", "forward+backward"):
        out.append(Step(f"bench {mode}, bf16", bench + ["--dtypes", "bf16", "--modes", mode] + (tiny or ["--widths", *WIDTHS]), 90))
    out.append(Step("bench fp16 and fp32 at 4096 x 8192", bench + ["--dtypes", "fp16", "fp32"] + (tiny or ["--widths", "8192"]), 60))
    return out


def run_tests(dry: bool) -> int:
    """The kernel tests with pytest where it is installed (collected only in a dry run), else :func:`smoke`."""
    try:
        import pytest
    except ImportError:
        print("gpu-check: pytest is not installed here; running the kernels' smoke check instead", file=sys.stderr)
        return 0 if dry else smoke()
    options = ["-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", "-p", "no:xdist"]
    return pytest.main([*options, *(["--collect-only"] if dry else []), *(str(ROOT / t) for t in KERNEL_TESTS)])


def smoke() -> int:
    """Each op forward and backward at N = 4096 (one block) and 65536 (split) in bfloat16 against
    float64, and twice for identical bits; 0 when all pass."""
    import torch
    import torch.nn.functional as F

    from lnbook import kernels

    failures = 0
    for op, n_acts, params in (("layer_norm", 1, 2), ("rms_norm", 1, 1), ("add_layer_norm", 2, 2)):
        for N in (4096, 65536):
            gen = torch.Generator("cuda").manual_seed(N)
            leaves = [torch.randn(*s, generator=gen, device="cuda", dtype=torch.bfloat16) for s in [(64, N)] * n_acts + [(N,)] * params]
            runs = [_grads(getattr(kernels, op), leaves, n_acts, N) for _ in range(2)]
            ref = _grads(_reference(op, F), [t.double() for t in leaves], n_acts, N)
            for a, b, r in zip(*runs, ref):
                # bfloat16 keeps 8 bits: a few ulps of the largest value (outputs, dx: O(1..10); dw: sums over 64 rows).
                ok = torch.equal(a, b) and (a.double() - r).abs().max() <= 4 * 2**-8 * r.abs().max() + 1e-3
                failures += not ok
                print(f"smoke {op} N={N}: {'ok' if ok else 'FAILED'}")
    return int(failures > 0)


def _reference(op: str, F):
    if op == "rms_norm":
        return lambda x, shape, w: F.rms_norm(x, shape, w)
    if op == "add_layer_norm":
        return lambda x, r, shape, w, b: (F.layer_norm(x + r, shape, w, b), x + r)
    return lambda x, shape, w, b: F.layer_norm(x, shape, w, b)


def _grads(fn, leaves, n_acts, N):
    import torch

    leaves = [t.clone().requires_grad_() for t in leaves]
    outs = fn(*leaves[:n_acts], (N,), *leaves[n_acts:])
    outs = outs if isinstance(outs, tuple) else (outs,)
    torch.autograd.backward(outs, [torch.ones_like(o) * 0.5 + o.detach() * 0.1 for o in outs])
    return [o.detach() for o in outs] + [t.grad for t in leaves]


def record_path(device_name: str) -> pathlib.Path:
    base = pathlib.Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "book" / "data"
    slug = "".join(c if c.isalnum() else "-" for c in device_name.lower()).strip("-")
    return base / f"bench-{slug}.json"


def note_step(record: pathlib.Path, outcome: dict) -> None:
    """Add one step's outcome to the record (created with no results if the bench has not yet written it)."""
    data = json.loads(record.read_text()) if record.is_file() else {"results": []}
    data.setdefault("steps", []).append(outcome)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every step, shrunk, without a GPU")
    parser.add_argument("--tests", action="store_true", help="(a step) run the kernel tests in this process")
    args = parser.parse_args(argv)
    if args.tests:
        return run_tests(args.dry_run)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu-check: expected a CUDA GPU, found none (try --dry-run)", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu dry run"
    record = record_path(device)
    record.unlink(missing_ok=True)  # one check, one record: results are appended step by step
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    if not args.dry_run:
        env["TRITON_INTERPRET"] = "0"  # compiled kernels, never the interpreter
    failed = 0
    for step in steps(record, args.dry_run):
        print(f"gpu-check: {step.name} (at most {step.timeout_s} s)", flush=True)
        start = time.monotonic()
        try:
            rc = subprocess.run(step.argv, cwd=ROOT, env=env, timeout=step.timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        failed += rc != 0
        note_step(record, {"step": step.name, "returncode": rc, "seconds": round(time.monotonic() - start, 1)})
    print(f"gpu-check: {failed} of {len(steps(record, args.dry_run))} steps failed; record: {record}")
    return int(failed > 0)


if __name__ == "__main__":
    sys.exit(main())
