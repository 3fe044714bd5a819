"""LayerNorm with the feature dimension sharded across processes (claim R15).

In tensor-parallel training a token's N features may live on P processes, N/P each. LayerNorm
needs the statistics of the whole row, so the processes exchange per-row summaries, never the
activations:

* forward: each process computes its shard's (mean, M2) per row; one ``all_gather`` brings every
  shard's pair to every process, and each merges them with Chan's update in rank order (the same
  result, bit for bit, everywhere). ``stats="sums"`` instead all-reduces (Σx, Σx²): one
  ``all_reduce``, but the variance E[x²] − E[x]² cancels catastrophically when |mean| ≫ std.
* backward: dx = rstd · (g − mean(g) − xhat · mean(g · xhat)) with g = w · dy needs two row means
  over all N features: one ``all_reduce`` of (Σg, Σg·xhat). dw and db need nothing: each process
  owns its slice of w and b.

Works with any ``torch.distributed`` backend (gloo on CPUs, NCCL on GPUs). :func:`launch` runs a
function on P local processes with gloo, for the chapter and the tests.
"""

from __future__ import annotations

import os
import queue as queue_module
import signal
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lnbook import args, norms

STATS = ("welford", "sums")


# ------------------------------------------------------------------------------- statistics


def _merge(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    # Chan, Golub & LeVeque (1979), as in the kernels' chunked path.
    count = count_a + count_b
    delta = mean_b - mean_a
    frac = count_b / count
    return count, mean_a + delta * frac, m2_a + m2_b + delta * delta * count_a * frac


def _welford_stats(x, group):
    """Row (mean, variance, N) over all shards: all_gather (n, mean, M2), merge in rank order."""
    mean = x.mean(-1)
    local = torch.stack([torch.full_like(mean, x.shape[-1]), mean, ((x - mean[..., None]) ** 2).sum(-1)])  # (3, *rows)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, local, group=group)
    total = gathered[0]
    for part in gathered[1:]:
        total = torch.stack(_merge(*total, *part))
    count, mean, m2 = total
    return mean, m2 / count, int(count.flatten()[0])


def _sum_stats(x, group):
    """Row (mean, variance, N) from one all_reduce of (n, Σx, Σx²): cheap, and unstable."""
    local = torch.stack([torch.full_like(x[..., 0], x.shape[-1]), x.sum(-1), (x * x).sum(-1)])  # (3, *rows)
    dist.all_reduce(local, group=group)
    count, total, squares = local
    mean = total / count
    return mean, squares / count - mean * mean, int(count.flatten()[0])


_STATS = {"welford": _welford_stats, "sums": _sum_stats}


# ---------------------------------------------------------------------------------- autograd


class _ShardedLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps, stats, group):
        xs = x.to(norms.stats_dtype(x.dtype))
        mean, var, n = _STATS[stats](xs, group)  # (*rows,) each, over all N features
        rstd = torch.rsqrt(var.clamp_min(0) + eps)  # "sums" can go negative by cancellation
        xhat = (xs - mean[..., None]) * rstd[..., None]
        y = xhat if weight is None else xhat * weight
        y = y if bias is None else y + bias
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.n, ctx.group, ctx.x_dtype, ctx.bias_dtype = n, group, x.dtype, None if bias is None else bias.dtype
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, weight = ctx.saved_tensors
        dy = dy.to(xhat.dtype)
        g = dy if weight is None else dy * weight
        sums = torch.stack([g.sum(-1), (g * xhat).sum(-1)])  # (2, *rows): the only exchange
        dist.all_reduce(sums, group=ctx.group)
        dx = rstd[..., None] * (g - sums[0][..., None] / ctx.n - xhat * (sums[1][..., None] / ctx.n))
        rows = lambda t: t.reshape(-1, t.shape[-1]).sum(0)  # (*rows, Nl) -> (Nl,)
        dw = None if weight is None else rows(dy * xhat).to(weight.dtype)
        db = None if ctx.bias_dtype is None else rows(dy).to(ctx.bias_dtype)
        return dx.to(ctx.x_dtype), dw, db, None, None, None


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5, stats: str = "welford", group=None):
    """LayerNorm over the last dimension of ``x``, which holds this process's shard of the features.

    ``weight`` and ``bias`` are this process's slices. Every process of ``group`` must call it with
    the same leading shape. Differentiable in x, weight and bias.
    """
    op = "distributed.layer_norm"
    args.check_norm_args(x, x.shape[-1:] if isinstance(x, torch.Tensor) else (), weight, bias, eps, op)
    if stats not in _STATS:
        raise args.arg_error(ValueError, op, "stats", f"one of {STATS}", repr(stats))
    if not dist.is_initialized():
        raise args.arg_error(RuntimeError, op, "group", "an initialized torch.distributed process group "
                              "(call torch.distributed.init_process_group first)", "none")
    return _ShardedLayerNorm.apply(x, weight, bias, float(eps), stats, group)


def bytes_per_token(processes: int, stats: str = "welford", float_bytes: int = 4) -> dict:
    """Bytes each process receives per token (row): forward statistics, backward sums.

    ``all_gather`` of 3 numbers brings 3·(P − 1); a ring ``all_reduce`` of k numbers moves
    2·k·(P − 1)/P per process.
    """
    P = processes
    forward = 3 * (P - 1) if stats == "welford" else 2 * 3 * (P - 1) / P
    return {"forward": forward * float_bytes, "backward": 2 * 2 * (P - 1) / P * float_bytes}


