"""The Triton kernels behind every row norm, and their host launchers.

One forward and one backward kernel serve LayerNorm, RMSNorm and residual-add + LayerNorm; three
compile-time flags pick the op (``CENTER``: subtract the mean; ``HAS_R``: add a residual first and
store the sum; ``HAS_DS``: add the sum's own gradient in the backward). The math is chapter 1's:

    forward   xhat = (x - mean) * rstd,   y = xhat * w + b,   rstd = 1 / sqrt(var + eps)
    backward  dx = rstd * (w*dy - mean(w*dy) - xhat * mean(w*dy * xhat))
              dw = sum over rows of dy * xhat,   db = sum over rows of dy

Statistics are float32 for every input dtype. A row that fits in registers is read once (two-pass
mean and variance on the held values); a wider row is read in chunks whose (count, mean, M2) are
merged with Chan's formula, then read again to write y. dw and db are reduced without atomics:
each backward program sums its own rows into one row of a float32 partials buffer, and a second
kernel adds those rows in a fixed order.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lnbook.kernels.heuristics import INTERPRETED, backward_programs, plan

# ---------------------------------------------------------------------------------- device code


@triton.jit
def _tile(rows, cols, M, N):
    """64-bit row indices (M·N may exceed 2^31), the row mask and the (BLOCK_M, BLOCK_N) mask."""
    row_mask = rows < M
    return rows.to(tl.int64), row_mask, row_mask[:, None] & (cols < N)[None, :]


# Compiled code rounds float32 -> bfloat16 to nearest even; Triton's CPU interpreter truncates
# (up to one ulp off), so under the interpreter the rounding is done on the bits.
_EMULATE_BF16_ROUNDING = tl.constexpr(INTERPRETED)


@triton.jit
def _round(v, dtype: tl.constexpr):
    """float32 -> dtype, rounded to nearest (ties to even)."""
    if dtype == tl.bfloat16:
        if _EMULATE_BF16_ROUNDING:
            bits = v.to(tl.uint32, bitcast=True)
            bits += 0x7FFF + ((bits >> 16) & 1)  # carry into the kept 16 bits when past half
            return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return v.to(dtype)


@triton.jit
def _load(PTR, rows, cols, stride, mask):
    return tl.load(PTR + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _load_input(X, R, S, rows, cols, stride_x, stride_r, stride_s, mask, HAS_R: tl.constexpr):
    """x as float32; with a residual, x + r rounded to the input dtype, also stored to S."""
    x = _load(X, rows, cols, stride_x, mask)
    if HAS_R:
        s = _round(x + _load(R, rows, cols, stride_r, mask), S.dtype.element_ty)
        tl.store(S + rows[:, None] * stride_s + cols[None, :], s, mask=mask)
        x = s.to(tl.float32)  # normalize the sum as stored, exactly as add + layer_norm would
    return x


@triton.jit
def _chunk_moments(x, mask, CENTER: tl.constexpr):
    """Per row of a tile: (count, mean, M2 = sum of squared deviations); mean 0 without CENTER."""
    count = tl.sum(mask.to(tl.float32), axis=1)
    if CENTER:
        mean = tl.sum(x, axis=1) / tl.maximum(count, 1.0)
        xc = tl.where(mask, x - mean[:, None], 0.0)
    else:
        mean = tl.zeros_like(count)
        xc = x
    return count, mean, tl.sum(xc * xc, axis=1)


@triton.jit
def _merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    # Chan, Golub & LeVeque (1979): the pairwise update of (count, mean, M2).
    n = n_a + n_b
    delta = mean_b - mean_a
    frac = n_b / tl.maximum(n, 1.0)
    return n, mean_a + delta * frac, m2_a + m2_b + delta * delta * n_a * frac


@triton.jit
def _vector(PTR, cols, N):
    return tl.load(PTR + cols, mask=cols < N, other=0.0).to(tl.float32)


@triton.jit
def _store_y(Y, W, B, rows, cols, stride_y, mask, N, x, mean, rstd, HAS_W: tl.constexpr, HAS_B: tl.constexpr):
    y = (x - mean[:, None]) * rstd[:, None]
    if HAS_W:
        y = y * _vector(W, cols, N)[None, :]
    if HAS_B:
        y = y + _vector(B, cols, N)[None, :]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], _round(y, Y.dtype.element_ty), mask=mask)


@triton.jit
def _forward_kernel(
    X, R, S, Y, W, B, MEAN, RSTD,
    stride_x, stride_r, stride_s, stride_y,
    M, N, eps,
    CENTER: tl.constexpr, HAS_R: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ONE_BLOCK: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    rows64 = rows.to(tl.int64)
    row_mask = rows < M
    if ONE_BLOCK:  # the row is held in registers: one read, two-pass statistics
        cols = tl.arange(0, BLOCK_N)
        rows64, row_mask, mask = _tile(rows, cols, M, N)
        x = _load_input(X, R, S, rows64, cols, stride_x, stride_r, stride_s, mask, HAS_R)
        count, mean, m2 = _chunk_moments(x, mask, CENTER)
    else:  # chunks of BLOCK_N merged with Chan's formula; a second read writes y
        count = tl.zeros([BLOCK_M], dtype=tl.float32)
        mean = tl.zeros([BLOCK_M], dtype=tl.float32)
        m2 = tl.zeros([BLOCK_M], dtype=tl.float32)
        for start in range(0, N, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            rows64, row_mask, mask = _tile(rows, cols, M, N)
            x = _load_input(X, R, S, rows64, cols, stride_x, stride_r, stride_s, mask, HAS_R)
            n_b, mean_b, m2_b = _chunk_moments(x, mask, CENTER)
            count, mean, m2 = _merge(count, mean, m2, n_b, mean_b, m2_b)
    rstd = 1.0 / tl.sqrt(m2 / N + eps)
    if CENTER:
        tl.store(MEAN + rows64, mean, mask=row_mask)
    tl.store(RSTD + rows64, rstd, mask=row_mask)
    if ONE_BLOCK:
        _store_y(Y, W, B, rows64, cols, stride_y, mask, N, x, mean, rstd, HAS_W, HAS_B)
    else:
        for start in range(0, N, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            rows64, row_mask, mask = _tile(rows, cols, M, N)
            if HAS_R:  # read the stored sum: one tensor instead of two
                x = _load(S, rows64, cols, stride_s, mask)
            else:
                x = _load(X, rows64, cols, stride_x, mask)
            _store_y(Y, W, B, rows64, cols, stride_y, mask, N, x, mean, rstd, HAS_W, HAS_B)


@triton.jit
def _grad_tile(X, DY, W, MEAN, RSTD, rows, row_mask, cols, mask, stride_x, stride_dy, N,
               CENTER: tl.constexpr, HAS_W: tl.constexpr):
    """(xhat, w·dy, dy, rstd) for one tile, float32, zero outside the mask."""
    rstd = tl.load(RSTD + rows, mask=row_mask, other=0.0)
    x = _load(X, rows, cols, stride_x, mask)
    if CENTER:
        x = x - tl.load(MEAN + rows, mask=row_mask, other=0.0)[:, None]
    xhat = tl.where(mask, x * rstd[:, None], 0.0)
    dy = _load(DY, rows, cols, stride_dy, mask)
    wdy = dy
    if HAS_W:
        wdy = dy * _vector(W, cols, N)[None, :]
    return xhat, wdy, dy, rstd


@triton.jit
def _store_dx(DX, DS, rows, cols, stride_dx, stride_ds, mask, xhat, wdy, rstd, c1, c2, HAS_DS: tl.constexpr):
    # c1 = mean(w·dy · xhat), c2 = mean(w·dy) (0 for RMSNorm): the two projections of chapter 1.
    dx = (wdy - xhat * c1[:, None] - c2[:, None]) * rstd[:, None]
    if HAS_DS:  # the residual sum's own gradient flows straight through
        dx += _load(DS, rows, cols, stride_ds, mask)
    tl.store(DX + rows[:, None] * stride_dx + cols[None, :], _round(dx, DX.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(
    X, W, DY, DS, DX, MEAN, RSTD, DW_PART, DB_PART,
    stride_x, stride_dy, stride_ds, stride_dx,
    M, N, rows_per_program,
    CENTER: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_DS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ONE_BLOCK: tl.constexpr,
):
    # Program p owns rows [p·rows_per_program, (p+1)·rows_per_program) and row p of the partials.
    pid = tl.program_id(0)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    part = pid.to(tl.int64) * N
    if ONE_BLOCK:
        cols = tl.arange(0, BLOCK_N)
        dw = tl.zeros([BLOCK_N], dtype=tl.float32)
        db = tl.zeros([BLOCK_N], dtype=tl.float32)
        for start in range(row_start, row_end, BLOCK_M):
            rows64, row_mask, mask = _tile(start + tl.arange(0, BLOCK_M), cols, row_end, N)
            xhat, wdy, dy, rstd = _grad_tile(X, DY, W, MEAN, RSTD, rows64, row_mask, cols, mask,
                                             stride_x, stride_dy, N, CENTER, HAS_W)
            c1 = tl.sum(xhat * wdy, axis=1) / N
            c2 = tl.zeros_like(c1)
            if CENTER:
                c2 = tl.sum(wdy, axis=1) / N
            _store_dx(DX, DS, rows64, cols, stride_dx, stride_ds, mask, xhat, wdy, rstd, c1, c2, HAS_DS)
            dw += tl.sum(dy * xhat, axis=0)
            db += tl.sum(dy, axis=0)
        if HAS_W:
            tl.store(DW_PART + part + cols, dw, mask=cols < N)
        if HAS_B:
            tl.store(DB_PART + part + cols, db, mask=cols < N)
    else:  # two sweeps over the row's chunks: the coefficients, then dx and the partials
        for start in range(row_start, row_end, BLOCK_M):
            rows = start + tl.arange(0, BLOCK_M)
            c1 = tl.zeros([BLOCK_M], dtype=tl.float32)
            c2 = tl.zeros([BLOCK_M], dtype=tl.float32)
            for col_start in range(0, N, BLOCK_N):
                cols = col_start + tl.arange(0, BLOCK_N)
                rows64, row_mask, mask = _tile(rows, cols, row_end, N)
                xhat, wdy, dy, rstd = _grad_tile(X, DY, W, MEAN, RSTD, rows64, row_mask, cols, mask,
                                                 stride_x, stride_dy, N, CENTER, HAS_W)
                c1 += tl.sum(xhat * wdy, axis=1)
                if CENTER:
                    c2 += tl.sum(wdy, axis=1)
            c1 = c1 / N
            c2 = c2 / N
            for col_start in range(0, N, BLOCK_N):
                cols = col_start + tl.arange(0, BLOCK_N)
                rows64, row_mask, mask = _tile(rows, cols, row_end, N)
                xhat, wdy, dy, rstd = _grad_tile(X, DY, W, MEAN, RSTD, rows64, row_mask, cols, mask,
                                                 stride_x, stride_dy, N, CENTER, HAS_W)
                _store_dx(DX, DS, rows64, cols, stride_dx, stride_ds, mask, xhat, wdy, rstd, c1, c2, HAS_DS)
                # This program alone touches its partials row, so read-add-write is race free.
                if HAS_W:
                    acc = tl.load(DW_PART + part + cols, mask=cols < N, other=0.0)
                    tl.store(DW_PART + part + cols, acc + tl.sum(dy * xhat, axis=0), mask=cols < N)
                if HAS_B:
                    acc = tl.load(DB_PART + part + cols, mask=cols < N, other=0.0)
                    tl.store(DB_PART + part + cols, acc + tl.sum(dy, axis=0), mask=cols < N)


@triton.jit
def _sum_partials_kernel(PART, OUT, P, N, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """OUT[n] = sum over p of PART[p, n], always in the order p = 0, 1, ..."""
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, P, BLOCK_P):
        rows64, row_mask, mask = _tile(start + tl.arange(0, BLOCK_P), cols, P, N)
        acc += tl.sum(_load(PART, rows64, cols, N, mask), axis=0)
    tl.store(OUT + cols, _round(acc, OUT.dtype.element_ty), mask=cols < N)


# ------------------------------------------------------------------------------------ host code


def forward(x, weight, bias, residual, eps: float, center: bool):
    """Normalize the rows of 2-D ``x`` (last dim contiguous); returns ``(y, s, mean, rstd)``.

    ``s = x + residual`` (None without a residual); ``mean`` is None when ``center`` is False.
    ``weight`` and ``bias`` are None or 1-D of length N.
    """
    M, N = x.shape
    p = plan(M, N, "forward")
    y = torch.empty_like(x, memory_format=torch.contiguous_format)  # (M, N)
    s = None if residual is None else torch.empty_like(y)  # (M, N)
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)  # (M,)
    mean = torch.empty_like(rstd) if center else None  # (M,)
    if M == 0:
        return y, s, mean, rstd
    dummy = x  # pointer for absent tensors; their flags keep the kernel from touching it
    r_or_x = dummy if residual is None else residual
    _forward_kernel[(triton.cdiv(M, p.block_m),)](
        x, r_or_x, dummy if s is None else s, y,
        dummy if weight is None else weight, dummy if bias is None else bias,
        rstd if mean is None else mean, rstd,
        x.stride(0), r_or_x.stride(0), y.stride(0), y.stride(0),
        M, N, eps,
        CENTER=center, HAS_R=residual is not None, HAS_W=weight is not None, HAS_B=bias is not None,
        BLOCK_M=p.block_m, BLOCK_N=p.block_n, ONE_BLOCK=p.one_block, num_warps=p.num_warps,
    )
    return y, s, mean, rstd


def backward(dy, x, weight, bias_dtype, mean, rstd, ds=None):
    """Gradients of :func:`forward` for 2-D ``dy`` and the normalized input ``x`` (the sum ``s``
    with a residual); ``ds`` is the gradient of ``s``; ``bias_dtype`` is None without a bias.
    Returns ``(dx, dw, db)``, None for an absent weight or bias.
    """
    M, N = x.shape
    if M == 0:  # no rows: no launch; the parameter gradients are sums over nothing
        zeros = lambda dtype: None if dtype is None else torch.zeros(N, dtype=dtype, device=x.device)  # noqa: E731
        return torch.empty_like(x), zeros(None if weight is None else weight.dtype), zeros(bias_dtype)
    p = plan(M, N, "backward")
    programs = backward_programs(M, p.block_m, x.device)
    blocks_per_program = triton.cdiv(triton.cdiv(M, p.block_m), programs)
    programs = triton.cdiv(triton.cdiv(M, p.block_m), blocks_per_program)  # no idle programs
    dx = torch.empty_like(x, memory_format=torch.contiguous_format)  # (M, N)
    # (programs, N) float32 partial sums, zeroed: the looped path adds into them.
    partials = lambda wanted: rstd.new_zeros(programs, N) if wanted else None  # noqa: E731
    dw_part, db_part = partials(weight is not None), partials(bias_dtype is not None)
    dummy = rstd
    _backward_kernel[(programs,)](
        x, dummy if weight is None else weight, dy, dy if ds is None else ds, dx,
        rstd if mean is None else mean, rstd,
        dummy if dw_part is None else dw_part, dummy if db_part is None else db_part,
        x.stride(0), dy.stride(0), dy.stride(0) if ds is None else ds.stride(0), dx.stride(0),
        M, N, blocks_per_program * p.block_m,
        CENTER=mean is not None, HAS_W=weight is not None, HAS_B=bias_dtype is not None, HAS_DS=ds is not None,
        BLOCK_M=p.block_m, BLOCK_N=p.block_n, ONE_BLOCK=p.one_block, num_warps=p.num_warps,
    )
    dw = None if weight is None else sum_partials(dw_part, weight.dtype)
    db = None if bias_dtype is None else sum_partials(db_part, bias_dtype)
    return dx, dw, db


def sum_partials(part, dtype: torch.dtype):
    """Column sums of the (P, N) float32 partials, in a fixed order, cast to ``dtype``."""
    P, N = part.shape
    out = torch.empty(N, dtype=dtype, device=part.device)  # (N,)
    block_n = min(1024, triton.next_power_of_2(N))
    block_p = min(64, triton.next_power_of_2(P))
    _sum_partials_kernel[(triton.cdiv(N, block_n),)](part, out, P, N, BLOCK_P=block_p, BLOCK_N=block_n)
    return out
