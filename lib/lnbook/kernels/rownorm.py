"""The Triton kernels behind every row norm, and their host launchers.

Forward and backward kernels serve LayerNorm, RMSNorm and residual-add + LayerNorm; three
compile-time flags pick the op (``CENTER``: subtract the mean; ``HAS_R``: add a residual first and
store the sum; ``HAS_DS``: add the sum's own gradient in the backward), set from :data:`OPS`, the
one table of the ops and their flags. The math is chapter 1's:

    forward   xhat = (x - mean) * rstd,   y = xhat * w + b,   rstd = 1 / sqrt(var + eps)
    backward  dx = rstd * (w*dy - mean(w*dy) - xhat * mean(w*dy * xhat))
              dw = sum over rows of dy * xhat,   db = sum over rows of dy

Statistics are float32 for every input dtype. A row that fits in registers is read once (two-pass
mean and variance on the held values). A wider row is split across programs, one chunk each:
their (count, mean, M2) are combined with Chan's formula and each chunk is read again, from L2,
to write y (the ``_split_*`` kernels; a program takes its logical index from an atomic ticket
and waits on counters only for programs with lower tickets, which have started). dW and dB are
reduced without atomic float adds: each backward program sums its own rows (or, split, a
sub-range of its group's rows) in registers and writes them once, as one row of a float32
partials buffer; a second kernel adds those rows in a fixed order, so the bits never vary.

Host code describes each launch as a :class:`Launch` (kernel, grid, arguments by the kernel's own
names) before running it, so :mod:`lnbook.kernels.aot` compiles and :mod:`lnbook.kernels.traffic`
counts exactly the launches that run. To trace one op: :mod:`lnbook.kernels.ops` (argument checks,
reshape to rows) → :func:`forward` / :func:`backward` here → the kernels above.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from lnbook.kernels import heuristics
from lnbook.kernels.runtime import INTERPRETED

# ------------------------------------------------------------------------------------- the ops


@dataclass(frozen=True)
class OpFlags:
    """What distinguishes an op; each flag becomes a compile-time constant of the kernels."""

    center: bool  # CENTER: subtract the row mean (LayerNorm) or not (RMSNorm)
    residual: bool  # HAS_R / HAS_DS: add a residual first and store the sum; add the sum's gradient
    bias: bool  # the op takes a bias (HAS_B when one is given)


#: The one list of the ops (their functions are in :mod:`lnbook.kernels.ops`), read by the launchers
#: below, :mod:`lnbook.kernels.aot` and :mod:`lnbook.bench`.
OPS = {
    "layer_norm": OpFlags(center=True, residual=False, bias=True),
    "rms_norm": OpFlags(center=False, residual=False, bias=False),
    "add_layer_norm": OpFlags(center=True, residual=True, bias=True),
}

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
def _chunk_moments(x, mask, count, CENTER: tl.constexpr):
    """Per row of a tile holding ``count`` valid columns: (mean, M2 = sum of squared deviations);
    mean 0 without CENTER. The count is known on the host side (N or a chunk's width): no reduction."""
    if CENTER:
        mean = tl.sum(x, axis=1) / count
        xc = tl.where(mask, x - mean[:, None], 0.0)
    else:
        mean = tl.zeros([x.shape[0]], dtype=tl.float32)
        xc = x
    return mean, tl.sum(xc * xc, axis=1)


@triton.jit
def _vector(PTR, cols, N, PRESENT: tl.constexpr):
    """A length-N parameter as float32 (0 where absent or beyond N)."""
    if PRESENT:
        return tl.load(PTR + cols, mask=cols < N, other=0.0).to(tl.float32)
    return tl.zeros(cols.shape, dtype=tl.float32)


@triton.jit
def _store_y(Y, rows, cols, stride_y, mask, x, mean, rstd, w, b, HAS_W: tl.constexpr, HAS_B: tl.constexpr):
    """y = (x − mean)·rstd·w + b for one (rows, cols) tile, computed in float32, rounded to Y's dtype."""
    y = (x - mean[:, None]) * rstd[:, None]
    if HAS_W:
        y = y * w[None, :]
    if HAS_B:
        y = y + b[None, :]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], _round(y, Y.dtype.element_ty), mask=mask)


