"""Chapter 1 (seed 000), book/01_foundations: the computations behind claims F01–F07 and F16.

Sections of the chapter: "The formula" (F01–F03), "LayerNorm against BatchNorm" (F04, F05),
"Why language models prefer LayerNorm" (F06), "RMSNorm" (F07), "The invariance table" (F16) and the
exercises. The chapter's second half, on stability and gradients (F08–F15), is
:mod:`lnbook.experiments.foundations_gradients`.

Every function is seeded and small (the whole chapter runs in well under a minute on 2 CPU cores).
Functions named after a quantity return data (for figures and the prose); the functions decorated
with :func:`lnbook.claims.claim` turn that data into evidence for one claim.
"""

from __future__ import annotations

import math

import torch

from lnbook import bench, norms
from lnbook.claims import Evidence, claim
from lnbook.experiments.common import F64, H100, ln, loglog_slope, max_abs, randn, roofline_seconds
from lnbook.experiments.toys import padded_batch

SRC = "seed 000"
CHAPTER = "book/01_foundations"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- §3: the formula


@claim(
    "F01",
    source=f"{SRC} §3",
    claim="LayerNorm's statistics are taken over the H features of one sample, so its output does not depend on the batch.",
    statement=(
        "Holds. A sample normalized alone and inside batches of 1, 8 and 64 gives the same output "
        "(largest difference {ln_batch_diff:.2g} in float32), while BatchNorm's output for the same sample "
        "changes by up to {bn_batch_diff:.2f} between batches of 8 and 64."
    ),
    verdict="holds",
)
def f01() -> Evidence:
    """The evidence for F01. See book/01_foundations.ipynb, section "The formula"."""
    x = randn(64, 32, seed=1, dtype=torch.float32)  # (B, H)
    alone = ln(x[:1], eps=1e-5)
    ln_diff = max(max_abs(ln(x[:b], eps=1e-5)[:1], alone) for b in (1, 8, 64))
    bn = {b: norms.batch_norm(x[:b], None, None, training=True)[:1] for b in (8, 64)}
    bn_diff = max_abs(bn[8], bn[64])
    return Evidence(
        {"ln_batch_diff": ln_diff, "bn_batch_diff": bn_diff},
        # Rows are reduced independently; 1e-6 allows for a differently vectorized reduction.
        {"ln_independent_of_batch": ln_diff <= 1e-6, "bn_depends_on_batch": bn_diff > 0.1},
    )


@claim(
    "F02",
    source=f"{SRC} §3",
    claim="A small ε (e.g. 1e-5) in √(σ²+ε) keeps the division finite.",
    statement=(
        "Holds, and ε does more than that. On a constant vector ε = 0 gives 0/0: {nan_count} of {n} outputs "
        "are NaN, while ε = 1e-5 gives exactly 0. On a nearly constant vector (σ = {sigma_small:.1g}) ε also "
        "shrinks the output's standard deviation to σ/√(σ²+ε) = {std_small:.3f} instead of 1."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        "eps0_gives_nan": n["nan_count"] == n["n"],
        "eps_gives_zero": n["zero_out"] == 0.0,
        # float64: only rounding separates the measured std from the closed form σ/√(σ²+ε).
        "std_matches_closed_form": abs(n["std_small"] - n["std_predicted"]) < 1e-12,
    },
    # A world where ε = 0 is harmless (no NaN to prevent) and ε leaves the standard deviation at 1.
    null=lambda n: {**n, "nan_count": 0, "std_small": 1.0},
)
def f02() -> dict:
    """The evidence for F02. See book/01_foundations.ipynb, section "The formula"."""
    n = 8
    const = torch.full((1, n), 3.0, dtype=F64)
    noise = randn(1, n, seed=2)
    sigma = 1e-3
    near = 3.0 + sigma * (noise - noise.mean()) / noise.std(correction=0)  # std exactly σ
    return {"n": n, "nan_count": int(torch.isnan(ln(const, eps=0.0)).sum()),
            "zero_out": float(ln(const, eps=1e-5).abs().max()), "sigma_small": sigma,
            "std_small": float(ln(near, eps=1e-5).std(correction=0)),
            "std_predicted": sigma / math.sqrt(sigma**2 + 1e-5)}


def affine_recovery_error(x: torch.Tensor) -> float:
    """Relative error of the best per-feature γ, β that map LN(x) back to x (least squares per column)."""
    xhat = ln(x, eps=0.0)  # (B, H)
    xc, hc = x - x.mean(0), xhat - xhat.mean(0)
    gamma = (xc * hc).sum(0) / (hc * hc).sum(0)  # (H,)
    beta = x.mean(0) - gamma * xhat.mean(0)
    fit = gamma * xhat + beta
    return float((x - fit).norm() / xc.norm())


