"""Chapter 2 (seed 001), book/02_principles: γ and β, claims M06–M08.

Section of the chapter: "γ and β": what the mean subtraction removes (and what it does not), the bias
before a norm, and the gradients of γ and β under a uniform upstream gradient and in a small trained MLP
(five seeds of 60 full-batch steps, about 2.5 s of CPU). The rest of the chapter is
:mod:`lnbook.experiments.principles`.
"""

from __future__ import annotations

import math

import torch

from lnbook import norms
from lnbook.claims import claim
from lnbook.experiments.common import F64, ln, ln_grads, loglog_slope, max_abs, one_thread, over_seeds, randn, seeded_start
from lnbook.experiments.toys import teacher_data
from lnbook.models import LayerNorm, relu_mlp

SRC = "seed 001"
CHAPTER = "book/02_principles"  # the chapter that shows this module's claims


# ----------------------------------------------------------------------------- §4: γ and β


@claim(
    "M06",
    source=f"{SRC} §4",
    claim="A constant bias vector (all entries equal, e.g. 0.7) added before LayerNorm is cancelled by the "
    "mean subtraction.",
    statement=(
        "Holds, for every ε: adding c·1 moves the mean by c and leaves every deviation from the mean, hence "
        "the variance, unchanged, so LN(z + c·1) = LN(z). For c from −3 to 100, with ε = 0 and 1e-5, the "
        "largest difference in float64 is {ln_diff:.2g} (rounding). It is the mean subtraction that does "
        "it: RMSNorm, which does not centre, changes by up to {rms_diff:.2f} under c = 0.7."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        # Computed in float64, against the identity: rounding z + c costs up to |c|·2⁻⁵³ per value, divided
        # by σ ≈ 1: ≈ 1e-14 at c = 100.
        "ln_removes_constant": n["ln_diff"] < 1e-12, "rms_keeps_constant": n["rms_diff"] > 0.1,
    },
    # The world without the mean subtraction: LayerNorm changing under c·1 as RMSNorm does.
    null=lambda n: {**n, "ln_diff": n["rms_diff"]},
)
def m06() -> dict:
    r"""The evidence for M06. See book/02_principles.ipynb, section "$\gamma$ and $\beta$"."""
    z = randn(64, 16, seed=38)
    shifts, diffs = (-3.0, 0.7, 100.0), []
    for c in shifts:
        for eps in (0.0, 1e-5):
            diffs.append(max_abs(ln(z + c, eps), ln(z, eps)))
    rms = lambda v: norms.rms_norm(v, v.shape[-1:], eps=1e-5)  # noqa: E731
    return {"ln_diff": max(diffs), "rms_diff": max_abs(rms(z + 0.7), rms(z))}


def per_feature_fit_r2(source: torch.Tensor, target: torch.Tensor, with_gamma: bool) -> float:
    """Share of ‖target − source‖² that the best per-feature map source·γ + β (or source + β) explains.

    Least squares column by column over the batch (B, d); 1 means a per-feature affine absorbs the change.
    """
    effect = target - source
    if with_gamma:
        sc, tc = source - source.mean(0), target - target.mean(0)
        gamma = (sc * tc).sum(0) / (sc * sc).sum(0)  # (d,)
        residual = tc - gamma * sc
    else:
        residual = effect - effect.mean(0)
    return 1 - float(residual.square().sum() / effect.square().sum())


