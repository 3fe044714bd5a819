"""Chapter 1 (seed 000): the computations behind claims F01–F16.

Every function is seeded and small (the whole chapter runs in well under a minute on 2 CPU cores).
Functions named after a quantity return data (for figures and the prose); the functions decorated
with :func:`lnbook.claims.claim` turn that data into evidence for one claim.
"""

from __future__ import annotations

import functools
import math

import torch

from lnbook import bench, norms, symbolic
from lnbook.claims import Evidence, claim
from lnbook.experiments.common import F64, H100, loglog_slope, max_abs, one_thread, randn, roofline_seconds
from lnbook.models import Block, LayerNorm

SRC = "seed 000"
CHAPTER = "book/01_foundations"  # the chapter that shows this module's claims


def ln(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """LayerNorm over the last dimension, no affine (ε = 0 unless given: the book's exact case)."""
    return norms.layer_norm(x, x.shape[-1:], eps=eps)


# ----------------------------------------------------------------------------- §3: the formula


@claim(
    "F01",
    source=f"{SRC} §3",
    claim="LayerNorm's statistics are taken over the H features of one sample, so its output does not depend on the batch.",
    statement=(
        "Holds. A sample normalized alone and inside batches of 1, 8 and 64 gives the same output "
        "(largest difference {ln_batch_diff:.1e} in float32), while BatchNorm's output for the same sample "
        "changes by up to {bn_batch_diff:.2f} between batches of 8 and 64."
    ),
    verdict="holds",
)
def f01() -> Evidence:
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
        "are NaN, while ε = 1e-5 gives exactly 0. On a nearly constant vector (σ = {sigma_small:.0e}) ε also "
        "shrinks the output's standard deviation to σ/√(σ²+ε) = {std_small:.3f} instead of 1."
    ),
    verdict="holds",
)
def f02() -> Evidence:
    n = 8
    const = torch.full((1, n), 3.0, dtype=F64)
    nan_count = int(torch.isnan(ln(const, eps=0.0)).sum())
    zero_out = float(ln(const, eps=1e-5).abs().max())
    noise = randn(1, n, seed=2)
    sigma = 1e-3
    near = 3.0 + sigma * (noise - noise.mean()) / noise.std(correction=0)  # std exactly σ
    std_small = float(ln(near, eps=1e-5).std(correction=0))
    predicted = sigma / math.sqrt(sigma**2 + 1e-5)
    return Evidence(
        {"n": n, "nan_count": nan_count, "zero_out": zero_out, "sigma_small": sigma, "std_small": std_small},
        {
            "eps0_gives_nan": nan_count == n,
            "eps_gives_zero": zero_out == 0.0,
            # float64: only rounding separates the measured std from the closed form.
            "std_matches_closed_form": abs(std_small - predicted) < 1e-12,
        },
    )


def affine_recovery_error(x: torch.Tensor) -> float:
    """Relative error of the best per-feature γ, β that map LN(x) back to x (least squares per column)."""
    xhat = ln(x)  # (B, H)
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
        "sharing their statistics, the best γ, β recover the input exactly (relative error {err_shared:.1e}); "
        "on {batch} samples with different means and spreads the best γ, β leave a relative error of "
        "{err_varied:.2f}."
    ),
    verdict="holds under conditions",
)
def f03() -> Evidence:
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
        "by {ln_train_eval:.1e}."
    ),
    verdict="holds",
)
def f04() -> Evidence:
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


def padded_batch(lengths=(100, 5), h: int = 16, feature_mean: float = 2.0, seed: int = 8):
    """Sequences of the given lengths, zero-padded to the longest: returns (x, mask) of shapes (B, T, H), (B, T)."""
    t = max(lengths)
    x = randn(len(lengths), t, h, seed=seed) + feature_mean
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return x * mask[..., None], mask


@claim(
    "F06",
    source=f"{SRC} §5",
    claim="Padding in variable-length batches skews BatchNorm's statistics; LayerNorm per token is unaffected.",
    statement=(
        "Holds. In a batch of a 100-token and a 5-token sequence padded to 100, BatchNorm's per-feature mean "
        "computed over all positions is off by {bn_mean_rel_err:.0%} and its variance by "
        "{bn_var_rel_err:.0%} against the statistics of the real tokens; LayerNorm of the real tokens is the "
        "same with and without padding (largest difference {ln_pad_diff:.1e})."
    ),
    verdict="holds",
)
def f06() -> Evidence:
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
        "normalization waits for. Our RMSNorm matches torch's to {rms_vs_torch:.1e}, and it is LayerNorm "
        "without centring: on zero-mean inputs the two agree to {rms_eq_ln_centered:.1e}, on inputs with mean 1 "
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