def samples_with_stats(mean: torch.Tensor, std: torch.Tensor, h: int, seed: int) -> torch.Tensor:
    """B samples of width h whose own mean and (biased) std are exactly ``mean[i]``, ``std[i]``."""
    z = randn(len(mean), h, seed=seed)
    z = (z - z.mean(1, keepdim=True)) / z.std(1, correction=0, keepdim=True)
    return mean[:, None] + std[:, None] * z


@claim(
    "F03",
    source=f"{SRC} §3",
    claim="If normalizing does not help, the network can learn γ = σ and β = μ and recover its input.",
    statement=(
        "Holds under conditions: only when every sample has the same mean and standard deviation. γ and β are per-feature "
        "parameters shared by all samples, while μ and σ belong to each sample. With one sample, or samples "
        "sharing their statistics, the best γ, β recover the input exactly (relative error {err_shared:.2g}); "
        "on {batch} samples with different means and spreads the best γ, β leave a relative error of "
        "{err_varied:.2f}."
    ),
    verdict="holds under conditions",
)
def f03() -> Evidence:
    """The evidence for F03. See book/01_foundations.ipynb, section "The formula"."""
    b, h = 256, 16
    gen = torch.Generator().manual_seed(3)
    varied = samples_with_stats(torch.randn(b, generator=gen, dtype=F64),
                                torch.rand(b, generator=gen, dtype=F64) * 1.5 + 0.5, h, seed=4)
    shared = samples_with_stats(torch.full((b,), 0.7, dtype=F64), torch.full((b,), 1.9, dtype=F64), h, seed=5)
    err_varied, err_shared = affine_recovery_error(varied), affine_recovery_error(shared)
    return Evidence(
        {"batch": b, "err_shared": err_shared, "err_varied": err_varied},
        {"recovers_shared_stats": err_shared < 1e-12, "fails_varied_stats": err_varied > 0.1},
    )


# ----------------------------------------------------------------------------- §4–5: LN vs BN


@claim(
    "F04",
    source=f"{SRC} §4",
    claim="BatchNorm needs batch statistics: with a batch of one it cannot normalize in training, and it "
    "behaves differently in training and evaluation; LayerNorm is the same in both.",
    statement=(
        "Holds. torch's BatchNorm1d refuses a training batch of one sample ({bn_batch1_error}); on a batch of "
        "16 its training and evaluation outputs differ by up to {bn_train_eval:.2f}, while LayerNorm's differ "
        "by {ln_train_eval:.2g}."
    ),
    verdict="holds",
)
def f04() -> Evidence:
    """The evidence for F04. See book/01_foundations.ipynb, section "LayerNorm against BatchNorm"."""
    x = randn(16, 8, seed=6, dtype=torch.float32) * 3 + 1
    bn, lnm = torch.nn.BatchNorm1d(8), torch.nn.LayerNorm(8)
    try:
        bn.train()(x[:1])
        error = "no error"
    except ValueError as e:
        error = type(e).__name__
    with torch.no_grad():
        bn_gap = max_abs(bn.train()(x), bn.eval()(x))
        ln_gap = max_abs(lnm.train()(x), lnm.eval()(x))
    return Evidence(
        {"bn_batch1_error": error, "bn_train_eval": bn_gap, "ln_train_eval": ln_gap},
        {"bn_refuses_batch1": error == "ValueError", "bn_modes_differ": bn_gap > 0.1, "ln_modes_equal": ln_gap == 0.0},
    )


def batch_stat_spread(batch_sizes=(2, 4, 8, 16, 32, 64, 128, 256), draws: int = 4000, seed: int = 7):
    """Standard deviation, over ``draws`` batches of N(0, 1) data, of the batch mean and batch variance."""
    x = randn(draws, max(batch_sizes), seed=seed)
    mean_sd = [float(x[:, :b].mean(1).std()) for b in batch_sizes]
    var_sd = [float(x[:, :b].var(1, correction=0).std()) for b in batch_sizes]
    return list(batch_sizes), mean_sd, var_sd