@claim(
    "M07",
    source=f"{SRC} §4",
    claim="So the bias of a linear layer followed by LayerNorm is redundant and can be dropped; β adds back any "
    "useful bias.",
    statement=(
        "Does not hold for a general bias. Write b = b̄·1 + b⊥ with b⊥ summing to zero: LayerNorm removes "
        "b̄·1 exactly (difference {mean_part_diff:.2g}) and nothing else, so LN(z + b) = LN(z + b⊥) "
        "({perp_equiv_diff:.2g}). The rest moves the output by up to {full_diff:.2f}, and how it moves "
        "depends on the sample, through its σ and x̂: over {batch} samples z = Wx the best per-feature β "
        "explains {beta_r2:.0%} of the change (its squared norm) and the best per-feature γ and β together "
        "{affine_r2:.0%}. Only the mean of the bias is redundant; dropping the whole bias is a modelling "
        "choice, not an identity."
    ),
    verdict="does not hold",
    decide=lambda n: {
        # float64 rounding: the mean part is removed exactly.
        "mean_part_removed": n["mean_part_diff"] < 1e-12 and n["perp_equiv_diff"] < 1e-12,
        "rest_changes_output": n["full_diff"] > 0.1,
        # A per-feature affine that absorbed the bias would explain all of it (R² = 1 up to rounding).
        "beta_cannot_absorb": n["beta_r2"] < 0.95, "affine_cannot_absorb": n["affine_r2"] < 0.99,
    },
    # The source's world: β (with γ) absorbs the whole bias, so dropping it loses nothing.
    null=lambda n: {**n, "beta_r2": 1.0, "affine_r2": 1.0},
)
def m07() -> dict:
    r"""The evidence for M07. See book/02_principles.ipynb, section "$\gamma$ and $\beta$"."""
    w, x = randn(16, 16, seed=39) / 4, randn(256, 16, seed=40)
    z = x @ w.T  # (256, 16): pre-activations of a linear layer
    b = randn(16, seed=41) + 0.7  # a general bias with a nonzero mean
    b_perp = b - b.mean()
    base, full = ln(z, 1e-5), ln(z + b, 1e-5)
    return {"batch": z.shape[0], "mean_part_diff": max_abs(ln(z + b.mean(), 1e-5), base),
            "perp_equiv_diff": max_abs(full, ln(z + b_perp, 1e-5)), "full_diff": max_abs(full, base),
            "beta_r2": per_feature_fit_r2(base, full, False), "affine_r2": per_feature_fit_r2(base, full, True)}


M08_BATCHES = (8, 64, 1024)
M08_SEEDS = (0, 1, 2, 3, 4)
# A small trained network: relu_mlp (width 32, two hidden layers, LayerNorm before each ReLU) on the teacher
# problem's 256 samples, full-batch Adam. At 60 steps it classifies every training sample correctly (loss
# 0.002–0.004 over the five seeds): trained, and cheap (about 2.5 s of CPU for the five).
M08_NET = {"depth": 2, "width": 32, "steps": 60, "lr": 1e-2}


def dgamma_ratio(x: torch.Tensor, c: float = 0.3) -> float:
    """max_i |Σ_b dγ_i| / Σ_b dβ_i under a uniform upstream gradient c·1 over the rows of x (B, d):
    the largest |mean over the batch of x̂_bi|."""
    _, dg, db = ln_grads(x, torch.full_like(x, c))
    return float(dg.abs().max() / db[0])


def batch_dgamma_ratio(batch: int, offsets: bool, seed: int, d: int = 16) -> float:
    """:func:`dgamma_ratio` over ``batch`` rows of width d drawn N(0, 1) per feature, plus per-feature offsets
    2·N(0, 1) drawn once and shared by every row when ``offsets`` (features with persistent means), else
    plus 1 everywhere (which LN removes)."""
    shift = 2 * randn(d, seed=seed + 500) if offsets else torch.ones(d, dtype=F64)
    return dgamma_ratio(randn(batch, d, seed=seed) + shift)


def trained_ln_inputs(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The features entering each LayerNorm of a trained :data:`M08_NET` network, on its 256 training samples,
    and each LayerNorm's learned γ."""
    x, y = teacher_data()
    model = seeded_start(relu_mlp(M08_NET["depth"], M08_NET["width"], "layer", seed=seed))
    opt = torch.optim.Adam(model.parameters(), lr=M08_NET["lr"])
    with one_thread():  # tiny matmuls: a thread pool only adds overhead
        for _ in range(M08_NET["steps"]):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        feats = []
        hooks = [m.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach()))
                 for m in model if isinstance(m, LayerNorm)]
        with torch.no_grad():
            model(x)
    for h in hooks:
        h.remove()
    return feats, [m.weight.detach().clone() for m in model if isinstance(m, LayerNorm)]


