"""The Triton kernels against float64 references: forward and backward, every dtype, short and
wide rows, odd layouts, determinism, and every user error. Without CUDA they run through Triton's
interpreter on the CPU (lnbook.kernels switches it on), so CI tests the same kernel code."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from numerics import F64, assert_no_worse_than_torch, params, randn

from lnbook import bench, kernels
from lnbook.kernels import heuristics, runtime

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp32", "fp16", "bf16"]
WIDE = 40000  # wider than one block, forward and backward (heuristics.MAX_FUSED_N)


# op name -> (ours, torch's, number of activation inputs, takes a bias)
OPS = {
    "layer_norm": (kernels.layer_norm, F.layer_norm, 1, True),
    "rms_norm": (kernels.rms_norm, F.rms_norm, 1, False),
    "add_layer_norm": (kernels.add_layer_norm, bench.torch_add_layer_norm, 2, True),
}


def inputs(op: str, M: int, N: int, dtype, seed=0):
    """Activations (M, N) and parameters (N,) drawn in float64, rounded to dtype, on DEVICE."""
    _, _, n_acts, has_bias = OPS[op]
    acts = [randn((M, N), dtype, seed=seed + i) for i in range(n_acts)]
    w, b = params((N,), dtype, weight=True, bias=has_bias, seed=seed + 10)
    return [t.to(DEVICE) for t in acts], [t.to(DEVICE) for t in (w, b) if t is not None]


def outputs_and_grads(fn, acts, prms, N, seed=99):
    """Forward outputs, then gradients of every input under seeded upstream gradients."""
    leaves = [t.detach().clone().requires_grad_() for t in (*acts, *prms)]
    out = fn(*leaves[: len(acts)], (N,), *leaves[len(acts):])
    outs = out if isinstance(out, tuple) else (out,)
    dys = [randn(o.shape, F64, seed=seed + i).to(o.dtype).to(o.device) for i, o in enumerate(outs)]
    torch.autograd.backward(outs, dys)
    return [o.detach() for o in outs] + [t.grad for t in leaves]


def check_against_torch(op: str, M: int, N: int, dtype) -> None:
    ours_fn, torch_fn, _, _ = OPS[op]
    acts, prms = inputs(op, M, N, dtype)
    ours = outputs_and_grads(ours_fn, acts, prms, N)
    theirs = outputs_and_grads(torch_fn, acts, prms, N)
    # The reference: torch in float64 on the same rounded inputs, the same upstream gradients.
    ref = outputs_and_grads(torch_fn, [t.to(F64) for t in acts], [t.to(F64) for t in prms], N)
    for name, a, b, r in zip(("out", "out2", "dx", "dr", "dw", "db")[: len(ours)], ours, theirs, ref):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert_no_worse_than_torch(a.cpu(), b.cpu(), r.cpu(), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("M", [1, 7, 128])
@pytest.mark.parametrize("N", [1, 3, 127, 1000, 4096])
@pytest.mark.parametrize("op", OPS)
def test_forward_and_backward_match_float64(op, N, M, dtype):
    check_against_torch(op, M, N, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
def test_rows_wider_than_a_block(op, dtype):
    assert not heuristics.plan(7, WIDE, "forward").one_block
    check_against_torch(op, 7, WIDE, dtype)


@pytest.mark.parametrize("op,M,dtype", [("layer_norm", 2, torch.float32), ("rms_norm", 3, torch.bfloat16),
                                        ("add_layer_norm", 3, torch.bfloat16)], ids=["ln-fp32", "rms-bf16", "add-bf16"])
def test_widest_row_in_the_spec(op, M, dtype):
    """N = 262144: each row split across 64 programs, forward and backward."""
    check_against_torch(op, M, 262144, dtype)


@pytest.mark.parametrize("N", [3, 127, 1000])
@pytest.mark.parametrize("op", OPS)
def test_looped_path_with_tiny_blocks(op, N, monkeypatch):
    """The split path with many ragged chunks, several groups of rows, a partial last group, and
    sub-ranges of a group's rows in the backward, one of them empty."""
    monkeypatch.setattr(heuristics, "MAX_FUSED_N", {"forward": 2, "backward": 2})
    monkeypatch.setattr(heuristics, "LOOP_BLOCK_N", 64)
    # Windows of 20 rows' worth of one tensor: groups of 6 rows forward (window 3), 3 with a residual
    # (6); backward 4 rows (window 5: x, dy twice, dx, next x, dy), 3 for add_layer_norm (6).
    monkeypatch.setattr(heuristics, "WINDOW_BYTES", 20 * N * 4)
    monkeypatch.setattr(heuristics, "COLUMN_PROGRAMS_PER_SLOT", math.ceil(N / 64))  # 2 sub-ranges a group
    assert not heuristics.plan(9, N, "forward").one_block and not heuristics.plan(9, N, "backward").one_block
    split = heuristics.split_plan(9, N, 4, window=5, slots=heuristics.program_slots(torch.device(DEVICE)))
    assert (split.groups, split.parts, split.part_rows) == (3, 2, 2)  # the last group: 1 row, an empty sub-range
    check_against_torch(op, 9, N, torch.float32)