@claim(
    "F05",
    source=f"{SRC} §4–5",
    claim="Small batches make BatchNorm's statistics noisy.",
    statement=(
        "Holds, at the rate sampling theory predicts: the batch mean's standard deviation falls as 1/√B "
        "(fitted log–log slope {mean_slope:.3f}; closed form −0.5) and at B = 2 it is {mean_sd_b2:.3f} of the "
        "feature's own standard deviation (closed form 1/√2 = 0.707); the batch variance's spread is "
        "{var_sd_b2:.3f} at B = 2 (closed form √(2(B−1))/B = 0.707) and {var_sd_b256:.3f} at B = 256."
    ),
    verdict="holds",
)
def f05() -> Evidence:
    """The evidence for F05. See book/01_foundations.ipynb, section "LayerNorm against BatchNorm"."""
    sizes, mean_sd, var_sd = batch_stat_spread()
    closed_var = [math.sqrt(2 * (b - 1)) / b for b in sizes]  # Gaussian data, biased variance
    # 4000 draws: the relative standard error of a standard deviation estimate is about 1/√8000 ≈ 1.1 %,
    # so 5 % is over four standard errors.
    rel = max(abs(m * math.sqrt(b) - 1) for m, b in zip(mean_sd, sizes))
    rel_var = max(abs(v / c - 1) for v, c in zip(var_sd, closed_var))
    slope = loglog_slope(sizes, mean_sd)
    return Evidence(
        {"mean_slope": slope, "mean_sd_b2": mean_sd[0], "var_sd_b2": var_sd[0], "var_sd_b256": var_sd[-1],
         "mean_rel_err": rel, "var_rel_err": rel_var},
        {"slope_is_minus_half": abs(slope + 0.5) < 0.02, "mean_sd_closed_form": rel < 0.05,
         "var_sd_closed_form": rel_var < 0.05},
    )



@claim(
    "F06",
    source=f"{SRC} §5",
    claim="Padding in variable-length batches skews BatchNorm's statistics; LayerNorm per token is unaffected.",
    statement=(
        "Holds. In a batch of a 100-token and a 5-token sequence padded to 100, BatchNorm's per-feature mean "
        "computed over all positions is off by {bn_mean_rel_err:.0%} and its variance by "
        "{bn_var_rel_err:.0%} against the statistics of the real tokens; LayerNorm of the real tokens is the "
        "same with and without padding (largest difference {ln_pad_diff:.2g})."
    ),
    verdict="holds",
)
def f06() -> Evidence:
    """The evidence for F06. See book/01_foundations.ipynb, section "Why language models prefer LayerNorm"."""
    x, mask = padded_batch()
    real = x[mask]  # (tokens, H)
    flat = x.reshape(-1, x.shape[-1])  # padded positions included, as a naive BN sees them
    mean_err = float(((flat.mean(0) - real.mean(0)).abs() / real.mean(0).abs()).mean())
    var_err = float(((flat.var(0, correction=0) - real.var(0, correction=0)).abs() / real.var(0, correction=0)).mean())
    ln_diff = max_abs(ln(x, eps=1e-5)[mask], ln(real, eps=1e-5))
    return Evidence(
        {"bn_mean_rel_err": mean_err, "bn_var_rel_err": var_err, "ln_pad_diff": ln_diff},
        {"bn_mean_skewed": mean_err > 0.2, "bn_var_skewed": var_err > 0.2, "ln_unaffected": ln_diff < 1e-12},
    )


def rms_vs_ln_cost(M: int = 4096, N: int = 4096, element_size: int = 2) -> dict[str, float]:
    """Counted cost of one forward pass of RMSNorm against LayerNorm on (M, N), and their least times on
    an H100 (:func:`roofline_seconds` with CUDA-core float32 throughput: a norm does no matrix products).

    FLOPs per value: LayerNorm sums x (1), centres (1), squares and sums (2), scales by rstd (1), then
    γ and β (2): 7. RMSNorm squares and sums (2), scales (1), γ (1): 4. Bytes: :func:`lnbook.bench.bytes_moved`.
    """
    flops = {"layer_norm": 7 * M * N, "rms_norm": 4 * M * N}
    nbytes = {op: bench.bytes_moved(op, "forward", M, N, element_size) for op in flops}
    fp32 = {**H100, "flops": H100["fp32_flops"]}
    t = {op: roofline_seconds(flops[op], nbytes[op], fp32) for op in flops}
    return {"flop_ratio": flops["rms_norm"] / flops["layer_norm"],
            "byte_ratio": nbytes["rms_norm"] / nbytes["layer_norm"], "time_ratio": t["rms_norm"] / t["layer_norm"],
            "intensity": flops["layer_norm"] / nbytes["layer_norm"], "balance": H100["fp32_flops"] / H100["bandwidth"]}


