"""Small helpers shared by the chapter experiments: the bare LayerNorm ``ln``, seeded tensors, a log-log
slope, statistics over seeds, and a roofline model of time from counted FLOPs and bytes (no experiment
reads a clock)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import statistics

import torch
from torch import nn

from lnbook import args, norms
from lnbook.hardware import H100, Device

F64 = torch.float64


def ln(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last dimension without affine. ``eps`` has no default: the book's exact
    case is ε = 0 and PyTorch's is 1e-5, and every experiment says which one it studies."""
    return norms.layer_norm(x, x.shape[-1:], eps=eps)


def ln_grads(x: torch.Tensor, dy: torch.Tensor, gamma: torch.Tensor | None = None, eps: float = 1e-5):
    """(dx, dγ, dβ) of Σ dy ⊙ LN(x; γ, β) by autograd (β = 0, γ = 1 unless given)."""
    d = x.shape[-1]
    x = x.detach().clone().requires_grad_(True)
    w = (torch.ones(d, dtype=x.dtype) if gamma is None else gamma.detach().clone()).requires_grad_(True)
    b = torch.zeros(d, dtype=x.dtype, requires_grad=True)
    (dy * norms.layer_norm(x, d, w, b, eps)).sum().backward()
    return x.grad, w.grad, b.grad


def randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Standard normal tensor from its own seeded generator (experiments never share RNG state)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# Set to 1 to start every training run one unit in the last place away from its seeded weights: a stand-in
# for another processor, whose last digits differ (tests/test_perturbation.py shows no verdict or check moves).
PERTURB_ENV = "LNBOOK_PERTURB_INIT"