@pytest.mark.parametrize("op", OPS)
def test_backward_is_bitwise_deterministic(op):
    ours_fn, *_ = OPS[op]
    acts, prms = inputs(op, 128, 1000, torch.bfloat16)
    # Several programs write partial dw/db rows here, so the fixed-order reduction is exercised.
    plan = heuristics.plan(128, 1000, "backward")
    assert heuristics.backward_programs(128, plan.block_m, heuristics.program_slots(torch.device(DEVICE))) > 1
    first, second = (outputs_and_grads(ours_fn, acts, prms, 1000) for _ in range(2))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_statistics_are_float32_even_for_half_inputs():
    # Values near 300: their squares (9e4) overflow float16 (max 65504); float32 statistics do not.
    x = (300 + randn((4, 256), F64, seed=3)).to(torch.float16).to(DEVICE)
    y = kernels.layer_norm(x, (256,))
    ref = F.layer_norm(x.to(F64), (256,))
    assert torch.isfinite(y).all()
    assert_no_worse_than_torch(y.cpu(), F.layer_norm(x, (256,)).cpu(), ref.cpu(), torch.float16)


def _layouts():
    base = randn((6, 40), torch.float32, seed=5).to(DEVICE)
    yield "row-strided", base[:, :32], (32,)  # rows 40 apart: a view, no copy
    yield "transposed", base.t()[:32], (6,)  # the normalized dim is strided: copied once
    yield "3d", randn((2, 3, 32), torch.float32, seed=6).to(DEVICE), (32,)
    yield "2d-shape", randn((3, 4, 8), torch.float32, seed=7).to(DEVICE), (4, 8)


@pytest.mark.parametrize("name,x,shape", list(_layouts()), ids=lambda v: v if isinstance(v, str) else "")
def test_layouts_and_leading_shapes(name, x, shape):
    w, b = (t.to(DEVICE) for t in params(shape, torch.float32, True, True, seed=8))
    for ours, theirs, args in ((kernels.layer_norm, F.layer_norm, (w, b)), (kernels.rms_norm, F.rms_norm, (w,))):
        xs = [x.clone().requires_grad_() for _ in range(2)]
        ws = [w.clone().requires_grad_() for _ in range(2)]
        y1, y2 = ours(xs[0], shape, ws[0], *args[1:]), theirs(xs[1], shape, ws[1], *args[1:])
        # Both in float32 from the same values: a few float32 ulps of O(1) outputs apart at most.
        torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
        (y1 ** 2).sum().backward()  # a non-trivial dy; sum() alone would give an expanded one
        (y2 ** 2).sum().backward()
        torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ws[0].grad, ws[1].grad, rtol=1e-4, atol=1e-5)


def test_expanded_upstream_gradient_and_no_parameters():
    x = randn((5, 33), torch.float32, seed=9).to(DEVICE)
    for ours, theirs in ((kernels.layer_norm, F.layer_norm), (kernels.rms_norm, F.rms_norm)):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours(a, (33,)).sum().backward()  # dy has stride 0 in every dim
        theirs(b, (33,)).sum().backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)  # float32, O(1e-7) values


def test_add_layer_norm_returns_the_sum_and_gives_each_input_its_own_gradient():
    (x, r), (w, b) = inputs("add_layer_norm", 4, 64, torch.float32)
    x, r = x.requires_grad_(), r.requires_grad_()
    y, s = kernels.add_layer_norm(x, r, (64,), w, b)
    assert torch.equal(s, x.detach() + r.detach())
    s.sum().backward()  # only the sum is used: dx = dr = 1, the LayerNorm contributes nothing
    assert torch.equal(x.grad, torch.ones_like(x)) and torch.equal(r.grad, torch.ones_like(r))
    assert x.grad.data_ptr() != r.grad.data_ptr()  # an in-place update of one must not move the other