@claim(
    "F07",
    source=f"{SRC} §6",
    claim="RMSNorm divides by √(mean(x²)+ε) without subtracting the mean; it is faster than LayerNorm "
    "because it skips the mean, with about the same quality.",
    statement=(
        "Holds under conditions: the formula holds and RMSNorm saves arithmetic, but arithmetic is not what a "
        "normalization waits for. Our RMSNorm matches torch's to {rms_vs_torch:.2g}, and it is LayerNorm "
        "without centring: on zero-mean inputs the two agree to {rms_eq_ln_centered:.2g}, on inputs with mean 1 "
        "they differ by {rms_vs_ln_shifted:.2f}. Counted on a 4096×4096 bfloat16 forward, RMSNorm does "
        "{flop_ratio:.2f} of LayerNorm's FLOPs but moves {byte_ratio:.4f} of its bytes. LayerNorm does "
        "{intensity:.2f} FLOPs per byte where an H100 can do {balance:.0f} (datasheet figures), so both are "
        "bound by memory, and the least time of RMSNorm is {time_ratio:.4f} of LayerNorm's: a kernel near the "
        "bandwidth limit gains almost nothing from skipping the mean. Measured GPU speed is in the kernels "
        "chapter, quality in chapter 4 (W07)."
    ),
    verdict="holds under conditions",
)
def f07() -> Evidence:
    """The evidence for F07. See book/01_foundations.ipynb, section "RMSNorm"."""
    x = randn(32, 64, seed=10)
    centered = x - x.mean(-1, keepdim=True)
    rms = lambda v: norms.rms_norm(v, v.shape[-1:], eps=1e-6)  # noqa: E731
    vs_torch = max_abs(rms(x), torch.nn.functional.rms_norm(x, x.shape[-1:], eps=1e-6))
    eq_centered = max_abs(rms(centered), ln(centered, eps=1e-6))
    shifted = max_abs(rms(centered + 1), ln(centered + 1, eps=1e-6))
    cost = rms_vs_ln_cost()
    return Evidence(
        {"rms_vs_torch": vs_torch, "rms_eq_ln_centered": eq_centered, "rms_vs_ln_shifted": shifted, **cost},
        {"matches_torch": vs_torch < 1e-12, "equals_ln_when_centered": eq_centered < 1e-12,
         "differs_when_mean_nonzero": shifted > 0.1,
         # 4 of 7 FLOPs per value (counted in the docstring); bytes differ by β and the mean only.
         "fewer_flops": abs(cost["flop_ratio"] - 4 / 7) < 1e-12, "same_bytes": cost["byte_ratio"] > 0.99,
         # Memory-bound: ten times fewer FLOPs per byte than the machine balance.
         "memory_bound": cost["intensity"] < cost["balance"] / 10,
         "time_follows_bytes": abs(cost["time_ratio"] - cost["byte_ratio"]) < 1e-12},
    )


# ----------------------------------------------------------------------------- F16: Ba et al. Table 1

TRANSFORMS = (
    "weight matrix re-scaling",
    "weight matrix re-centering",
    "weight vector re-scaling",
    "dataset re-scaling",
    "dataset re-centering",
    "single training case re-scaling",
)
NORMALIZERS = ("batch norm", "weight norm", "layer norm", "RMSNorm")
# Published tables, quoted: Ba, Kiros & Hinton 2016, Table 1 (first three rows), and
# Zhang & Sennrich 2019, Table 1 (the RMSNorm row). True = invariant.
PUBLISHED = {
    "batch norm": (True, False, True, True, True, False),
    "weight norm": (True, False, True, False, False, False),
    "layer norm": (True, True, False, True, False, True),
    "RMSNorm": (True, False, False, True, False, True),
}