def _decide_m08(n) -> dict[str, bool]:
    rounding = 1e-12  # float64 sums of 16–128 terms of size ≤ 1: rounding is ≈ 1e-15
    slope = {k: loglog_slope(M08_BATCHES, [n[f"{k}_{b}"] for b in M08_BATCHES]) for k in ("iid", "offset")}
    # The trained features against i.i.d. rows of the same batch and width: a difference of means beyond
    # three standard errors of the difference, each from its seeds' spread.
    se = math.sqrt((n["trained_sd"] ** 2 + n["iid_256_sd"] ** 2) / n["seeds"])
    return {
        # A random walk: the sums grow like √B against B for dβ, a ratio ∝ B^−1/2 (±0.15 for five seeds).
        "iid_cancels_like_random_walk": abs(slope["iid"] + 0.5) < 0.15,
        # Persistent offsets: the ratio does not fall with the batch, and stays of the order of dβ's.
        "offsets_do_not_cancel": abs(slope["offset"]) < 0.1 and n["offset_1024"] > 0.5,
        "trained_features_keep_offsets": n["trained_mean"] - n["iid_256"] > 3 * se,
        # Training spreads γ across features, so the signal reaches x. γ starts at exactly 1 in every feature;
        # a spread of 0.01 (1 % of that start) is the cut, and the mean must clear it by three standard errors.
        "trained_gamma_varies": n["trained_gamma_sd"] - 3 * n["trained_gamma_sd_spread"] / math.sqrt(n["seeds"]) > 0.01,
        "dbeta_is_c": n["dbeta_batch_err"] < rounding and abs(n["dbeta_norm"] - n["c"] * math.sqrt(n["d"])) < rounding,
        # autograd's dγ against the closed form |c|·√d·σ/√(σ²+ε), and its sum against Σ x̂ = 0.
        "dgamma_closed_form": abs(n["dgamma_norm"] - n["dgamma_closed"]) < rounding,
        "dgamma_sums_to_zero": abs(n["dgamma_sum"]) < rounding,
        "dx_zero_for_uniform_gamma": n["dx_uniform_gamma"] < rounding,
        "dx_nonzero_otherwise": n["dx_random_gamma"] > 0.01,
        # autograd against the closed form c·Σx̂² = c·d·σ²/(σ²+ε), and Σ x̂ = 0.
        "contrast_to_gamma": abs(n["contrast_dgamma_sum"] - n["contrast_closed"]) < rounding,
        "contrast_not_to_beta": abs(n["contrast_dbeta_sum"]) < rounding,
    }


def _source_world_m08(n) -> dict:
    """The numbers of the source's world: γ's gradient essentially zero under a uniform signal, so that nothing
    is left to add up over a batch, offsets or not, trained or not."""
    return {**n, "dgamma_norm": abs(n["dgamma_sum"]), "dgamma_over_dbeta": abs(n["dgamma_sum"]) / n["dbeta_norm"],
            **{f"offset_{b}": n[f"iid_{b}"] for b in M08_BATCHES},
            "trained_mean": n["iid_256"], "trained_sd": n["iid_256_sd"], "trained_gamma_sd": 0.0}


