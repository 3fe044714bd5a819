"""Tests for lnbook.norms: the reference norms against torch.nn.functional, their invariances,
the analytic backward passes, the running statistics, and every user error."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numerics import assert_no_worse_than_torch, gen, params, randn

from lnbook import norms

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
DTYPE_IDS = ["fp16", "bf16", "fp32", "fp64"]
F64 = torch.float64
EPS64 = torch.finfo(F64).eps


def _running_stats(C, dtype, seed=7):
    rm = torch.randn(C, generator=gen(seed), dtype=F64).to(dtype)  # (C,)
    rv = (0.5 + torch.rand(C, generator=gen(seed + 1), dtype=F64)).to(dtype)  # (C,), positive
    return rm, rv


def _clone(a):
    return a.clone() if isinstance(a, torch.Tensor) else a


def _upcast(a):
    return a.to(F64) if isinstance(a, torch.Tensor) else a


def assert_matches_torch(op: str, *args, **kwargs) -> None:
    """Hold norms.<op> against F.<op> on the same arguments (tensors cloned for each call).

    The float64 reference is ours on the inputs upcast to float64 (the same rounded data). It must
    first agree with torch in float64 to within 16 eps: outputs are O(1), and both sides compute
    two-pass statistics over at most 120 values, whose rounding error is a few eps. That check is
    what makes the rule of assert_no_worse_than_torch meaningful: a wrong formula in ours would
    otherwise be its own reference.
    """
    ours_fn, torch_fn = getattr(norms, op), getattr(F, op)
    x = args[0]
    # F.layer_norm / F.rms_norm want normalized_shape as a sequence (nn.LayerNorm takes an int);
    # ours accepts both, so the int case goes to torch as a 1-tuple.
    int_shape = op in ("layer_norm", "rms_norm") and isinstance(args[1], int)
    torch_args = (x, (args[1],), *args[2:]) if int_shape else args
    call = lambda fn, cast: fn(*map(cast, torch_args if fn is torch_fn else args), **kwargs)
    ours, theirs = call(ours_fn, _clone), call(torch_fn, _clone)
    assert ours.shape == theirs.shape == x.shape
    assert ours.dtype == theirs.dtype == x.dtype
    if x.numel() == 0:
        return
    ref = call(ours_fn, _upcast)
    torch.testing.assert_close(ref, call(torch_fn, _upcast), rtol=16 * EPS64, atol=16 * EPS64)
    if x.dtype == F64:
        assert torch.equal(ours, ref)  # the same computation on the same data
    else:
        assert_no_worse_than_torch(ours, theirs, ref, x.dtype)


# ----------------------------------------------------------------------- forward against torch

AFFINE = [(False, False), (True, False), (False, True), (True, True)]
AFFINE_IDS = ["plain", "w", "b", "wb"]

# (x.shape, normalized_shape): 1-D, 2-D, (B, L, d), 4-D with multi-dim normalized_shape, empty
# tensors (no rows), and N = 1 (xhat = 0: the row equals its mean).
ROW_CASES = [
    ((16,), 16),
    ((6, 32), (32,)),
    ((2, 5, 24), [24]),
    ((2, 3, 4, 5), (3, 4, 5)),
    ((2, 3, 4, 5), torch.Size([4, 5])),
    ((0, 8), (8,)),
    ((3, 0, 8), (8,)),
    ((5, 1), (1,)),
    ((1, 1), 1),
]
ROW_IDS = ["1d", "2d", "BLd", "4d-CHW", "4d-HW", "empty", "empty-mid", "N1", "N1-single"]


def _tuple(normalized_shape):
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weight,bias", AFFINE, ids=AFFINE_IDS)
@pytest.mark.parametrize("shape,normalized_shape", ROW_CASES, ids=ROW_IDS)
def test_layer_norm_matches_torch(shape, normalized_shape, weight, bias, dtype):
    w, b = params(_tuple(normalized_shape), dtype, weight, bias)
    assert_matches_torch("layer_norm", randn(shape, dtype), normalized_shape, w, b, eps=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weight", [False, True], ids=["plain", "w"])
@pytest.mark.parametrize("eps", [None, 1e-6], ids=["eps-default", "eps-1e-6"])
@pytest.mark.parametrize("shape,normalized_shape", ROW_CASES, ids=ROW_IDS)
def test_rms_norm_matches_torch(shape, normalized_shape, weight, eps, dtype):
    w, _ = params(_tuple(normalized_shape), dtype, weight, False)
    assert_matches_torch("rms_norm", randn(shape, dtype), normalized_shape, w, eps=eps)


def test_rms_norm_default_eps_is_float32s_for_half_precision():
    # torch documents eps=None as finfo(x.dtype).eps, but uses the eps of its compute type. The
    # difference shows only where mean(x^2) is comparable to eps, hence the tiny input; there the
    # two choices give 0.95 and 0.03 (float16), so 0.5 separates them.
    x = 1e-3 * torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=F64)
    for dtype in [torch.float16, torch.bfloat16]:
        xd = x.to(dtype)
        assert norms.default_rms_norm_eps(dtype) == torch.finfo(torch.float32).eps
        assert torch.equal(norms.rms_norm(xd, 4), F.rms_norm(xd, (4,)))
        y_dtype_eps = F.rms_norm(xd, (4,), eps=torch.finfo(dtype).eps)
        assert (F.rms_norm(xd, (4,)).float() - y_dtype_eps.float()).abs().min() > 0.5
    for dtype in [torch.float32, F64]:
        assert norms.default_rms_norm_eps(dtype) == torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "wb"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 5), (0, 3, 4)], ids=["NC", "NCL", "NCHW", "empty"])
def test_batch_norm_matches_torch(shape, training, affine, dtype):
    w, b = params((shape[1],), dtype, affine, affine)
    rm, rv = _running_stats(shape[1], dtype)
    x = randn(shape, dtype)
    assert_matches_torch("batch_norm", x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "wb"])
@pytest.mark.parametrize("mode", ["input-stats", "input-stats+running", "running-stats"])
@pytest.mark.parametrize("shape", [(4, 3, 5), (2, 3, 4, 5), (1, 3, 7), (0, 3, 4)], ids=["NCL", "NCHW", "N1", "empty"])
def test_instance_norm_matches_torch(shape, mode, affine, dtype):
    w, b = params((shape[1],), dtype, affine, affine)
    rm, rv = _running_stats(shape[1], dtype) if mode != "input-stats" else (None, None)
    args = (randn(shape, dtype), rm, rv, w, b)
    kwargs = dict(use_input_stats=(mode != "running-stats"), momentum=0.2)
    if shape[0] == 0 and affine:
        # torch 2.13 raises IndexError here (it indexes weight.repeat(0)); ours returns the empty result.
        assert norms.instance_norm(*args, **kwargs).shape == shape
        return
    assert_matches_torch("instance_norm", *args, **kwargs)


# (shape, num_groups); (2, 6) with 6 groups has one value per group and has its own test below.
GN_SHAPES = [(2, 6), (2, 6, 5), (2, 6, 4, 5), (1, 6, 7), (0, 6, 3)]
GN_CASES = [(s, g) for s in GN_SHAPES for g in [1, 2, 3, 6] if (s, g) != ((2, 6), 6)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "wb"])
@pytest.mark.parametrize("shape,num_groups", GN_CASES, ids=[f"{s}-G{g}" for s, g in GN_CASES])
def test_group_norm_matches_torch(shape, num_groups, affine, dtype):
    w, b = params((shape[1],), dtype, affine, affine)
    assert_matches_torch("group_norm", randn(shape, dtype), num_groups, w, b, eps=1e-5)


# Extra arguments after x. batch_norm and instance_norm get float32 buffers / affine: with
# parameters in the input dtype (or none), torch 2.13's CPU kernel itself rounds the batch mean to
# float16/bfloat16 and is as inaccurate as the mistake this test is meant to catch.
OFFSET_CASES = {
    "layer_norm": ((4, 512), lambda: ((512,),)),
    "group_norm": ((2, 8, 64), lambda: (2,)),
    "batch_norm": ((16, 4, 32), lambda: (*_running_stats(4, torch.float32), None, None, True)),
    "instance_norm": ((2, 4, 256), lambda: (None, None, torch.ones(4), torch.zeros(4))),
}


@pytest.mark.parametrize("dtype", DTYPES[:2], ids=DTYPE_IDS[:2])
@pytest.mark.parametrize("op", OFFSET_CASES)
def test_statistics_are_not_computed_in_half_precision(op, dtype):
    # Rows with |mean| = 50 >> std = 1: a mean rounded to float16 (ulp 1/32 at 50) or bfloat16
    # (ulp 1/4) shifts every xhat by up to half that ulp divided by std, about 16 ulps of the
    # output; statistics kept in float32 stay within the rule of assert_no_worse_than_torch.
    shape, extra = OFFSET_CASES[op]
    x = randn(shape, dtype, shift=50.0, scale=1.0)
    assert_matches_torch(op, x, *extra())


def test_group_norm_with_one_value_per_group_returns_the_bias():
    # x - mean is exactly 0, so ours returns b exactly. torch's CPU kernel folds the mean into a
    # bias, b - mean * rstd * w, and adds x * rstd * w: two terms of size |x| / sqrt(eps) ~ 1e3
    # cancel, leaving ~1e3 eps64 of rounding; 4096 eps64 bounds it.
    x = randn((2, 6))
    w, b = params((6,), F64, True, True)
    assert torch.equal(norms.group_norm(x, 6, w, b), b.expand(2, 6))
    torch.testing.assert_close(F.group_norm(x, 6, w, b), b.expand(2, 6), rtol=0, atol=4096 * EPS64)


# ------------------------------------------------------------------- relations between norms
# Different reduction layouts of the same sums in float64: equal to within 16 eps.


def test_group_norm_with_one_group_is_layer_norm_over_channels_and_space():
    x = randn((3, 6, 4, 5))
    gn, ln = norms.group_norm(x, 1), norms.layer_norm(x, x.shape[1:])
    torch.testing.assert_close(gn, ln, rtol=0, atol=16 * EPS64)


def test_group_norm_with_one_group_per_channel_is_instance_norm():
    x = randn((3, 6, 4, 5))
    w, b = params((6,), F64, True, True)
    gn, inorm = norms.group_norm(x, 6, w, b), norms.instance_norm(x, weight=w, bias=b)
    torch.testing.assert_close(gn, inorm, rtol=0, atol=16 * EPS64)


# --------------------------------------------------------------------------- running statistics

# Buffers after three training steps. float64: equal to torch's to within 16 eps (a few roundings
# per step). Lower precisions: assert_no_worse_than_torch against our float64 run on the same
# rounded inputs, because torch is not a fixed number of bits away from the exact value: its CPU
# batch_norm accumulates in float64 where we use float32, and its instance_norm rounds float32
# buffers through the float16 input dtype.
RUNNING_DTYPES = [(torch.float32, torch.float32), (F64, F64), (torch.float16, torch.float32), (torch.bfloat16,) * 2]
RUNNING_OPS = [("batch_norm", (8, 3)), ("batch_norm", (4, 3, 5)), ("batch_norm", (2, 3, 4, 5))]
RUNNING_OPS += [("instance_norm", (4, 3, 5)), ("instance_norm", (2, 3, 4, 5))]


def _train_steps(op, shape, x_dtype, buf_dtype, momentum, impl):
    bufs = _running_stats(shape[1], buf_dtype)
    mode = {"training": True} if op == "batch_norm" else {"use_input_stats": True}
    for step in range(3):
        x = randn(shape, seed=10 + step).to(x_dtype)
        impl(op)(x, *bufs, momentum=momentum, **mode)
    return bufs


def _ours(op):
    return getattr(norms, op)


def _torch(op):
    return getattr(F, op)


def _ours_upcast(op):
    return lambda x, *args, **kwargs: getattr(norms, op)(x.to(F64), *args, **kwargs)


@pytest.mark.parametrize("x_dtype,buf_dtype", RUNNING_DTYPES, ids=["fp32", "fp64", "fp16-fp32buf", "bf16"])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("op,shape", RUNNING_OPS, ids=[f"{op}-{s}" for op, s in RUNNING_OPS])
def test_running_stats_update_like_torch(op, shape, momentum, x_dtype, buf_dtype):
    ours = _train_steps(op, shape, x_dtype, buf_dtype, momentum, _ours)
    theirs = _train_steps(op, shape, x_dtype, buf_dtype, momentum, _torch)
    refs = _train_steps(op, shape, x_dtype, F64, momentum, _ours_upcast)  # x rounded, then upcast
    for o, t, r, start in zip(ours, theirs, refs, _running_stats(shape[1], buf_dtype)):
        assert o.dtype == buf_dtype
        assert not torch.equal(o, start)  # the update happened
        if buf_dtype == F64:
            torch.testing.assert_close(o, t, rtol=16 * EPS64, atol=16 * EPS64)
        else:
            assert_no_worse_than_torch(o, t, r, buf_dtype)


def test_running_var_is_unbiased():
    # With momentum 1 the buffers become the batch statistics; the variance divides by n - 1.
    x = randn((5, 2, 3))
    rm, rv = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    norms.batch_norm(x, rm, rv, training=True, momentum=1.0)
    per_channel = x.transpose(0, 1).reshape(2, -1)  # (C, N * L)
    torch.testing.assert_close(rm, per_channel.mean(1), rtol=0, atol=16 * EPS64)
    torch.testing.assert_close(rv, per_channel.var(1, correction=1), rtol=16 * EPS64, atol=0)


def test_buffers_untouched_in_eval_and_on_an_empty_batch():
    rm, rv = _running_stats(3, torch.float32)
    rm0, rv0 = rm.clone(), rv.clone()
    norms.batch_norm(randn((4, 3), torch.float32), rm, rv, training=False)
    norms.batch_norm(torch.empty(0, 3, 2), rm, rv, training=True)  # torch leaves them too
    norms.instance_norm(torch.empty(0, 3, 2), rm, rv)  # torch 2.13 would write NaN here
    assert torch.equal(rm, rm0) and torch.equal(rv, rv0)


def test_batch_norm_training_without_buffers():
    x = randn((6, 3, 4), torch.float32)
    ours, theirs = norms.batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True)
    assert_no_worse_than_torch(ours, theirs, norms.batch_norm(x.to(F64), None, None, training=True), x.dtype)


# ------------------------------------------------------------------------ hypothesis properties

# eps = 0 and float64 throughout: with eps > 0 the invariances hold only approximately (they break
# where var is comparable to eps), which would hide a real violation in the tolerance.
# With eps = 0, LN(x) = (x - mean) / std has condition number kappa ~ max|x| / std: a rounding of
# eps64 * max|x| in the input moves the output by eps64 * kappa. Inputs therefore need a variance
# bounded away from 0: std >= max|x| / 100 keeps kappa <= 100, and std >= 1e-3 keeps var far from
# underflow. Each tolerance is 8 n eps64 kappa: n for the summations, 8 for the other roundings
# (on random rows the observed error stays below 1/10 of it; a real violation is O(1)).
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)
rows = st.lists(finite, min_size=2, max_size=32).map(lambda v: torch.tensor(v, dtype=F64))


def _kappa(x: torch.Tensor) -> float:
    std = x.std(correction=0).item()
    assume(std >= 1e-3 and std >= x.abs().max().item() / 100)
    return x.abs().max().item() / std


def _tol(x: torch.Tensor, kappa: float) -> float:
    return 8 * x.numel() * EPS64 * kappa


def _ln(x):
    return norms.layer_norm(x, x.shape, eps=0.0)


def _rms(x):
    return norms.rms_norm(x, x.shape, eps=0.0)


@SETTINGS
@given(x=rows, c=finite)
def test_layer_norm_is_shift_invariant(x, c):
    kappa = _kappa(x) * (1 + abs(c) / x.abs().max().item())  # x + c is rounded at |x| + |c|
    assert (_ln(x + c) - _ln(x)).abs().max().item() <= _tol(x, kappa)


@SETTINGS
@given(x=rows, a=st.floats(1e-3, 1e3))
def test_layer_norm_is_scale_invariant(x, a):
    assert (_ln(a * x) - _ln(x)).abs().max().item() <= _tol(x, _kappa(x))


@SETTINGS
@given(x=rows, a=st.floats(1e-3, 1e3))
def test_rms_norm_is_scale_invariant(x, a):
    # RMSNorm is always well conditioned (rms >= max|x| / sqrt(n), so kappa <= sqrt(n)); only
    # underflow of the mean square must be kept away.
    assume(x.abs().max().item() >= 1e-3)
    assert (_rms(a * x) - _rms(x)).abs().max().item() <= _tol(x, math.sqrt(x.numel()))


@SETTINGS
@given(x=rows)
def test_layer_norm_output_has_mean_0_and_variance_1(x):
    tol, y = _tol(x, _kappa(x)), _ln(x)
    assert abs(y.mean().item()) <= tol
    assert abs(y.var(correction=0).item() - 1) <= tol  # biased: the variance LN divides by


@SETTINGS
@given(x=rows)
def test_rms_norm_output_has_mean_square_1(x):
    assume(x.abs().max().item() >= 1e-3)
    assert abs(_rms(x).square().mean().item() - 1) <= _tol(x, 1.0)


# ----------------------------------------------------------------------------- analytic backward

BACKWARD_CASES = [((16,), (16,)), ((6, 32), (32,)), ((2, 5, 24), (24,)), ((2, 3, 4, 5), (4, 5))]
BACKWARD_CASES += [((0, 8), (8,)), ((5, 1), (1,))]
BACKWARD_IDS = ["1d", "2d", "BLd", "4d-HW", "empty", "N1"]
BACKWARD_OPS = [("layer_norm", False, False), ("layer_norm", True, False), ("layer_norm", True, True)]
BACKWARD_OPS += [("rms_norm", False, False), ("rms_norm", True, False)]


def _torch_grads(op, x, dy, ns, w, b, eps=1e-5):
    x, w, b = (None if t is None else t.detach().clone().requires_grad_() for t in (x, w, b))
    y = F.layer_norm(x, ns, w, b, eps) if op == "layer_norm" else F.rms_norm(x, ns, w, eps)
    y.backward(dy)
    return [None if t is None else t.grad for t in (x, w, b)]


def _our_grads(op, x, dy, ns, w, b, eps=1e-5):
    if op == "layer_norm":
        _, cache = norms.layer_norm_forward(x, ns, w, b, eps)
        return list(norms.layer_norm_backward(dy, cache))
    _, cache = norms.rms_norm_forward(x, ns, w, eps)
    return [*norms.rms_norm_backward(dy, cache), None]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op,weight,bias", BACKWARD_OPS, ids=[f"{o}-{'w' * w}{'b' * b}" for o, w, b in BACKWARD_OPS])
@pytest.mark.parametrize("shape,ns", BACKWARD_CASES, ids=BACKWARD_IDS)
def test_analytic_backward_matches_torch_autograd(shape, ns, op, weight, bias, dtype):
    """float64: within 16 eps * (1 + max|x| * max rstd) of torch's autograd. Evaluating
    (x - mean) * rstd in a different order costs eps * |x| * rstd; that is O(1) normally, but
    ~1e3 for N = 1, where torch's dw carries that rounding and ours is exactly 0.
    Lower precisions: assert_no_worse_than_torch against our float64 result, per gradient."""
    w, b = params(ns, dtype, weight, bias)
    x, dy = randn(shape, dtype), randn(shape, dtype, seed=3, shift=0.0, scale=1.0)
    x64, dy64, w64, b64 = map(_upcast, (x, dy, w, b))
    ours, theirs = _our_grads(op, x, dy, ns, w, b), _torch_grads(op, x, dy, ns, w, b)
    ref, ref_torch = _our_grads(op, x64, dy64, ns, w64, b64), _torch_grads(op, x64, dy64, ns, w64, b64)
    rstd = norms.rms_norm_forward(x64, ns)[1].rstd if op == "rms_norm" else norms.layer_norm_forward(x64, ns)[1].rstd
    tol64 = 16 * EPS64 * (1 + (x64.abs().max() * rstd.max()).item()) if x.numel() else 0.0
    for name, o, t, r, rt, p in zip(("dx", "dw", "db"), ours, theirs, ref, ref_torch, (x, w, b)):
        assert (o is None) == (p is None) == (t is None), name
        if o is None:
            continue
        assert o.shape == p.shape and o.dtype == p.dtype, name
        torch.testing.assert_close(r, rt, rtol=tol64, atol=tol64, msg=name)
        if dtype != F64 and o.numel():
            assert_no_worse_than_torch(o, t, r, dtype)


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_analytic_backward_float32_close_to_torch(op):
    # Direct float32 comparison on a wider problem: both sides accumulate in float32, dw sums 40
    # rows of O(1) terms and dx cancels about a digit; observed differences are below 10 eps32
    # relative to 1 + |grad|, so 64 eps32 bounds them with margin.
    x, dy = randn((40, 64), torch.float32), randn((40, 64), torch.float32, seed=3, shift=0.0, scale=1.0)
    w, b = params((64,), torch.float32, True, op == "layer_norm")
    tol = 64 * torch.finfo(torch.float32).eps
    for o, t in zip(_our_grads(op, x, dy, (64,), w, b), _torch_grads(op, x, dy, (64,), w, b)):
        if o is not None:
            torch.testing.assert_close(o, t, rtol=tol, atol=tol)


def test_analytic_backward_equals_autograd_through_our_forward():
    x = randn((4, 3, 8)).requires_grad_()
    w, b = (t.requires_grad_() for t in params((8,), F64, True, True))
    y, cache = norms.layer_norm_forward(x, 8, w, b)
    dy = randn(y.shape, seed=3)
    y.backward(dy)
    for analytic, auto in zip(norms.layer_norm_backward(dy, cache), (x.grad, w.grad, b.grad)):
        torch.testing.assert_close(analytic, auto, rtol=16 * EPS64, atol=16 * EPS64)


def test_cache_layout():
    x = randn((2, 3, 4, 5), torch.bfloat16)
    w, b = params((4, 5), torch.bfloat16, True, True)
    _, cache = norms.layer_norm_forward(x, (4, 5), w, b)
    assert cache.xhat.shape == x.shape and cache.xhat.dtype == torch.float32
    assert cache.mean.shape == cache.rstd.shape == (2, 3, 1, 1) and cache.rstd.dtype == torch.float32
    assert cache.weight is not None and cache.bias is not None and cache.bias.dtype == torch.bfloat16
    assert cache.normalized_shape == (4, 5)
    _, rms_cache = norms.rms_norm_forward(x, (4, 5))
    assert rms_cache.mean is None and rms_cache.weight is None and rms_cache.bias is None


GRADCHECK_FNS = {
    "layer_norm": lambda x, w, b: norms.layer_norm(x, (5,), w, b),
    "layer_norm-1d": lambda x, w, b: norms.layer_norm(x.reshape(15), 15),
    "rms_norm": lambda x, w, b: norms.rms_norm(x, (5,), w),
    "group_norm": lambda x, w, b: norms.group_norm(x.reshape(1, 3, 5), 3, w[:3], b[:3]),
    "batch_norm": lambda x, w, b: norms.batch_norm(x, None, None, w, b, training=True),
    "instance_norm": lambda x, w, b: norms.instance_norm(x.reshape(1, 3, 5), weight=w[:3], bias=b[:3]),
}


@pytest.mark.parametrize("fn", GRADCHECK_FNS.values(), ids=GRADCHECK_FNS.keys())
def test_gradcheck(fn):
    x = randn((3, 5)).requires_grad_()
    w, b = (t.requires_grad_() for t in params((5,), F64, True, True))
    assert torch.autograd.gradcheck(fn, (x, w, b))


def test_autograd_through_half_precision():
    x = randn((4, 8), torch.float16).requires_grad_()
    norms.layer_norm(x, 8).square().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()


# -------------------------------------------------------------------------------------- errors

X = randn((2, 8), torch.float32)
X4 = randn((2, 6, 3, 3), torch.float32)
W8 = torch.ones(8)


def case(id, exc, fragments, call):
    """fragments must appear in the message in this order: op and argument, expected, actual."""
    return pytest.param(call, exc, fragments, id=id)


ERROR_CASES = [
    # layer_norm: x
    case("ln-x-list", TypeError, ["layer_norm: x:", "a torch.Tensor", "got list"], lambda: norms.layer_norm([1.0] * 8, 8)),
    case("ln-x-int", TypeError, ["layer_norm: x:", "floating dtype", "got torch.int64"], lambda: norms.layer_norm(X.long(), 8)),
    case("ln-x-bool", TypeError, ["layer_norm: x:", "floating dtype", "got torch.bool"], lambda: norms.layer_norm(X > 0, 8)),
    case("ln-x-complex", TypeError, ["x:", "floating dtype", "got torch.complex64"], lambda: norms.layer_norm(X.cfloat(), 8)),
    # layer_norm: normalized_shape
    case("ln-ns-empty", ValueError, ["layer_norm: normalized_shape:", "at least one dimension", "got ()"],
         lambda: norms.layer_norm(X, ())),
    case("ln-ns-zero", ValueError, ["normalized_shape:", "positive sizes", "got (0,)"], lambda: norms.layer_norm(X, (0,))),
    case("ln-ns-negative", ValueError, ["normalized_shape:", "positive sizes", "got (2, -8)"],
         lambda: norms.layer_norm(X, (2, -8))),
    case("ln-ns-mismatch", ValueError, ["normalized_shape:", "trailing dimensions of x.shape = (2, 8)", "got (4,)"],
         lambda: norms.layer_norm(X, (4,))),
    case("ln-ns-too-long", ValueError, ["normalized_shape:", "x.shape = (2, 8)", "got (3, 2, 8)"],
         lambda: norms.layer_norm(X, (3, 2, 8))),
    case("ln-ns-float", TypeError, ["normalized_shape:", "an int or a sequence of ints", "got 8.0"],
         lambda: norms.layer_norm(X, 8.0)),
    case("ln-ns-str", TypeError, ["normalized_shape:", "sequence of ints", "got '8'"], lambda: norms.layer_norm(X, "8")),
    case("ln-ns-bool", TypeError, ["normalized_shape:", "sequence of ints", "got (True,)"],
         lambda: norms.layer_norm(X, (True,))),
    # layer_norm: weight, bias
    case("ln-weight-shape", ValueError, ["layer_norm: weight: expected shape (8,) (= normalized_shape), got (4,)"],
         lambda: norms.layer_norm(X, 8, torch.ones(4))),
    case("ln-bias-shape", ValueError, ["layer_norm: bias:", "shape (8,)", "got (8, 1)"],
         lambda: norms.layer_norm(X, 8, W8, torch.ones(8, 1))),
    case("ln-weight-int", TypeError, ["layer_norm: weight:", "floating dtype", "got torch.int32"],
         lambda: norms.layer_norm(X, 8, W8.int())),
    case("ln-bias-list", TypeError, ["layer_norm: bias:", "a torch.Tensor", "got list"],
         lambda: norms.layer_norm(X, 8, W8, [0.0] * 8)),
    # layer_norm: eps
    case("ln-eps-negative", ValueError, ["layer_norm: eps:", ">= 0", "got -1e-05"], lambda: norms.layer_norm(X, 8, eps=-1e-5)),
    case("ln-eps-nan", ValueError, ["layer_norm: eps:", ">= 0", "got nan"], lambda: norms.layer_norm(X, 8, eps=float("nan"))),
    case("ln-eps-str", TypeError, ["layer_norm: eps:", "a real number", "got str"], lambda: norms.layer_norm(X, 8, eps="0.1")),
    case("ln-eps-none", TypeError, ["layer_norm: eps:", "a real number", "got NoneType"],
         lambda: norms.layer_norm(X, 8, eps=None)),
    case("ln-forward", ValueError, ["layer_norm: eps:", ">= 0", "got -1.0"], lambda: norms.layer_norm_forward(X, 8, eps=-1.0)),
    # rms_norm
    case("rms-weight-shape", ValueError, ["rms_norm: weight: expected shape (8,) (= normalized_shape), got (7,)"],
         lambda: norms.rms_norm(X, 8, torch.ones(7))),
    case("rms-eps-negative", ValueError, ["rms_norm: eps:", ">= 0", "got -1.0"], lambda: norms.rms_norm(X, 8, eps=-1.0)),
    case("rms-ns-mismatch", ValueError, ["rms_norm: normalized_shape:", "(2, 8)", "got (2, 4)"],
         lambda: norms.rms_norm(X, (2, 4))),
    case("rms-x-int", TypeError, ["rms_norm: x:", "floating dtype", "got torch.int16"],
         lambda: norms.rms_norm_forward(X.short(), 8)),
    # batch_norm
    case("bn-x-1d", ValueError, ["batch_norm: x:", "at least 2 dimensions", "got (8,)"],
         lambda: norms.batch_norm(X[0], None, None, training=True)),
    case("bn-x-int", TypeError, ["batch_norm: x:", "floating dtype", "got torch.int32"],
         lambda: norms.batch_norm(X4.int(), None, None, training=True)),
    case("bn-rm-shape", ValueError, ["batch_norm: running_mean: expected shape (6,) (= (C,) with C = x.shape[1]), got (4,)"],
         lambda: norms.batch_norm(X4, torch.zeros(4), torch.ones(6))),
    case("bn-rv-int", TypeError, ["batch_norm: running_var:", "floating dtype", "got torch.int64"],
         lambda: norms.batch_norm(X4, torch.zeros(6), torch.ones(6, dtype=torch.int64))),
    case("bn-weight-shape", ValueError, ["batch_norm: weight:", "shape (6,)", "got (3,)"],
         lambda: norms.batch_norm(X4, None, None, torch.ones(3), training=True)),
    case("bn-eval-no-stats", ValueError, ["batch_norm: running_mean:", "a tensor in evaluation mode", "got None"],
         lambda: norms.batch_norm(X4, None, None)),
    case("bn-eval-no-var", ValueError, ["batch_norm: running_var:", "a tensor in evaluation mode", "got None"],
         lambda: norms.batch_norm(X4, torch.zeros(6), None)),
    case("bn-one-buffer", ValueError, ["running_mean and running_var:", "both None or both tensors", "running_var None"],
         lambda: norms.batch_norm(X4, torch.zeros(6), None, training=True)),
    case("bn-one-value", ValueError,
         ["batch_norm: x:", "more than 1 value per channel when training", "got x.shape = (1, 6, 1, 1)"],
         lambda: norms.batch_norm(X4[:1, :, :1, :1], None, None, training=True)),
    case("bn-eps-negative", ValueError, ["batch_norm: eps:", ">= 0", "got -0.5"],
         lambda: norms.batch_norm(X4, None, None, training=True, eps=-0.5)),
    # instance_norm
    case("in-no-spatial", ValueError, ["instance_norm: x:", "more than 1 value per instance", "got x.shape = (2, 8)"],
         lambda: norms.instance_norm(X)),
    case("in-no-running", ValueError, ["instance_norm: running_mean:", "use_input_stats=False", "got None"],
         lambda: norms.instance_norm(X4, use_input_stats=False)),
    case("in-bias-shape", ValueError, ["instance_norm: bias:", "shape (6,)", "got (2,)"],
         lambda: norms.instance_norm(X4, bias=torch.zeros(2))),
    # group_norm
    case("gn-indivisible", ValueError, ["group_norm: num_groups:", "divisor of C = x.shape[1] = 6", "got 4"],
         lambda: norms.group_norm(X4, 4)),
    case("gn-zero-groups", ValueError, ["group_norm: num_groups:", "positive divisor", "got 0"], lambda: norms.group_norm(X4, 0)),
    case("gn-float-groups", TypeError, ["group_norm: num_groups:", "an int", "got float"], lambda: norms.group_norm(X4, 2.0)),
    case("gn-weight-shape", ValueError, ["group_norm: weight: expected shape (6,)", "got (3,)"],
         lambda: norms.group_norm(X4, 2, torch.ones(3))),
    case("gn-x-1d", ValueError, ["group_norm: x:", "at least 2 dimensions", "got (8,)"], lambda: norms.group_norm(X[0], 2)),
    case("gn-weight-int", TypeError, ["group_norm: weight:", "floating dtype", "got torch.int8"],
         lambda: norms.group_norm(X4, 2, torch.ones(6, dtype=torch.int8))),
]  # fmt: skip


@pytest.mark.parametrize("call,exc,fragments", ERROR_CASES)
def test_user_errors(call, exc, fragments):
    with pytest.raises(exc, match=".*".join(map(re.escape, fragments))):
        call()


def test_the_models_layer_norm_module_matches_the_reference():
    """models.LayerNorm runs PyTorch's fused op for speed; values and gradients are the reference's."""
    from lnbook import models

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    module = models.LayerNorm(16).double()
    with torch.no_grad():
        module.weight.copy_(1 + 0.1 * torch.randn(16, generator=gen, dtype=torch.float64))
        module.bias.copy_(0.1 * torch.randn(16, generator=gen, dtype=torch.float64))
    dy = torch.randn(3, 5, 16, generator=gen, dtype=torch.float64)
    w, b = (module.weight.detach().clone().requires_grad_(), module.bias.detach().clone().requires_grad_())
    x2 = x.detach().clone().requires_grad_()
    (module(x) * dy).sum().backward()
    (norms.layer_norm(x2, (16,), w, b) * dy).sum().backward()
    # float64, two summation orders of 16 terms: rounding at 1e-15.
    for got, want in ((x.grad, x2.grad), (module.weight.grad, w.grad), (module.bias.grad, b.grad)):
        assert torch.allclose(got, want, rtol=0, atol=1e-13)
    assert torch.allclose(module(x), norms.layer_norm(x2, (16,), w, b), rtol=0, atol=1e-13)


def test_stats_dtype_is_float32_except_for_float64():
    assert [norms.stats_dtype(d) for d in DTYPES] == [torch.float32] * 3 + [torch.float64]