# ------------------------------------------------------------------------------- launching
# Each rank needs torch. Spawned ranks import it each (about 300 MB apiece, past Binder's 1 GB at four
# ranks); forked ranks share the pages of the process they were forked from. Forking the caller itself
# is unsafe (a Jupyter kernel runs threads, torch may have started its thread pool), so launch() spawns
# one clean parent, which imports what ``fn`` needs and forks the ranks before it runs anything.

JOIN_TIMEOUT = 600.0  # seconds a rank may run before the parent terminates it
RESULT_TIMEOUT = 300.0  # seconds without any message from the ranks before launch() gives up
EXIT_GRACE = 30.0  # seconds the parent gets to exit once launch() is done with it


def _worker(rank, world_size, init_file, fn, args, queue):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: terminate() must end a rank
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        queue.put((rank, fn(rank, world_size, *args)))
    finally:
        dist.destroy_process_group()


def _stop(procs, timeout: float = JOIN_TIMEOUT) -> list:
    """Join every process, terminating any still alive after ``timeout`` seconds; their exit codes."""
    for p in procs:
        p.join(timeout=timeout)
        if p.is_alive():
            p.terminate()
            p.join()
    return [p.exitcode for p in procs]


def _fork_ranks(world_size, init_file, fn, args, queue, join_timeout):
    """The spawned parent: fork ``world_size`` ranks, wait for them, report their exit codes."""
    fork = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [fork.Process(target=_worker, args=(r, world_size, init_file, fn, args, queue)) for r in range(world_size)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # terminated by launch(): end the ranks (finally)
    try:
        for p in procs:
            p.start()
        queue.put(("exit codes", _stop(procs, join_timeout)))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()


def _collect(queue, parent, world_size: int) -> tuple[dict, list]:
    """Results by rank and the ranks' exit codes, until the parent reports or dies without reporting."""
    results, codes, idle = {}, None, 0.0
    while codes is None and idle < RESULT_TIMEOUT:
        try:
            key, value = queue.get(timeout=1.0)
        except queue_module.Empty:
            idle = idle + 1.0 if parent.is_alive() else RESULT_TIMEOUT
            continue
        idle = 0.0
        if key == "exit codes":
            codes = value
        else:
            results[key] = value
    return results, codes if codes is not None else [None] * world_size


def launch(fn, world_size: int, *args, join_timeout: float = JOIN_TIMEOUT) -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` local processes (gloo); rank order results.

    ``fn`` must be importable (a module-level function) and return something picklable. The ranks are
    forked from one spawned parent, so they share its memory (see above). A rank still running after
    ``join_timeout`` seconds is terminated: every process is gone when this returns, whatever happened.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        parent = ctx.Process(target=_fork_ranks, args=(world_size, init_file, fn, args, queue, join_timeout))
        parent.start()
        try:
            results, codes = _collect(queue, parent, world_size)
        finally:
            parent_code = _stop([parent], EXIT_GRACE)[0]  # terminating it terminates its ranks
    if any(codes) or parent_code or len(results) != world_size:
        raise RuntimeError(f"launch: expected every process to exit with 0, got exit codes {codes} "
                           f"(parent {parent_code}) and results from ranks {sorted(results)}")
    return [results[r] for r in range(world_size)]


# ------------------------------------------------------------------------- the equality check


def shard_check(rank: int, world_size: int, M: int = 8, N: int = 96, dtype=torch.float32, stats: str = "welford",
                shift: float = 0.0, seed: int = 0) -> dict:
    """On each rank: its shard of a seeded problem, sharded forward and backward, and the largest
    errors of y, dx, dw, db against the unsharded float64 LayerNorm of the same (rounded) values."""
    gen = torch.Generator().manual_seed(seed)
    x, dy, w, b = (torch.randn(*shape, generator=gen, dtype=torch.float64) for shape in ((M, N), (M, N), (N,), (N,)))
    x, dy, w, b = ((t + s).to(dtype).to(torch.float64) for t, s in ((x, shift), (dy, 0), (w, 1), (b, 0)))
    full = [t.clone().requires_grad_() for t in (x, w, b)]
    y_ref = norms.layer_norm(full[0], (N,), full[1], full[2])
    y_ref.backward(dy)
    part = lambda t: torch.tensor_split(t, world_size, dim=-1)[rank]  # uneven N allowed
    mine = [part(t).to(dtype).clone().requires_grad_() for t in (x, w, b)]
    y = layer_norm(mine[0], mine[1], mine[2], stats=stats)
    y.backward(part(dy).to(dtype))
    # The same row unsharded in the same dtype (torch's LayerNorm): the error the dtype itself allows.
    single = [t.to(dtype).clone().requires_grad_() for t in (x, w, b)]
    y_single = torch.nn.functional.layer_norm(single[0], (N,), single[1], single[2])
    y_single.backward(dy.to(dtype))
    err = lambda a, ref: float((a.detach().to(torch.float64) - ref.detach()).abs().max())
    return {"y": err(y, part(y_ref)), "dx": err(mine[0].grad, part(full[0].grad)),
            "dw": err(mine[1].grad, part(full[1].grad)), "db": err(mine[2].grad, part(full[2].grad)),
            "y_single": err(y_single, y_ref), "dx_single": err(single[0].grad, full[0].grad),
            "dw_single": err(single[1].grad, full[1].grad), "db_single": err(single[2].grad, full[2].grad),
            "width": mine[0].shape[-1]}


def shard_checks(rank: int, world_size: int, configs: list[dict]) -> list[dict]:
    """:func:`shard_check` for several problems in one launch (starting processes is the slow part)."""
    return [shard_check(rank, world_size, **config) for config in configs]