@claim(
    "M08",
    source=f"{SRC} §4",
    claim="If the upstream error signal is uniform across features, γ's gradient is essentially zero; "
    "uniform shifts go to β, and γ gets a strong signal only when more variation is needed.",
    statement=(
        "Does not hold as stated; what holds is about γ's sum. With a uniform upstream gradient dy = c·1, β "
        "gets c per feature and sample, as the source says, but γ gets c·x̂: a vector as long as β's gradient "
        "up to the factor σ/√(σ²+ε), close to 1, and far from zero. What vanishes is its sum "
        "over features, since x̂ sums to zero: a uniform signal cannot move γ's overall level but pushes each "
        "γᵢ up or down. Over a batch of i.i.d. rows these pushes cancel like a random walk; over features "
        "that keep an offset from sample to sample they add up. In a small trained network the features "
        "entering the LayerNorm after a ReLU layer keep such offsets: the largest |Σ dγᵢ| relative to Σ dβᵢ "
        "over its 256 training samples is {trained_mean:.2f} ± {trained_sd:.2f} ({seeds} seeds), against "
        "{iid_256:.2f} for i.i.d. rows. The signal reaches x only once γ varies across features, and a "
        "contrast signal dy = c·x̂ goes to γ's sum and not to β."
    ),
    verdict="does not hold",
    decide=_decide_m08,
    # The source's world: γ's gradient as small as its sum, and the batch sums cancelling whatever the data.
    null=_source_world_m08,
    outcomes=("trained_mean", "trained_sd", "trained_first_mean", "trained_gamma_sd", "trained_gamma_sd_spread"),
)
def m08() -> dict:
    r"""The evidence for M08. See book/02_principles.ipynb, section "$\gamma$ and $\beta$"."""
    c, d, eps = 0.3, 16, 1e-5
    x = randn(8, d, seed=42) * 2 + 1
    one = x[:1]
    _, dg1, db1 = ln_grads(one, torch.full_like(one, c))
    sigma = float(one.std(correction=0))
    dxb, _, dbb = ln_grads(x, torch.full_like(x, c))
    dx_r, _, _ = ln_grads(x, torch.full_like(x, c), 1 + 0.5 * randn(d, seed=43))
    _, dg_con, db_con = ln_grads(one, c * ln(one, eps))
    nums = {
        "c": c, "d": d, "dgamma_norm": float(dg1.norm()), "dbeta_norm": float(db1.norm()),
        "dgamma_closed": c * math.sqrt(d) * sigma / math.sqrt(sigma**2 + eps),
        "dgamma_over_dbeta": float(dg1.norm() / db1.norm()), "dgamma_sum": float(dg1.sum()),
        "dbeta_batch_err": max_abs(dbb, torch.full_like(dbb, c * x.shape[0])),
        "dx_uniform_gamma": float(dxb.abs().max()), "dx_random_gamma": float(dx_r.abs().max()),
        "contrast_dgamma_sum": float(dg_con.sum()), "contrast_closed": c * d * sigma**2 / (sigma**2 + eps),
        "contrast_dbeta_sum": float(db_con.sum()), "seeds": len(M08_SEEDS),
    }
    for offsets in (False, True):
        for b in M08_BATCHES:
            runs = [batch_dgamma_ratio(b, offsets, s) for s in M08_SEEDS]
            nums[f"{'offset' if offsets else 'iid'}_{b}"] = sum(runs) / len(runs)
    width = M08_NET["width"]
    iid = over_seeds(batch_dgamma_ratio(256, False, s, d=width) for s in M08_SEEDS)
    nets = [trained_ln_inputs(s) for s in M08_SEEDS]  # per seed: (features, γ) of each LayerNorm
    after_relu, first = (over_seeds(dgamma_ratio(feats[k]) for feats, _ in nets) for k in (1, 0))
    gamma_sd = over_seeds(float(gammas[1].std()) for _, gammas in nets)  # γ's spread across features
    return {**nums, "iid_256": iid.mean, "iid_256_sd": iid.sd, "trained_mean": after_relu.mean,
            "trained_sd": after_relu.sd, "trained_first_mean": first.mean, "trained_gamma_sd": gamma_sd.mean,
            "trained_gamma_sd_spread": gamma_sd.sd}