@triton.jit
def _forward_kernel(
    X, R, S, Y, W, B, MEAN, RSTD,
    stride_x, stride_r, stride_s, stride_y,
    M, N, eps,
    CENTER: tl.constexpr, HAS_R: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Normalize BLOCK_M rows per program, each held whole in registers (BLOCK_N ≥ N).

    X (M, N) input, float16/bfloat16/float32, rows ``stride_x`` apart, last dim contiguous.
    R (M, N) residual, X's dtype, rows ``stride_r`` apart; read only with HAS_R.
    S (M, N) output x + r rounded to X's dtype, rows ``stride_s`` apart; written only with HAS_R.
    Y (M, N) output, X's dtype, rows ``stride_y`` apart.
    W, B (N,) weight and bias, X's dtype or float32; read only with HAS_W, HAS_B.
    MEAN, RSTD (M,) float32 outputs: row mean (written only with CENTER) and 1/sqrt(var + eps).
    M, N rows and normalized width (int32); eps float32 added to the variance.
    CENTER, HAS_R, HAS_W, HAS_B the op's flags; BLOCK_M rows and BLOCK_N columns per tile.
    Pointers of absent tensors are never dereferenced (their flags are False).
    """
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    cols = tl.arange(0, BLOCK_N)
    w = _vector(W, cols, N, HAS_W)  # parameters first: their loads overlap the reductions
    b = _vector(B, cols, N, HAS_B)
    rows64, row_mask, mask = _tile(rows, cols, M, N)
    x = _load_input(X, R, S, rows64, cols, stride_x, stride_r, stride_s, mask, HAS_R)
    mean, m2 = _chunk_moments(x, mask, N, CENTER)  # two-pass on the held row
    rstd = 1.0 / tl.sqrt(m2 / N + eps)
    if CENTER:
        tl.store(MEAN + rows64, mean, mask=row_mask)
    tl.store(RSTD + rows64, rstd, mask=row_mask)
    _store_y(Y, rows64, cols, stride_y, mask, x, mean, rstd, w, b, HAS_W, HAS_B)


@triton.jit
def _ticket(TICKET):
    """This program's logical index: how many programs of the launch took a ticket before it.

    CUDA does not promise that blocks start in index order, so a program that waits for
    lower-numbered ones by ``program_id`` may wait for one that cannot start until the waiter
    ends. A ticket is taken when the program runs: every lower ticket belongs to a program that
    has started, and a started program is resident and finishes (CUB's Onesweep does the same).
    One thread takes it; Triton hands the scalar result to every thread. Under the interpreter,
    which runs programs in order, the ticket equals ``program_id``."""
    return tl.atomic_add(TICKET, 1)


@triton.jit
def _split_ids(pid, first, second):
    """(group, in the second phase?, index within the phase) of the program with logical index
    ``pid`` in a split launch, whose programs come group by group: ``first`` programs of phase
    one, then ``second`` of phase two."""
    k = pid % (first + second)
    in_second = k >= first
    return pid // (first + second), in_second, tl.where(in_second, k - first, k)


@triton.jit
def _arrive(COUNTER):
    tl.debug_barrier()  # every thread's stores of this program happen before the count publishes them
    tl.atomic_add(COUNTER, 1)


@triton.jit
def _wait(COUNTER, expected):
    """Spin until ``expected`` programs have counted themselves. Those hold lower tickets
    (:func:`_ticket`), so they have started and are running or done (under the interpreter,
    which runs programs in order, done): the wait ends whatever order the blocks start in."""
    arrived = tl.atomic_add(COUNTER, 0)
    while arrived < expected:
        arrived = tl.atomic_add(COUNTER, 0)
    tl.debug_barrier()


@triton.jit
def _combine(MOMENTS, row64, chunks, N, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """Mean and M2 of a row from its chunks' (mean, M2): mean = Σ n_c mean_c / N and
    M2 = Σ M2_c + Σ n_c (mean_c − mean)², the chunks combined at once in a fixed order."""
    c = tl.arange(0, BLOCK_C)
    present = c < chunks
    slot = MOMENTS + (row64 * chunks + c) * 2
    mean_c = tl.load(slot, mask=present, other=0.0, cache_modifier=".cg")  # .cg: from L2, not a stale L1
    m2_c = tl.load(slot + 1, mask=present, other=0.0, cache_modifier=".cg")
    n_c = tl.where(present, tl.minimum(N - c * BLOCK_N, BLOCK_N), 0).to(tl.float32)
    mean = tl.sum(n_c * mean_c, axis=0) / N
    delta = mean_c - mean
    return mean, tl.sum(m2_c, axis=0) + tl.sum(n_c * delta * delta, axis=0)


@triton.jit
def _split_forward_kernel(
    X, R, S, Y, W, B, MEAN, RSTD, MOMENTS, ARRIVED, TICKET,
    stride_x, stride_r, stride_s, stride_y,
    M, N, eps, chunks, group_rows,
    CENTER: tl.constexpr, HAS_R: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Rows wider than a block, each split across ``chunks`` programs of BLOCK_N columns.

    Programs come group by group (``group_rows`` rows) in ticket order (:func:`_ticket`): first
    a *statistics* program per (row,
    chunk), which stores its chunk's (mean, M2) and counts itself in ARRIVED[row]; then a
    *normalize* program per (row, chunk), which waits for its row's count, combines the moments
    and reads its chunk again to write y. A group's rows are sized to stay in L2 between the two
    reads (:func:`lnbook.kernels.heuristics.split_plan`), so x comes from DRAM once.

    X, R, S, Y, W, B, MEAN, RSTD, strides, M, N, eps and flags as in :func:`_forward_kernel`.
    MOMENTS (M, chunks, 2) float32 scratch; ARRIVED (M,) int32 counters and TICKET (1,) int32,
    zero at launch.
    chunks = ⌈N / BLOCK_N⌉ and group_rows int32; BLOCK_C a power of two ≥ chunks.
    """
    per_phase = group_rows * chunks
    group, normalize, k = _split_ids(_ticket(TICKET), per_phase, per_phase)
    row = group * group_rows + k // chunks
    chunk = k % chunks
    if row < M:
        cols = chunk * BLOCK_N + tl.arange(0, BLOCK_N)
        rows64, row_mask, mask = _tile(row + tl.arange(0, 1), cols, M, N)  # a (1, BLOCK_N) tile
        if normalize:
            _wait(ARRIVED + row, chunks)
            mean, m2 = _combine(MOMENTS, row.to(tl.int64), chunks, N, BLOCK_N, BLOCK_C)  # mean 0 for RMSNorm
            rstd = 1.0 / tl.sqrt(m2 / N + eps)
            mean = tl.zeros([1], dtype=tl.float32) + mean  # (1,), as the helpers expect
            rstd = tl.zeros([1], dtype=tl.float32) + rstd
            if chunk == 0:
                if CENTER:
                    tl.store(MEAN + rows64, mean, mask=row_mask)
                tl.store(RSTD + rows64, rstd, mask=row_mask)
            if HAS_R:  # read the stored sum: one tensor instead of two
                x = _load(S, rows64, cols, stride_s, mask)
            else:
                x = _load(X, rows64, cols, stride_x, mask)
            w = _vector(W, cols, N, HAS_W)
            b = _vector(B, cols, N, HAS_B)
            _store_y(Y, rows64, cols, stride_y, mask, x, mean, rstd, w, b, HAS_W, HAS_B)
        else:
            x = _load_input(X, R, S, rows64, cols, stride_x, stride_r, stride_s, mask, HAS_R)
            n_b = tl.minimum(N - chunk * BLOCK_N, BLOCK_N).to(tl.float32)
            mean_b, m2_b = _chunk_moments(x, mask, n_b, CENTER)
            slot = MOMENTS + (rows64 * chunks + chunk) * 2
            tl.store(slot, mean_b, mask=row_mask)
            tl.store(slot + 1, m2_b, mask=row_mask)
            _arrive(ARRIVED + row)


@triton.jit
def _grad_tile(X, DY, MEAN, RSTD, rows, row_mask, cols, mask, stride_x, stride_dy, w,
               CENTER: tl.constexpr, HAS_W: tl.constexpr):
    """(xhat, w·dy, dy, rstd) for one tile, float32, zero outside the mask; w already loaded."""
    rstd = tl.load(RSTD + rows, mask=row_mask, other=0.0)
    x = _load(X, rows, cols, stride_x, mask)
    if CENTER:
        x = x - tl.load(MEAN + rows, mask=row_mask, other=0.0)[:, None]
    xhat = tl.where(mask, x * rstd[:, None], 0.0)
    dy = _load(DY, rows, cols, stride_dy, mask)
    wdy = dy
    if HAS_W:
        wdy = dy * w[None, :]
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
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    """For rows that fit one block (BLOCK_N ≥ N): dx for the rows [p·rows_per_program,
    (p+1)·rows_per_program) of program p, and their dw, db sums as row p of the partials.

    X (M, N) the normalized input (the sum s for add + LayerNorm), rows ``stride_x`` apart.
    W (N,) weight, read only with HAS_W. DY (M, N) upstream gradient, rows ``stride_dy`` apart.
    DS (M, N) gradient of the sum s, rows ``stride_ds`` apart; read only with HAS_DS.
    DX (M, N) output, X's dtype, rows ``stride_dx`` apart.
    MEAN, RSTD (M,) float32 saved by the forward (MEAN read only with CENTER).
    DW_PART, DB_PART (programs, N) float32 outputs, written only with HAS_W, HAS_B.
    M, N, rows_per_program int32; flags as in the forward; NUM_STAGES loads in flight.
    """
    pid = tl.program_id(0)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    part = pid.to(tl.int64) * N
    cols = tl.arange(0, BLOCK_N)
    w = _vector(W, cols, N, HAS_W)  # hoisted: one load for all of the program's rows
    # (BLOCK_M, BLOCK_N) tiles of dw, db: summed across rows once, at the end, not every tile.
    dw = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    # The next row tile's loads are issued while this one reduces (software pipelining).
    for start in tl.range(row_start, row_end, BLOCK_M, num_stages=NUM_STAGES):
        rows64, row_mask, mask = _tile(start + tl.arange(0, BLOCK_M), cols, row_end, N)
        xhat, wdy, dy, rstd = _grad_tile(X, DY, MEAN, RSTD, rows64, row_mask, cols, mask,
                                         stride_x, stride_dy, w, CENTER, HAS_W)
        c1 = tl.sum(xhat * wdy, axis=1) / N
        c2 = tl.zeros_like(c1)
        if CENTER:
            c2 = tl.sum(wdy, axis=1) / N
        _store_dx(DX, DS, rows64, cols, stride_dx, stride_ds, mask, xhat, wdy, rstd, c1, c2, HAS_DS)
        dw += dy * xhat
        db += dy
    if HAS_W:
        tl.store(DW_PART + part + cols, tl.sum(dw, axis=0), mask=cols < N)
    if HAS_B:
        tl.store(DB_PART + part + cols, tl.sum(db, axis=0), mask=cols < N)


@triton.jit
def _chunk_total(PTR, present):
    return tl.sum(tl.load(PTR, mask=present, other=0.0, cache_modifier=".cg"), axis=0)  # .cg: L2, not a stale L1


@triton.jit
def _split_backward_kernel(
    X, W, DY, DS, DX, MEAN, RSTD, SUMS, ARRIVED, TICKET, DW_PART, DB_PART,
    stride_x, stride_dy, stride_ds, stride_dx,
    M, N, chunks, group_rows, parts, part_rows,
    CENTER: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_DS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    """The backward of :func:`_split_forward_kernel`'s rows, in the same grouped layout.

    Per group of ``group_rows`` rows, in ticket order (:func:`_ticket`): first a program per
    (row, chunk) that stores its chunk's sums of w·dy·xhat and w·dy in SUMS and counts itself in
    ARRIVED of its row's sub-range (``parts`` sub-ranges of ``part_rows`` rows per group); then a
    *column* program per (sub-range, chunk) that waits for its sub-range, and for each of its rows
    in order combines the sums into c1, c2 (fixed order), reads its chunk of x and dy again (from
    L2), writes dx, and adds dy·xhat and dy into dw, db held in registers: row ``group · parts +
    sub-range`` of the partials (zeros for a sub-range past M).

    X, W, DY, DS, DX, MEAN, RSTD, strides and flags as in :func:`_backward_kernel`.
    SUMS (M, chunks, 2) float32 scratch; ARRIVED (groups · parts,) int32 counters and TICKET (1,)
    int32, zero at launch; DW_PART, DB_PART (groups · parts, N) float32 outputs; chunks,
    group_rows, parts, part_rows int32; BLOCK_C ≥ chunks; NUM_STAGES as in :func:`_backward_kernel`.
    """
    group, columns, k = _split_ids(_ticket(TICKET), group_rows * chunks, parts * chunks)
    first_row = group * group_rows
    if columns:
        part = k // chunks
        start = first_row + part * part_rows
        end = tl.minimum(tl.minimum(start + part_rows, first_row + group_rows), M)
        cols = (k % chunks) * BLOCK_N + tl.arange(0, BLOCK_N)
        w = _vector(W, cols, N, HAS_W)
        dw = tl.zeros([BLOCK_N], dtype=tl.float32)
        db = tl.zeros([BLOCK_N], dtype=tl.float32)
        _wait(ARRIVED + group * parts + part, tl.maximum(end - start, 0) * chunks)
        c = tl.arange(0, BLOCK_C)
        for row in tl.range(start, end, num_stages=NUM_STAGES):
            rows64, row_mask, mask = _tile(row + tl.arange(0, 1), cols, M, N)
            slot = SUMS + (rows64 * chunks + c) * 2  # (BLOCK_C,)
            c1 = tl.zeros([1], dtype=tl.float32) + _chunk_total(slot, c < chunks) / N
            c2 = tl.zeros([1], dtype=tl.float32)
            if CENTER:
                c2 += _chunk_total(slot + 1, c < chunks) / N
            xhat, wdy, dy, rstd = _grad_tile(X, DY, MEAN, RSTD, rows64, row_mask, cols, mask,
                                             stride_x, stride_dy, w, CENTER, HAS_W)
            _store_dx(DX, DS, rows64, cols, stride_dx, stride_ds, mask, xhat, wdy, rstd, c1, c2, HAS_DS)
            dw += tl.sum(dy * xhat, axis=0)
            db += tl.sum(dy, axis=0)
        out = (group * parts + part).to(tl.int64) * N
        if HAS_W:
            tl.store(DW_PART + out + cols, dw, mask=cols < N)
        if HAS_B:
            tl.store(DB_PART + out + cols, db, mask=cols < N)
    else:
        row = first_row + k // chunks
        if row < M:
            cols = (k % chunks) * BLOCK_N + tl.arange(0, BLOCK_N)
            rows64, row_mask, mask = _tile(row + tl.arange(0, 1), cols, M, N)
            w = _vector(W, cols, N, HAS_W)
            xhat, wdy, dy, rstd = _grad_tile(X, DY, MEAN, RSTD, rows64, row_mask, cols, mask,
                                             stride_x, stride_dy, w, CENTER, HAS_W)
            slot = SUMS + (rows64 * chunks + k % chunks) * 2
            tl.store(slot, tl.sum(xhat * wdy, axis=1), mask=row_mask)
            tl.store(slot + 1, tl.sum(wdy, axis=1), mask=row_mask)  # read only with CENTER
            _arrive(ARRIVED + group * parts + (k // chunks) // part_rows)


@triton.jit
def _sum_columns(PART, OUT, cols, P, N, BLOCK_P: tl.constexpr):
    """OUT[cols] = sum over p of PART[p, cols], always in the order p = 0, 1, ..."""
    acc = tl.zeros(cols.shape, dtype=tl.float32)
    for start in range(0, P, BLOCK_P):
        rows64, row_mask, mask = _tile(start + tl.arange(0, BLOCK_P), cols, P, N)
        acc += tl.sum(_load(PART, rows64, cols, N, mask), axis=0)
    tl.store(OUT + cols, _round(acc, OUT.dtype.element_ty), mask=cols < N)


@triton.jit
def _sum_partials_kernel(DW_PART, DB_PART, DW, DB, P, N,
                         HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """dw and db in one launch: grid (column blocks, HAS_W + HAS_B); axis 1 picks dw (0) or db.

    DW_PART, DB_PART (P, N) float32 partials of the backward programs; DW, DB (N,) outputs in the
    parameters' dtypes; P, N int32; BLOCK_P partial rows per step, BLOCK_N columns per program.
    """
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    if HAS_W:
        if HAS_B:
            if tl.program_id(1) == 0:
                _sum_columns(DW_PART, DW, cols, P, N, BLOCK_P)
            else:
                _sum_columns(DB_PART, DB, cols, P, N, BLOCK_P)
        else:
            _sum_columns(DW_PART, DW, cols, P, N, BLOCK_P)
    else:
        _sum_columns(DB_PART, DB, cols, P, N, BLOCK_P)


# ------------------------------------------------------------------------------------ host code


@dataclass
class Launch:
    """One kernel launch: the kernel, its grid, and every argument by the kernel's own name."""

    kernel: triton.runtime.JITFunction
    grid: tuple[int, ...]
    args: dict
    num_warps: int

    def run(self) -> None:
        self.kernel[self.grid](**self.args, num_warps=self.num_warps)


def _counters(n: int, device) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.int32, device=device)  # (n,) int32, zero at every launch


def _dummy_for(t, dummy):
    return dummy if t is None else t  # a pointer for an absent tensor; its flag keeps it untouched


def forward_launches(x, weight, bias, residual, eps: float, op: str, max_fused_n=None):
    """Outputs ``(y, s, mean, rstd)`` (allocated, not yet computed) and the launches that fill them.

    ``x`` and ``residual`` are 2-D (M, N) with a contiguous last dim; ``weight``, ``bias`` None or (N,).
    """
    M, N = x.shape
    flags = OPS[op]
    p = heuristics.plan(M, N, "forward", max_fused_n)
    y = torch.empty_like(x, memory_format=torch.contiguous_format)  # (M, N)
    s = torch.empty_like(y) if flags.residual else None  # (M, N)
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)  # (M,)
    mean = torch.empty_like(rstd) if flags.center else None  # (M,)
    if M == 0:
        return (y, s, mean, rstd), []
    r = _dummy_for(residual, x)
    args = dict(
        X=x, R=r, S=_dummy_for(s, x), Y=y, W=_dummy_for(weight, x), B=_dummy_for(bias, x),
        MEAN=_dummy_for(mean, rstd), RSTD=rstd,
        stride_x=x.stride(0), stride_r=r.stride(0), stride_s=y.stride(0), stride_y=y.stride(0),
        M=M, N=N, eps=eps,
        CENTER=flags.center, HAS_R=flags.residual, HAS_W=weight is not None, HAS_B=bias is not None,
    )
    if p.one_block:
        args |= {"BLOCK_M": p.block_m, "BLOCK_N": p.block_n}
        return (y, s, mean, rstd), [Launch(_forward_kernel, (triton.cdiv(M, p.block_m),), args, p.num_warps)]
    reads = 2 if flags.residual else 1  # x (and the residual) in the first phase; y (and s) written
    split = heuristics.split_plan(M, N, x.element_size(), window=3 * reads)  # + the next group's first reads
    args |= {"MOMENTS": rstd.new_empty(M, split.chunks, 2), "ARRIVED": _counters(M, x.device), "TICKET": _counters(1, x.device),
             "chunks": split.chunks, "group_rows": split.group_rows, "BLOCK_N": split.block_n, "BLOCK_C": split.block_c}
    grid = (split.groups * 2 * split.group_rows * split.chunks,)
    return (y, s, mean, rstd), [Launch(_split_forward_kernel, grid, args, p.num_warps)]


def forward(x, weight, bias, residual, eps: float, op: str):
    """Normalize the rows of 2-D ``x`` (last dim contiguous) as ``op`` does; returns ``(y, s, mean, rstd)``.

    ``s = x + residual`` (None without a residual); ``mean`` is None for RMSNorm.
    """
    outputs, launches = forward_launches(x, weight, bias, residual, eps, op)
    for launch in launches:
        launch.run()
    return outputs


def backward_launches(dy, x, weight, bias_dtype, mean, rstd, ds, slots: int, max_fused_n=None):
    """Outputs ``(dx, dw, db)`` (allocated) and the launches that fill them; see :func:`backward`.

    ``slots`` is :func:`lnbook.kernels.heuristics.program_slots` of the device.
    """
    M, N = x.shape
    p = heuristics.plan(M, N, "backward", max_fused_n)
    dx = torch.empty_like(x, memory_format=torch.contiguous_format)  # (M, N)
    dw = None if weight is None else torch.empty(N, dtype=weight.dtype, device=x.device)  # (N,)
    db = None if bias_dtype is None else torch.empty(N, dtype=bias_dtype, device=x.device)  # (N,)
    dummy = rstd
    args = dict(
        X=x, W=_dummy_for(weight, dummy), DY=dy, DS=_dummy_for(ds, dy), DX=dx,
        MEAN=_dummy_for(mean, rstd), RSTD=rstd,
        stride_x=x.stride(0), stride_dy=dy.stride(0), stride_ds=_dummy_for(ds, dy).stride(0), stride_dx=dx.stride(0),
        M=M, N=N, CENTER=mean is not None, HAS_W=weight is not None, HAS_B=bias_dtype is not None,
        HAS_DS=ds is not None,
    )
    make = _row_launches if p.one_block else _wide_row_launches
    return (dx, dw, db), make(args, p, dw, db, slots)


def _row_launches(args: dict, p, dw, db, slots: int) -> list[Launch]:
    """Rows that fit one block: the backward kernel, then the fixed-order sum of its partials."""
    M, N = args["M"], args["N"]
    row_blocks = triton.cdiv(M, p.block_m)
    blocks_per_program = triton.cdiv(row_blocks, heuristics.backward_programs(M, p.block_m, slots))
    programs = triton.cdiv(row_blocks, blocks_per_program)  # no idle programs: every partials row is written
    new = lambda wanted: args["RSTD"].new_empty(programs, N) if wanted else None
    dw_part, db_part = new(dw is not None), new(db is not None)  # (programs, N) float32, each row written once
    kernel_args = {**args, "DW_PART": _dummy_for(dw_part, args["RSTD"]), "DB_PART": _dummy_for(db_part, args["RSTD"]),
                   "rows_per_program": blocks_per_program * p.block_m, "BLOCK_M": p.block_m, "BLOCK_N": p.block_n,
                   "NUM_STAGES": heuristics.NUM_STAGES}
    launches = [Launch(_backward_kernel, (programs,), kernel_args, p.num_warps)]
    if dw is not None or db is not None:
        launches.append(_sum_launch(dw_part, db_part, dw, db, slots))
    return launches


def _wide_row_launches(args: dict, p, dw, db, slots: int) -> list[Launch]:
    """Rows wider than a block: the split backward, then the fixed-order sum of its group partials."""
    M, N = args["M"], args["N"]
    # Window: x and dy read twice, dx (and ds) once, and the next group's x and dy once.
    split = heuristics.split_plan(M, N, args["X"].element_size(), window=5 + args["HAS_DS"], slots=slots)
    partials = split.groups * split.parts
    new = lambda wanted: args["RSTD"].new_empty(partials, N) if wanted else None
    dw_part, db_part = new(dw is not None), new(db is not None)  # (groups · parts, N) float32, each row written once
    device = args["X"].device
    kernel_args = {**args, "SUMS": args["RSTD"].new_empty(M, split.chunks, 2),
                   "ARRIVED": _counters(partials, device), "TICKET": _counters(1, device),
                   "DW_PART": _dummy_for(dw_part, args["RSTD"]), "DB_PART": _dummy_for(db_part, args["RSTD"]),
                   "chunks": split.chunks, "group_rows": split.group_rows, "parts": split.parts,
                   "part_rows": split.part_rows, "BLOCK_N": split.block_n,
                   "BLOCK_C": split.block_c, "NUM_STAGES": heuristics.NUM_STAGES}
    grid = (split.groups * (split.group_rows + split.parts) * split.chunks,)
    launches = [Launch(_split_backward_kernel, grid, kernel_args, p.num_warps)]
    if dw is not None or db is not None:
        launches.append(_sum_launch(dw_part, db_part, dw, db, slots))
    return launches


def _sum_launch(dw_part, db_part, dw, db, slots: int) -> Launch:
    """The fixed-order column sums of the (P, N) float32 partials into dw and db."""
    present = dw_part if dw_part is not None else db_part
    P, N = present.shape
    block_n = heuristics.sum_block_n(N, slots)
    args = dict(DW_PART=_dummy_for(dw_part, present), DB_PART=_dummy_for(db_part, present),
                DW=_dummy_for(dw, db), DB=_dummy_for(db, dw), P=P, N=N,
                HAS_W=dw is not None, HAS_B=db is not None,
                BLOCK_P=min(64, triton.next_power_of_2(P)), BLOCK_N=block_n)
    grid = (triton.cdiv(N, block_n), (dw is not None) + (db is not None))
    return Launch(_sum_partials_kernel, grid, args, 4)


def backward(dy, x, weight, bias_dtype, mean, rstd, ds=None):
    """Gradients of :func:`forward` for 2-D ``dy`` and the normalized input ``x`` (the sum ``s``
    with a residual); ``ds`` is the gradient of ``s``; ``bias_dtype`` is None without a bias;
    ``mean`` is None for RMSNorm. Returns ``(dx, dw, db)``, None for an absent weight or bias.
    """
    M, N = x.shape
    if M == 0:  # no rows: no launch; the parameter gradients are sums over nothing
        zeros = lambda dtype: None if dtype is None else torch.zeros(N, dtype=dtype, device=x.device)
        return torch.empty_like(x), zeros(None if weight is None else weight.dtype), zeros(bias_dtype)
    outputs, launches = backward_launches(dy, x, weight, bias_dtype, mean, rstd, ds,
                                          heuristics.program_slots(x.device))
    for launch in launches:
        launch.run()
    return outputs


def launches_for(op: str, direction: str, M: int, N: int, dtype: torch.dtype, slots: int, max_fused_n=None):
    """The launches ``op``'s ``direction`` makes for M × N of ``dtype`` with a weight (and a bias
    where the op takes one), built on ``meta`` tensors: shapes and arguments, no data.
    :mod:`lnbook.kernels.aot` compiles them and :mod:`lnbook.kernels.traffic` counts their bytes."""
    flags = OPS[op]
    meta = lambda *shape, dt=dtype: torch.empty(shape, dtype=dt, device="meta")
    x, w = meta(M, N), meta(N)
    b = meta(N) if flags.bias else None
    residual = meta(M, N) if flags.residual else None
    if direction == "forward":
        return forward_launches(x, w, b, residual, 1e-5, op, max_fused_n)[1]
    stat = meta(M, dt=torch.float32)  # (M,)
    mean = stat if flags.center else None
    return backward_launches(meta(M, N), x, w, None if b is None else dtype, mean, stat, residual, slots, max_fused_n)[1]