def test_empty_batch():
    x = torch.empty(0, 16, device=DEVICE, requires_grad=True)
    w = torch.ones(16, device=DEVICE, requires_grad=True)
    kernels.layer_norm(x, (16,), w).sum().backward()
    assert x.grad.shape == (0, 16) and torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.skipif(DEVICE != "cuda", reason="needs a GPU: 2^31 values do not fit the interpreter's time budget")
def test_64_bit_offsets():
    N = 8192
    M = 2**31 // N + 1  # the last row starts beyond 2^31 values
    x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
    y = kernels.layer_norm(x, (N,))
    last = F.layer_norm(x[-1:].to(F64), (N,))
    assert_no_worse_than_torch(y[-1:].cpu(), F.layer_norm(x[-1:], (N,)).cpu(), last.cpu(), torch.bfloat16)


# Bench scale for the split kernels: 512 rows of 65536 are 16,384 forward programs and about as
# many backward, far more than an H100 holds at once (one to a few blocks on each of 132 SMs).
_PROGRESS = """
import sys, torch, triton, triton.language as tl
from lnbook import kernels

@triton.jit
def busy(X, iters):  # holds its SM until it ends: a dependent loop of float ops
    v = tl.load(X + tl.program_id(0))
    for _ in range(iters):
        v = v * 0.999 + 0.001
    tl.store(X + tl.program_id(0), v)

def grads(op, x, w, b):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = kernels.layer_norm(x, (x.shape[1],), w, b) if op == "layer_norm" else kernels.rms_norm(x, (x.shape[1],), w)
    y.backward(y.detach())
    return [y.detach(), x.grad, w.grad]

gen = torch.Generator("cuda").manual_seed(0)
x = torch.randn(512, 65536, device="cuda", dtype=torch.bfloat16, generator=gen)
w, b = (torch.randn(65536, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(2))
for op in ("layer_norm", "rms_norm"):
    first, second = grads(op, x, w, b), grads(op, x, w, b)
    assert all(torch.equal(a, c) for a, c in zip(first, second)), op
    side = torch.cuda.Stream()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    with torch.cuda.stream(side):  # most SMs taken while the split kernels start
        busy[(sms - 4,)](torch.ones(sms, device="cuda"), 2_000_000, num_warps=32)
    beside = grads(op, x, w, b)
    torch.cuda.synchronize()
    assert all(torch.equal(a, c) for a, c in zip(first, beside)), op
print("progress ok")
"""