# ----------------------------------------------------------------------------- Q2: stability


STACK = {"depth": 40, "width": 128, "gain": 1.1}  # the deep linear stack of F08


def activation_norms(depth: int = STACK["depth"], width: int = STACK["width"], gain: float = STACK["gain"],
                     use_ln: bool = False, seed: int = 11):
    """‖x_l‖ per layer of a deep linear stack with weights N(0, gain²/width), with or without LN after each layer."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(width, generator=gen, dtype=F64)
    x = x / x.norm() * math.sqrt(width)  # start at the norm LN produces
    out = []
    for _ in range(depth):
        w = torch.randn(width, width, generator=gen, dtype=F64) * gain / math.sqrt(width)
        x = w @ x
        x = ln(x, eps=1e-5) if use_ln else x
        out.append(float(x.norm()))
    return out


@claim(
    "F08",
    source=f"{SRC} Q2 §1",
    claim="Without normalization, activations grow roughly geometrically with depth when the weight scale "
    "exceeds 1; with LayerNorm they stay bounded.",
    statement=(
        "Holds. Through {depth} linear layers with weight gain {gain}, the activation norm grows by a "
        "factor {growth_per_layer:.3f} per layer (geometric mean; {gain} expected) to {final_norm_none:.3g}; with LayerNorm "
        "after each layer it stays at √H·σ/√(σ²+ε) = {final_norm_ln:.4f} (√H = {sqrt_h:.4f})."
    ),
    verdict="holds",
)
def f08() -> Evidence:
    none, with_ln = activation_norms(use_ln=False), activation_norms(use_ln=True)
    logs = torch.tensor([math.log(v) for v in none], dtype=F64)
    growth = math.exp(float((logs[-1] - logs[0]) / (len(none) - 1)))  # geometric mean of per-layer ratios
    sqrt_h = math.sqrt(STACK["width"])
    return Evidence(
        {**STACK, "growth_per_layer": growth, "final_norm_none": none[-1], "final_norm_ln": with_ln[-1],
         "sqrt_h": sqrt_h},
        # Random Gaussian layers fluctuate around the gain; 3 % covers this seed's fluctuation honestly.
        {"geometric_growth": abs(growth - STACK["gain"]) < 0.03,
         # Each layer's output has σ² ≈ gain² = 1.21, so ε = 1e-5 lowers the norm by about ε/(2σ²) ≈ 4e-6
         # relative; 1e-4 bounds that with room, and is far below any growth.
         "ln_bounded": max(abs(v - sqrt_h) for v in with_ln) < 1e-4 * sqrt_h},
    )


def _ln_problem(seed: int = 13):
    """A fixed W (32×16), batch x (64×16) and loss weights c (64×32), shared by F09–F13."""
    return randn(32, 16, seed=seed), randn(64, 16, seed=seed + 1), randn(64, 32, seed=seed + 2)


def _wx() -> torch.Tensor:
    w, x, _ = _ln_problem()
    return x @ w.T  # (64, 32)


def scaled_weight_outputs(lams=(0.01, 0.1, 1.0, 10.0, 100.0), eps: float = 0.0):
    """max |LN(λWx) − LN(Wx)| for each λ, with W (32×16) and a batch of 64 inputs."""
    z = _wx()
    base = ln(z, eps)
    return {lam: max_abs(ln(lam * z, eps), base) for lam in lams}


def eps_scale_deviation(lam: float, eps: float) -> float:
    """Closed form of the same deviation: LN_ε(λz) = x̂·λσ/√(λ²σ²+ε), so the gap is |x̂|·|ratio(λ) − ratio(1)|."""
    z = _wx()
    var = z.var(-1, correction=0, keepdim=True)
    xhat = (z - z.mean(-1, keepdim=True)) / var.sqrt()
    ratio = lambda s: (s * var.sqrt()) / (s * s * var + eps).sqrt()  # noqa: E731
    return float((xhat * (ratio(lam) - ratio(1.0))).abs().max())


@claim(
    "F09",
    source=f"{SRC} Q2 §2, Q3 §2",
    claim="Weight-scale invariance: LN(λWx) = LN(Wx) for every λ > 0.",
    statement=(
        "Holds under conditions: exactly for ε = 0 (largest difference over λ from 0.01 to 100: {max_diff_eps0:.1e}, rounding "
        "only). With ε = 1e-5 it holds only approximately, and only while λ²σ² ≫ ε: the difference is {diff_eps_lam0_01:.1e} at "
        "λ = 0.01 (closed form {closed_form_lam0_01:.1e}) and {diff_eps_lam100:.1e} at λ = 100, where what is left "
        "is ε's effect on the reference LN(Wx) itself (closed form {closed_form_lam100:.1e})."
    ),
    verdict="holds under conditions",
)
def f09() -> Evidence:
    exact = scaled_weight_outputs(eps=0.0)
    with_eps = scaled_weight_outputs(eps=1e-5)
    small, large = eps_scale_deviation(0.01, 1e-5), eps_scale_deviation(100.0, 1e-5)
    # float64 closed form against float64 computation: agreement to 1e-9 relative is rounding only.
    agree = lambda a, b: abs(a - b) <= 1e-9 * abs(b)  # noqa: E731
    return Evidence(
        {"max_diff_eps0": max(exact.values()), "diff_eps_lam0_01": with_eps[0.01], "closed_form_lam0_01": small,
         "diff_eps_lam100": with_eps[100.0], "closed_form_lam100": large},
        {"exact_for_eps0": max(exact.values()) < 1e-12,
         "eps_breaks_small_lambda": with_eps[0.01] > 1e-3,
         "closed_form_small_lambda": agree(with_eps[0.01], small),
         "closed_form_large_lambda": agree(with_eps[100.0], large),
         "small_at_large_lambda": with_eps[100.0] < 1e-4},
    )


def ln_loss_grad(w: torch.Tensor, x: torch.Tensor, c: torch.Tensor, eps: float = 0.0, b=None) -> torch.Tensor:
    """∇_W of L = Σ c ⊙ LN(x Wᵀ (+ b)): a generic loss that sees W only through a LayerNorm."""
    w = w.detach().requires_grad_(True)
    z = x @ w.T + (0 if b is None else b)
    (grad,) = torch.autograd.grad((c * ln(z, eps)).sum(), w)
    return grad


def gradient_norm_vs_weight_norm(lams, eps: float = 0.0):
    """(‖λW‖, ‖∇_{λW} L‖) for each λ."""
    w, x, c = _ln_problem()
    return [(float((lam * w).norm()), float(ln_loss_grad(lam * w, x, c, eps).norm())) for lam in lams]


@claim(
    "F10",
    source=f"{SRC} Q2 §2, Q3 §3–4",
    claim="The gradient scales inversely with the weights: ∇_{λW}L = (1/λ)∇_W L, so ‖∇_W L‖ ∝ 1/‖W‖.",
    statement=(
        "Holds under conditions: exactly for ε = 0 (SymPy proves it for a 3×2 weight): λ·∇_{{λW}}L equals ∇_W L to a "
        "relative {rel_err_eps0:.1e} for every λ from 0.01 to 100, and the log–log slope of ‖∇L‖ against "
        "‖W‖ is {slope_eps0:.6f}. With ε = 1e-5 the brake weakens once λ²σ² approaches ε: at λ = 0.001 the relation is off by {rel_err_eps_small:.0%}."
    ),
    verdict="holds under conditions",
)
def f10() -> Evidence:
    w, x, c = _ln_problem()
    base = ln_loss_grad(w, x, c)

    def rel_err(lam: float, eps: float) -> float:
        g = lam * ln_loss_grad(lam * w, x, c, eps)
        ref = base if eps == 0 else ln_loss_grad(w, x, c, eps)
        return float((g - ref).norm() / ref.norm())

    lams = [10.0**k for k in torch.linspace(-2, 2, 9).tolist()]
    err0 = max(rel_err(lam, 0.0) for lam in lams)
    pts = gradient_norm_vs_weight_norm(lams)
    slope = loglog_slope([p[0] for p in pts], [p[1] for p in pts])
    err_eps = rel_err(1e-3, 1e-5)
    return Evidence(
        {"rel_err_eps0": err0, "slope_eps0": slope, "rel_err_eps_small": err_eps},
        {"exact_for_eps0": err0 < 1e-10, "slope_minus_one": abs(slope + 1) < 1e-9, "eps_deviates": err_eps > 0.01,
         "sympy_gradient_scaling": symbolic.agrees(symbolic.euler_identities(3, 2, 0), "euler.gradient_scaling")},
    )


# ----------------------------------------------------------------------------- Q2 §3: the landscape
# (F11 is defined further down, with its training experiment.)

# ----------------------------------------------------------------------------- Q3: the brake


def cosine_w_grad(eps: float = 0.0, lam: float = 1.0, with_bias: bool = False) -> float:
    """⟨W, ∇_W L⟩ / (‖W‖‖∇_W L‖) at λW; 0 means the gradient is orthogonal to the weights."""
    w, x, c = _ln_problem()
    b = randn(32, seed=14) if with_bias else None
    g = ln_loss_grad(lam * w, x, c, eps, b)
    return float((w * g).sum() / (w.norm() * g.norm()))


@claim(
    "F12",
    source=f"{SRC} Q2 §4, Q3 §5",
    claim="Scale invariance makes the gradient orthogonal to the weights (Euler's theorem, degree 0): "
    "⟨W, ∇_W L⟩ = 0.",
    statement=(
        "Holds under conditions: when W feeds the LayerNorm directly and ε = 0 (SymPy proves it, and that a bias breaks it): the cosine between W and ∇_W L is "
        "{cos_eps0:.1e}. It fails as soon as the invariance does: with ε = 1e-5 at small weights (λ = 0.001) "
        "the cosine is {cos_eps_small:.3f}, and with a bias between W and the LayerNorm (z = Wx + b) it is "
        "{cos_bias:.3f}."
    ),
    verdict="holds under conditions",
)
def f12() -> Evidence:
    cos0, cos_eps, cos_bias = cosine_w_grad(), cosine_w_grad(1e-5, 1e-3), cosine_w_grad(with_bias=True)
    return Evidence(
        {"cos_eps0": cos0, "cos_eps_small": cos_eps, "cos_bias": cos_bias},
        # Rounding leaves |cos| near 1e-16; 1e-3 is a real departure from orthogonality.
        {"orthogonal_eps0": abs(cos0) < 1e-12, "not_with_eps": abs(cos_eps) > 1e-3, "not_with_bias": abs(cos_bias) > 1e-3,
         "sympy_euler": symbolic.agrees(symbolic.euler_identities(3, 2, 0), "euler.inner_zero", "euler.bias_inner_zero")},
    )


def sgd_weight_norms(steps: int = 50, lr: float = 2.0):
    """Plain SGD on the scale-invariant loss: returns (‖W_t‖ for t = 0..steps, ‖g_t‖ for t = 0..steps−1)."""
    w, x, c = _ln_problem()
    norms_w, norms_g = [float(w.norm())], []
    for _ in range(steps):
        g = ln_loss_grad(w, x, c)
        w = w - lr * g
        norms_w.append(float(w.norm()))
        norms_g.append(float(g.norm()))
    return norms_w, norms_g


@claim(
    "F13",
    source=f"{SRC} Q3 §5",
    claim="A gradient step changes only the direction of W, not its length.",
    statement=(
        "Does not hold exactly: because the step is orthogonal to W, Pythagoras gives "
        "‖W − ηg‖² = ‖W‖² + η²‖g‖², so every step lengthens W (to first order in η the length is unchanged, "
        "which is all the source's argument shows). Over {steps} SGD steps ‖W‖ grows monotonically by a "
        "factor {growth:.3f}, matching the Pythagoras prediction to {pythagoras_rel_err:.1e}; the growth "
        "itself then shrinks the effective step size η/‖W‖²."
    ),
    verdict="does not hold",
)
def f13() -> Evidence:
    steps, lr = 50, 2.0
    norms_w, norms_g = sgd_weight_norms(steps, lr)
    predicted = [math.sqrt(a * a + (lr * g) ** 2) for a, g in zip(norms_w[:-1], norms_g)]
    rel = max(abs(p / m - 1) for p, m in zip(predicted, norms_w[1:]))
    return Evidence(
        {"steps": steps, "growth": norms_w[-1] / norms_w[0], "pythagoras_rel_err": rel},
        {"monotone_growth": all(b > a for a, b in zip(norms_w, norms_w[1:])),
         "grows_visibly": norms_w[-1] / norms_w[0] > 1.01,
         "pythagoras": rel < 1e-10},
    )


def z_over_sigma_jacobian(z: torch.Tensor) -> torch.Tensor:
    """The source's closed form for y = z/σ(z): J = I/σ − z (∂σ/∂z)ᵀ/σ², with ∂σ/∂z = (z − μ)/(nσ)."""
    n = z.numel()
    sigma = z.std(correction=0)
    dsigma = (z - z.mean()) / (n * sigma)  # (n,)
    return torch.eye(n, dtype=z.dtype) / sigma - torch.outer(z, dsigma) / sigma**2