def _normalized_inputs(kind: str, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The normalized summed inputs of each method for a = W x over a batch x (B, D); ε = 0, no gain/bias."""
    a = x @ w.T  # (B, H)
    if kind == "batch norm":
        return (a - a.mean(0)) / a.std(0, correction=0)
    if kind == "weight norm":
        return a / w.norm(dim=1)
    if kind == "layer norm":
        return ln(a, eps=0.0)
    return norms.rms_norm(a, a.shape[-1:], eps=0.0)


def _transformed(name: str, w: torch.Tensor, x: torch.Tensor, seed: int = 19):
    """(W', x') after one of Ba et al.'s transformations, with random positive factors and shifts."""
    gen = torch.Generator().manual_seed(seed)
    delta = float(torch.rand(1, generator=gen, dtype=F64)) * 4 + 0.5
    shift = torch.randn(x.shape[1], generator=gen, dtype=F64)  # (D,)
    if name == "weight matrix re-scaling":
        return delta * w, x
    if name == "weight matrix re-centering":
        return w + shift[None, :], x  # the same vector added to every row of W
    if name == "weight vector re-scaling":
        return w * (torch.rand(w.shape[0], 1, generator=gen, dtype=F64) * 4 + 0.5), x
    if name == "dataset re-scaling":
        return w, delta * x
    if name == "dataset re-centering":
        return w, x + shift[None, :]
    return w, torch.cat([delta * x[:1], x[1:]])  # one training case re-scaled


# A relative change below 1e-12 is float64 rounding; the smallest real change is above 1e-3 (checked in F16).
INVARIANT_TOL = 1e-12


def is_invariant(change: float) -> bool:
    return change < INVARIANT_TOL


def invariance_table(seed: int = 18) -> dict[str, dict[str, float]]:
    """For each normalizer and transformation: max relative change of the normalized inputs (float64, ε = 0)."""
    w, x = randn(16, 8, seed=seed), randn(32, 8, seed=seed + 1)
    table = {}
    for kind in NORMALIZERS:
        base = _normalized_inputs(kind, w, x)
        table[kind] = {
            t: max_abs(_normalized_inputs(kind, *_transformed(t, w, x)), base) / float(base.abs().max())
            for t in TRANSFORMS
        }
    return table


@claim(
    "F16",
    source="beyond the source: Ba et al. 2016, Table 1",
    claim="Batch norm, weight norm and layer norm are invariant under different re-scalings and re-centerings "
    "of the weights and the data (Table 1 of Ba et al. 2016); RMSNorm added as a fourth row.",
    statement=(
        "Holds: all {cells} cells computed in float64 with ε = 0 agree with the published tables "
        "(Ba et al. 2016 for the first three rows, Zhang & Sennrich 2019 for RMSNorm); every 'invariant' "
        "cell changes by at most {max_invariant:.2g} (rounding), every other cell by at least "
        "{min_variant:.2f}."
    ),
    verdict="holds",
)
def f16() -> Evidence:
    """The evidence for F16. See book/01_foundations.ipynb, section "The invariance table"."""
    table = invariance_table()
    cells = [(table[k][t], PUBLISHED[k][i]) for k in NORMALIZERS for i, t in enumerate(TRANSFORMS)]
    max_inv = max(v for v, inv in cells if inv)
    min_var = min(v for v, inv in cells if not inv)
    return Evidence(
        {"cells": len(cells), "max_invariant": max_inv, "min_variant": min_var},
        # The gap between rounding (INVARIANT_TOL) and a real change (> 1e-3) makes every verdict unambiguous.
        {"invariant_cells": is_invariant(max_inv), "variant_cells": min_var > 1e-3},
    )


def invariance_markdown() -> tuple[str, str]:
    """The computed table (verdict and largest relative change per cell) and the published one, as Markdown."""
    table = invariance_table()
    head = "| | " + " | ".join(TRANSFORMS) + " |\n|---|" + "---|" * len(TRANSFORMS) + "\n"
    word = lambda inv: "invariant" if inv else "no"  # noqa: E731
    computed = head + "\n".join(
        f"| {k} | " + " | ".join(f"{word(is_invariant(table[k][t]))} ({table[k][t]:.1g})" for t in TRANSFORMS) + " |"
        for k in NORMALIZERS)
    published = head + "\n".join(f"| {k} | " + " | ".join(map(word, PUBLISHED[k])) + " |" for k in NORMALIZERS)
    return computed, published


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float | str]:
    """The chapter's exercise answers, computed (the suite checks them against closed forms)."""
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)
    xhat = ln(x, eps=0.0)
    eig = sorted(torch.linalg.eigvalsh(torch.autograd.functional.jacobian(lambda v: ln(v, eps=0.0), x)).tolist())
    table = invariance_table()
    differ = [t for t in TRANSFORMS if is_invariant(table["layer norm"][t]) != is_invariant(table["RMSNorm"][t])]
    return {
        "onehot_big": float(xhat[0]),
        "onehot_small": float(xhat[1]),
        "onehot_eig_max": eig[-1],
        "onehot_eig_zero_count": sum(abs(e) < 1e-12 for e in eig),
        "ln_vs_rms_column": "; ".join(differ),
    }