@pytest.mark.skipif(DEVICE != "cuda", reason="needs a GPU: the interpreter runs programs in order and never waits")
def test_split_kernels_progress_whatever_order_blocks_start():
    """No program waits for one that has not started (tickets): at bench scale, twice for identical
    bits, and once beside a kernel that holds most SMs. A hang is a timeout, in a process of its own."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "TRITON_INTERPRET": "0"}
    out = subprocess.run([sys.executable, "-c", _PROGRESS], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "progress ok" in out.stdout, out.stderr[-3000:]


X = torch.randn(2, 8, device=DEVICE)
W8 = torch.ones(8, device=DEVICE)


def case(id, exc, fragments, call):
    return pytest.param(call, exc, fragments, id=id)


ERROR_CASES = [
    # the checks shared with lnbook.norms, named for the kernel op
    case("ln-shape", ValueError, ["layer_norm: normalized_shape:", "(2, 8)", "got (4,)"], lambda: kernels.layer_norm(X, 4)),
    case("ln-eps", ValueError, ["layer_norm: eps:", ">= 0", "got -1.0"], lambda: kernels.layer_norm(X, 8, eps=-1.0)),
    case("ln-weight", ValueError, ["layer_norm: weight: expected shape (8,)", "got (7,)"],
         lambda: kernels.layer_norm(X, 8, torch.ones(7, device=DEVICE))),
    case("ln-int", TypeError, ["layer_norm: x:", "floating dtype", "got torch.int64"], lambda: kernels.layer_norm(X.long(), 8)),
    case("rms-eps-nan", ValueError, ["rms_norm: eps:", ">= 0", "got nan"], lambda: kernels.rms_norm(X, 8, eps=math.nan)),
    # the kernels' own: dtypes and devices
    case("ln-fp64", TypeError, ["layer_norm: x:", "float16, bfloat16 or float32", "got torch.float64"],
         lambda: kernels.layer_norm(X.double(), 8)),
    case("rms-weight-fp64", TypeError, ["rms_norm: weight:", "float16, bfloat16 or float32", "got torch.float64"],
         lambda: kernels.rms_norm(X, 8, W8.double())),
    case("ln-weight-device", ValueError, ["layer_norm: weight:", f"a tensor on {X.device} (x's device)", "got one on meta"],
         lambda: kernels.layer_norm(X, 8, W8.to("meta"))),
    case("ln-bias-device", ValueError, ["layer_norm: bias:", "x's device", "got one on meta"],
         lambda: kernels.layer_norm(X, 8, W8, W8.to("meta"))),
    # add_layer_norm's residual
    case("add-residual-shape", ValueError, ["add_layer_norm: residual: expected shape (2, 8) (x's shape), got (1, 8)"],
         lambda: kernels.add_layer_norm(X, X[:1], 8)),
    case("add-residual-dtype", TypeError, ["add_layer_norm: residual: expected dtype torch.float32 (x's dtype)", "torch.float16"],
         lambda: kernels.add_layer_norm(X, X.half(), 8)),
    case("add-residual-type", TypeError, ["add_layer_norm: x:", "a torch.Tensor", "got list"],
         lambda: kernels.add_layer_norm(X, [0.0] * 16, 8)),
    case("add-residual-device", ValueError, ["add_layer_norm: residual:", "x's device", "got one on meta"],
         lambda: kernels.add_layer_norm(X, X.to("meta"), 8)),
]  # fmt: skip


@pytest.mark.parametrize("call,exc,fragments", ERROR_CASES)
def test_user_errors(call, exc, fragments):
    with pytest.raises(exc, match=".*".join(map(re.escape, fragments))):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without CUDA")
def test_a_fresh_import_chooses_the_interpreter_before_triton_reads_it():
    # Triton reads TRITON_INTERPRET when it is imported: lnbook.kernels must set it first (a notebook imports
    # nothing else before it), or every @triton.jit helper compiles for a GPU and the first launch fails.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("import torch; from lnbook import kernels; x = torch.randn(2, 64); "
            "print(float((kernels.layer_norm(x, (64,)) - torch.nn.functional.layer_norm(x, (64,))).abs().max()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout) < 1e-5  # float32 rounding of a width-64 row


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without CUDA")
def test_triton_imported_first_is_said_in_one_line_not_a_crash_in_the_interpreter():
    # The case the test above rules out: something imported triton before lnbook.kernels, so Triton's own
    # functions (tl.sum) are compiled-only. Importing says so, RUNNABLE is False and an op raises that line.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("import torch, triton; from lnbook import kernels; print(kernels.RUNNABLE)\n"
            "try:\n    kernels.layer_norm(torch.randn(2, 64), (64,))\n"
            "except RuntimeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    runnable, raised = out.stdout.splitlines()
    said = "triton was imported before lnbook.kernels without TRITON_INTERPRET=1"
    assert runnable == "False" and raised.startswith("layer_norm: lnbook.kernels: " + said), out.stdout
    assert out.stderr.count(said) == 1  # said once, at import (the op's error is caught and printed to stdout)


@pytest.mark.parametrize("version,works", [("3.6.0", False), ("3.7.0", True), ("3.8.0+git1a2b3c", True),
                                           ("4.0", True), ("2.9.9", False)])
def test_interpreter_floor_reads_release_and_local_versions(version, works):
    assert runtime.interpreter_works(version) is works


def test_interpreter_floor_names_a_version_it_cannot_read():
    with pytest.raises(ValueError, match=r"interpreter_works: version: expected a Triton version .* got 'nightly'"):
        runtime.interpreter_works("nightly")


def test_an_old_interpreter_is_said_in_one_line_naming_the_floor(monkeypatch):
    # Triton 3.6's interpreter fails the kernels (make floors); here a 3.7+ stands in, so the check is told
    # the old version. Null case: the same interpreted run with a Triton that works says nothing.
    monkeypatch.setattr(runtime, "INTERPRETED", True)
    monkeypatch.setattr(runtime, "triton_interpreted", lambda: True)
    monkeypatch.setattr(runtime, "interpreter_works", lambda version=None: False)
    line = runtime.why_unavailable()
    assert "\n" not in line and "CPU interpreter cannot run these kernels" in line
    assert "pip install 'triton>=3.7'" in line and "or use a GPU" in line
    monkeypatch.setattr(runtime, "interpreter_works", lambda version=None: True)
    assert runtime.why_unavailable() is None