@claim(
    "F14",
    source=f"{SRC} Q3 §3",
    claim="The Jacobian of z/σ(z) is (1/σ)I − (z/σ²)∂σ/∂z, so the gradient carries a factor 1/σ.",
    statement=(
        "Holds. The closed form matches autograd to {jac_diff:.1e}. Scaling z by λ divides the Jacobian by λ "
        "(relative error {scale_rel_err:.1e} for λ = 10), and for the full LayerNorm (ε = 0) of n ≥ 3 values "
        "the Jacobian's largest singular value is exactly 1/σ (σ·‖J‖₂ = {sigma_times_norm:.12f} at n = 6; at "
        "n = 2 it is {norm_n2:.0e}). The source's form assumes "
        "μ = 0; for a general z LayerNorm's Jacobian has the extra −11ᵀ/(nσ) term, and SymPy verifies the "
        "full closed form (1/s)(I − 11ᵀ/n − x̂x̂ᵀ/n) and its spectrum for every ε ≥ 0."
    ),
    verdict="holds",
)
def f14() -> Evidence:
    z = randn(6, seed=15) + 0.5
    jac = lambda f, v: torch.autograd.functional.jacobian(f, v)  # noqa: E731
    auto = jac(lambda v: v / v.std(correction=0), z)
    diff = max_abs(z_over_sigma_jacobian(z), auto)
    scale_err = float((z_over_sigma_jacobian(10 * z) * 10 - z_over_sigma_jacobian(z)).norm() / auto.norm())
    ln_jac = jac(lambda v: ln(v), z)
    sigma_norm = float(z.std(correction=0) * torch.linalg.matrix_norm(ln_jac, ord=2))
    norm_n2 = float(torch.linalg.matrix_norm(jac(lambda v: ln(v), z[:2]), ord=2))  # two values: outputs ±1 always
    return Evidence(
        {"jac_diff": diff, "scale_rel_err": scale_err, "sigma_times_norm": sigma_norm, "norm_n2": norm_n2},
        {"closed_form": diff < 1e-12, "inverse_scaling": scale_err < 1e-12, "norm_is_inv_sigma": abs(sigma_norm - 1) < 1e-12,
         "zero_at_n2": norm_n2 < 1e-12,
         "sympy_ln_jacobian": symbolic.agrees(symbolic.ln_identities(3), "ln.jacobian", "ln.spectral")},
    )