def seeded_start(weights):
    """A training run's initial weights (a module, or a tensor of them), as seeded; under
    ``$LNBOOK_PERTURB_INIT=1`` each value first moves up by one unit in the last place. Every training run
    passes its fresh model through here before its first step."""
    if os.environ.get(PERTURB_ENV) == "1":
        tensors = weights.parameters() if isinstance(weights, torch.nn.Module) else [weights]
        with torch.no_grad():
            for t in tensors:
                t.copy_(torch.nextafter(t, torch.full_like(t, math.inf)))
    return weights


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _slope(x: list[float], y: list[float]) -> float:
    x, y = torch.tensor(x, dtype=F64), torch.tensor(y, dtype=F64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (the exponent of a power law)."""
    return _slope([math.log(v) for v in x], [math.log(v) for v in y])


def semilog_slope(x, y) -> float:
    """Least-squares slope of ln y against x (the rate of an exponential)."""
    return _slope([float(v) for v in x], [math.log(v) for v in y])


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch work on one thread, then restore the setting: small layers gain nothing
    from a thread pool, and on a busy machine handing them between threads costs more than the work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclasses.dataclass(frozen=True)
class SeedSpread:
    """Mean and spread of one quantity over seeds: what a verdict that rests on random draws decides on."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def se(self) -> float:
        """Standard error of the mean."""
        return self.sd / math.sqrt(len(self.values))

    def beyond(self, value: float, k: float = 3.0) -> bool:
        """The mean differs from ``value`` by more than ``k`` standard errors, or every seed lies on the
        same side of it (a difference no seed contradicts)."""
        same_side = all(v > value for v in self.values) or all(v < value for v in self.values)
        return abs(self.mean - value) > k * self.se or same_side


def over_seeds(values) -> SeedSpread:
    values = tuple(float(v) for v in values)
    if len(values) < 3:
        raise args.arg_error(ValueError, "over_seeds", "values", "at least 3 seeds", len(values))
    return SeedSpread(values)


# One count of a norm's forward arithmetic per normalized element, used by every chapter: LayerNorm adds for
# the mean (1), centres (1), squares (1) and adds for the variance (1), scales by rstd (1), then γ (1) and
# β (1): 7; RMSNorm squares, adds, scales and applies γ: 4. Per-row work (rstd's square root and
# reciprocal) is not per element and is left out.
FLOPS_PER_ELEMENT = {"layer_norm": 7, "rms_norm": 4}


def flops_per_token(d: int, seq: int) -> dict[str, int]:
    """FLOPs per token of one Transformer block (multiply-add = 2), by term.

    Matmuls: QKV 2·d·3d, output projection 2·d·d, MLP 2·d·4d twice: 24d². Attention scores and
    their product with V: 2·2·L·d, counted over all L keys as dense kernels do. LayerNorm:
    ``FLOPS_PER_ELEMENT["layer_norm"]`` per element, twice per block.
    """
    return {"matmul": 24 * d * d, "attention": 4 * seq * d, "layernorm": 2 * FLOPS_PER_ELEMENT["layer_norm"] * d}


def roofline_seconds(flops: float, nbytes: float, unit: str, device: Device = H100) -> float:
    """The least time an op of ``flops`` FLOPs on ``unit`` (``"bf16 tensor core"``, ``"fp32 CUDA core"``)
    moving ``nbytes`` bytes of memory can take on ``device``: max(FLOPs / peak, bytes / bandwidth), the
    roofline. The figures are quoted from datasheets (:mod:`lnbook.hardware`), not measured."""
    return max(flops / device.peak[unit], nbytes / device.bandwidth)


# ----------------------------------------------------------------------------- counted arithmetic
# An op count independent of any formula: what PyTorch's dispatcher sees a callable do (claims F07, and the
# chapters that count a norm's or a block's FLOPs). One FLOP is one arithmetic result on one element:
#   - a pointwise op (ATen tag ``pointwise``: add, mul, pow, rsqrt, ...): one per element it produces;
#   - a reduction (tag ``reduction``: sum, mean, ...): one per element it reduces (n − 1 adds and the
#     mean's division make n per output);
#   - a matrix product (mm, bmm, addmm): 2·M·N·K, a multiply and an add per term;
#   - data movement (copies, casts, views, detach): none.
# Any other op raises, so a fused op (native_layer_norm) is never counted as free: count a decomposed
# reference instead. An op applied a second time to the very same inputs (the reference LayerNorm centres
# x twice, once for the variance and once for x̂) is work a kernel does once: it is reported in
# ``repeated`` and left out of ``total``.
_FREE_OPS = {"_to_copy", "copy_", "clone", "view", "_unsafe_view", "reshape", "expand", "detach", "alias",
             "t", "transpose", "permute", "unsqueeze", "squeeze", "slice", "select", "lift_fresh", "empty_like",
             "empty", "zeros_like", "ones_like", "contiguous"}
_MATMUL_OPS = {"mm", "bmm", "addmm"}


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs a callable dispatched, per ATen op name (``total`` without repeats), and the repeated ones."""

    per_op: dict[str, int]
    repeated: int

    @property
    def total(self) -> int:
        return sum(self.per_op.values())


def _op_flops(func, args, out) -> int:
    name = func.__name__.split(".")[0]
    if torch.Tag.pointwise in func.tags:
        return sum(t.numel() for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor))
    if torch.Tag.reduction in func.tags:
        return args[0].numel()
    if name in _MATMUL_OPS:
        a, b = args[-2], args[-1]  # (…, M, K) @ (…, K, N); addmm's bias is args[0]
        return 2 * a.numel() * b.shape[-1]
    if name in _FREE_OPS:
        return 0
    raise ValueError(f"count_flops: op: expected a pointwise, reduction, matrix-product or data-movement op, "
                     f"got {func} (count a decomposed version of it)")


def count_flops(fn, *args, **kwargs) -> FlopCount:
    """Run ``fn(*args, **kwargs)`` under a dispatch mode and count its arithmetic (rules above). Meta tensors
    count without computing anything."""
    from torch.utils._python_dispatch import TorchDispatchMode

    per_op: dict[str, int] = {}
    seen: dict[tuple, object] = {}  # holds the inputs alive, so that their ids are not reused
    repeated = 0

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):
            nonlocal repeated
            out = func(*a, **(kw or {}))
            flops = _op_flops(func, a, out)
            if flops:
                key = (func, *(("t", id(x)) if isinstance(x, torch.Tensor) else ("v", repr(x)) for x in a),
                       repr(sorted((kw or {}).items())))
                if key in seen:
                    repeated += flops
                else:
                    seen[key] = a
                    per_op[func.__name__] = per_op.get(func.__name__, 0) + flops
            return out

    with Counter():
        fn(*args, **kwargs)
    return FlopCount(per_op, repeated)


@dataclasses.dataclass(frozen=True)
class Traffic:
    """The ATen operations a callable dispatched, in order, and the bytes of every tensor each one read or
    wrote (each dispatched operation is one pass over its tensors)."""

    ops: tuple[str, ...]
    bytes: int


def count_traffic(fn, *args, **kwargs) -> Traffic:
    """Run ``fn(*args, **kwargs)`` under a dispatch mode and count its operations and bytes. Meta tensors
    count without memory or arithmetic. Tensors a callable creates (``empty``) count as written."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops, nbytes = [], 0

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):
            nonlocal nbytes
            out = func(*a, **(kw or {}))
            ops.append(func.__name__)
            nbytes += sum(t.numel() * t.element_size()
                          for t in torch.utils._pytree.tree_leaves((a, kw, out)) if isinstance(t, torch.Tensor))
            return out

    with Counter():
        fn(*args, **kwargs)
    return Traffic(tuple(ops), nbytes)


# ----------------------------------------------------------------------------- where a norm sits
# Chapter 5 classifies a residual block's placement by running it (R02, R12, R24, R29).


def classify_placement(expr) -> str:
    """Run ``expr(norm, sublayer, x)`` on a row far from normalized and say where the norm sits:
    'pre' (the sublayer sees normalized input), 'post' (the output is normalized), 'branch' (the
    branch's output is normalized before the add), or 'none'."""
    torch.manual_seed(3)
    x = 5 + 3 * randn(4, 16, seed=3)
    lin = nn.Linear(16, 16).double()
    seen = []
    f = lambda v: seen.append(v) or 2 + lin(v)  # records what the sublayer sees
    out = expr(lambda v: ln(v, eps=0.0), f, x)  # ε = 0: the output is exactly normalized
    normalized = lambda v: bool(v.mean(-1).abs().max() < 1e-9 and (v.var(-1, correction=0) - 1).abs().max() < 1e-9)
    if normalized(out):
        return "post"
    if normalized(seen[0]):
        return "pre"
    return "branch" if normalized(out - x) else "none"