@claim(
    "F15",
    source=f"{SRC} Q2 closing",
    claim="Post-LN, Norm(x + SubLayer(x)), needs warm-up; Pre-LN, x + SubLayer(Norm(x)), trains more stably.",
    statement=(
        "Holds for the definitions, and our blocks implement them: the Post-LN block's output is normalized "
        "(row means within {post_mean:.1e} of 0, variances within {post_var_err:.1e} of 1 at initialization), "
        "and the Pre-LN block is the identity plus a branch (with the branch zeroed it returns its input, "
        "difference {pre_identity:.1e}). The training claims are measured in chapter 5 (R05, R22)."
    ),
    verdict="holds",
)
def f15() -> Evidence:
    torch.manual_seed(16)
    d = 32
    post, pre = Block(d, "post").double(), Block(d, "pre").double()
    x = randn(8, d, seed=17) * 3 + 1
    with torch.no_grad():
        y_post = post(x)
        post_mean = float(y_post.mean(-1).abs().max())
        post_var = float((y_post.var(-1, correction=0) - 1).abs().max())
        pre.sublayer.proj.weight.zero_()
        pre.sublayer.proj.bias.zero_()
        pre_identity = max_abs(pre(x), x)
    return Evidence(
        {"post_mean": post_mean, "post_var_err": post_var, "pre_identity": pre_identity},
        # ε = 1e-5 lowers the variance by about ε/σ²; σ² of x + F(x) is about 9 here.
        {"post_normalized": post_mean < 1e-12 and post_var < 1e-5, "pre_is_residual": pre_identity == 0.0},
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
        return ln(a)
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
        "cell changes by at most {max_invariant:.1e} (rounding), every other cell by at least "
        "{min_variant:.2f}."
    ),
    verdict="holds",
)
def f16() -> Evidence:
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
        f"| {k} | " + " | ".join(f"{word(is_invariant(table[k][t]))} ({table[k][t]:.0e})" for t in TRANSFORMS) + " |"
        for k in NORMALIZERS)
    published = head + "\n".join(f"| {k} | " + " | ".join(map(word, PUBLISHED[k])) + " |" for k in NORMALIZERS)
    return computed, published


# ----------------------------------------------------------------------------- F11: the landscape


def mlp(depth: int, width: int, use_ln: bool, d_in: int = 32, d_out: int = 4, seed: int = 0) -> torch.nn.Module:
    """ReLU MLP with He initialization (so the un-normalized baseline trains), optionally LN before each ReLU."""
    torch.manual_seed(seed)
    layers, d = [], d_in
    for _ in range(depth):
        lin = torch.nn.Linear(d, width)
        torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        torch.nn.init.zeros_(lin.bias)
        layers += [lin, LayerNorm(width)] if use_ln else [lin]
        layers.append(torch.nn.ReLU())
        d = width
    layers.append(torch.nn.Linear(d, d_out))
    return torch.nn.Sequential(*layers).double()


def teacher_data(n: int = 256, d_in: int = 32, d_out: int = 4, seed: int = 20):
    """A 4-class problem labelled by a noisy random teacher: (x (n, d_in), y (n,))."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen, dtype=F64)
    teacher = torch.randn(d_in, d_out, generator=gen, dtype=F64)
    y = (torch.tanh(x @ teacher) + 0.3 * torch.randn(n, d_out, generator=gen, dtype=F64)).argmax(1)
    return x, y


def _loss_and_grad(model, x, y, params: torch.Tensor):
    torch.nn.utils.vector_to_parameters(params, model.parameters())
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return float(loss.detach()), torch.cat([g.flatten() for g in grads])


@functools.lru_cache(maxsize=None)
def landscape(depth: int, lr: float, use_ln: bool, seed: int = 0, steps: int = 100, probes: int = 6,
              multiples=(0.25, 0.5, 1, 2, 4)):
    """Train with full-batch SGD; at ``probes`` points look along the gradient g (Santurkar et al. 2018).

    For step sizes η = lr·m (m in ``multiples``) it records the loss L(w − ηg) and the gradient change
    ‖∇L(w − ηg) − ∇L(w)‖ / ‖ηg‖ (an estimate of the local smoothness β). Returns one dict per probe.
    """
    model, (x, y) = mlp(depth, 32, use_ln, seed=seed), teacher_data()
    w = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    out = []
    for step in range(steps + 1):
        loss, g = _loss_and_grad(model, x, y, w)
        if step % (steps // (probes - 1)) == 0:
            along = [_loss_and_grad(model, x, y, w - lr * m * g) for m in multiples]
            out.append({
                "step": step, "loss": loss,
                "loss_min": min(a[0] for a in along), "loss_max": max(a[0] for a in along),
                "beta": max(float((a[1] - g).norm() / (lr * m * g.norm())) for a, m in zip(along, multiples)),
            })
        w = w - lr * g
    return out


LANDSCAPE_RUN = {"depth": 12, "lr": 0.1}  # deep enough, and a step large enough, for the plain net to struggle
LANDSCAPE_SEEDS = tuple(range(16))  # one training run is chaotic at this step size; 16 give a distribution


def landscape_ratios(seed: int) -> dict[str, float]:
    """Without-LN over with-LN: mean loss range along the gradient, largest β; and both final losses."""
    with one_thread():  # tiny matmuls: a thread pool only adds overhead, and thrashes on a busy machine
        runs = {key: landscape(**LANDSCAPE_RUN, use_ln=use_ln, seed=seed) for key, use_ln in (("none", False), ("ln", True))}
    loss_range = {k: sum(p["loss_max"] - p["loss_min"] for p in r) / len(r) for k, r in runs.items()}
    beta = {k: max(p["beta"] for p in r) for k, r in runs.items()}
    return {"loss_range": loss_range["none"] / loss_range["ln"], "beta": beta["none"] / beta["ln"],
            "final_none": runs["none"][-1]["loss"], "final_ln": runs["ln"][-1]["loss"]}


def median(values) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def ln_gradient_norm_identity(n: int = 64, seed: int = 21):
    """‖∇_z L‖ for L depending on z through y = LN(z) (ε = 0), against its closed form and its bound.

    With g = ∇_y L, the Jacobian of chapter 1 gives
    ‖∇_z L‖² = (‖g‖² − ⟨g, 1⟩²/n − ⟨g, x̂⟩²/n) / σ²  ≤  ‖g‖²/σ²  (Santurkar et al. 2018, Thm 4.1, for LN).
    Returns (measured norm, closed form, bound).
    """
    z = (randn(n, seed=seed) * 3 + 1).requires_grad_(True)
    g = randn(n, seed=seed + 1)
    (grad_z,) = torch.autograd.grad((g * ln(z)).sum(), z)
    z = z.detach()
    sigma = z.std(correction=0)
    xhat = (z - z.mean()) / sigma
    closed = torch.sqrt(g @ g - g.sum() ** 2 / n - (g @ xhat) ** 2 / n) / sigma
    return float(grad_z.norm()), float(closed), float(g.norm() / sigma)


@claim(
    "F11",
    source=f"{SRC} Q2 §3",
    claim="LayerNorm smooths the loss landscape: the loss and its gradient vary less (lower Lipschitz "
    "constants), so larger steps are safe.",
    statement=(
        "Holds under conditions: exactly for the gradient passing through the norm; in training only weakly, and not for the "
        "gradient's smoothness. Exactly: the gradient "
        "reaching the pre-norm activations z is the upstream gradient with its components along 1 and x̂ "
        "removed and divided by σ (closed form matches autograd to {identity_rel_err:.1e}), so it never "
        "exceeds ‖∇_y L‖/σ. Empirically, over {seeds} initializations of a 12-layer ReLU MLP trained at "
        "learning rate 0.1 and probed along the gradient (steps of ¼ to 4 learning rates, Santurkar et al.'s "
        "probe), the loss varies a median {loss_range_ratio:.1f}× as much without LayerNorm as with it (more "
        "with LayerNorm in {ln_rougher:d} runs), and LayerNorm ends at the lower loss in {ln_lower:d}; the "
        "largest gradient change per unit step (β) is the same (median ratio {beta_ratio:.2f}). The "
        "uniform smoothing of loss and gradient that the source describes does not show at this scale."
    ),
    verdict="holds under conditions",
)
def f11() -> Evidence:
    measured, closed, bound = ln_gradient_norm_identity()
    runs = [landscape_ratios(seed) for seed in LANDSCAPE_SEEDS]
    nums = {
        "identity_rel_err": abs(measured / closed - 1),
        "bound_ratio": measured / bound,
        "seeds": len(runs),
        "loss_range_ratio": median(r["loss_range"] for r in runs),
        "beta_ratio": median(r["beta"] for r in runs),
        "ln_lower": sum(r["final_ln"] < r["final_none"] for r in runs),
        "ln_rougher": sum(r["loss_range"] < 1 for r in runs),
    }
    return Evidence(
        nums,
        # The empirical bounds leave room on both sides of the measured medians: individual runs are
        # chaotic at this learning rate (a 1e-6 perturbation of the weights changes a run's losses).
        {"closed_form": nums["identity_rel_err"] < 1e-12, "below_bound": nums["bound_ratio"] <= 1,
         "loss_smoother_with_ln": nums["loss_range_ratio"] > 1,
         "not_in_every_run": nums["ln_rougher"] > 0,
         "ln_usually_lower": nums["ln_lower"] > nums["seeds"] / 2,
         "beta_about_equal": 0.8 < nums["beta_ratio"] < 1.25},
    )


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float | str]:
    """The chapter's exercise answers, computed (the suite checks them against closed forms)."""
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)
    xhat = ln(x)
    eig = sorted(torch.linalg.eigvalsh(torch.autograd.functional.jacobian(ln, x)).tolist())
    table = invariance_table()
    differ = [t for t in TRANSFORMS if is_invariant(table["layer norm"][t]) != is_invariant(table["RMSNorm"][t])]
    return {
        "onehot_big": float(xhat[0]),
        "onehot_small": float(xhat[1]),
        "onehot_eig_max": eig[-1],
        "onehot_eig_zero_count": sum(abs(e) < 1e-12 for e in eig),
        "ln_vs_rms_column": "; ".join(differ),
    }
