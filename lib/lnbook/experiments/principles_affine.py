"""Chapter 2 (seed 001), book/02_principles: γ and β, claims M06–M08.

Section of the chapter: "γ and β": what the mean subtraction removes (and what it does not), the bias
before a norm (an identity, and a paired training measurement: five seeds of two small networks with and
without the bias, about 6 s of CPU), and the gradients of γ and β under a uniform upstream gradient and in a
small trained MLP (five seeds of 60 full-batch steps, about 2.5 s of CPU). The rest of the chapter is
:mod:`lnbook.experiments.principles`.
"""

from __future__ import annotations

import math

import torch

from lnbook import norms
from lnbook.claims import claim
from lnbook.experiments.common import (
    F64,
    ln,
    ln_grads,
    loglog_slope,
    max_abs,
    one_thread,
    over_seeds,
    randn,
    seeded_start,
)
from lnbook.experiments.toys import teacher_data
from lnbook.models import LayerNorm, relu_mlp

CHAPTER = "book/02_principles"  # the chapter that shows this module's claims
HEADING = "可学习参数的隐藏天才"  # the heading of seed 001 over γ and β


# ----------------------------------------------------------------------------- §4: γ and β


@claim(
    "M06",
    anchors=(("001", HEADING, "这个平移在很大程度上会被减去均值的操作抵消掉"),
             ("001", HEADING, "网络不需要学习去对抗一个统一的偏置")),
    claim="A constant bias vector (all entries equal, e.g. 0.7) added before LayerNorm is largely cancelled by "
    "the mean subtraction, so the network need not learn to counter it.",
    statement=(
        "Holds, and exactly rather than largely, for every ε: adding c·1 moves the mean by c and leaves every deviation from the mean, hence "
        "the variance, unchanged, so LN(z + c·1) = LN(z). For c from −3 to 100, with ε = 0 and 10⁻⁵, the "
        "two agree in float64 to rounding. It is the mean subtraction that does "
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
    answer_zh="成立，而且是精确抵消而非“在很大程度上”抵消：对任何 ε，加上常数向量 c·1 只移动均值、不改变偏离均值的部分，"
    "c 从 −3 到 100 时 float64 下两者只差舍入误差；不减均值的 RMSNorm 在 c = 0.7 时输出变化可达 {rms_diff:.2f}。",
)
def m06() -> dict:
    r"""The evidence for M06. See book/02_principles.ipynb, section "$\gamma$ and $\beta$"."""
    z = randn(64, 16, seed=38)
    shifts, diffs = (-3.0, 0.7, 100.0), []
    for c in shifts:
        for eps in (0.0, 1e-5):
            diffs.append(max_abs(ln(z + c, eps), ln(z, eps)))
    rms = lambda v: norms.rms_norm(v, v.shape[-1:], eps=1e-5)
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


M07_SEEDS = (0, 1, 2, 3, 4)
# Two small networks (relu_mlp, width 32, LayerNorm before each ReLU) on a teacher problem whose hidden units
# have thresholds (so biases could matter): 512 training samples, 1024 held out, 60 full-batch Adam steps.
# With one hidden layer the linear layer reads the zero-mean input, so its weights cannot stand in for a bias;
# with two, the second reads ReLU outputs, whose positive means let W make a bias of its own.
M07_NET = {"width": 32, "train": 512, "test": 1024, "steps": 60, "lr": 2e-2, "depths": (1, 2)}
M07_MARGIN = 0.01  # held-out accuracy: about one seed's spread of one network's accuracy (0.3–0.6 points here)


def threshold_teacher(n: int, d_in: int = 32, d_out: int = 4, seed: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels from a noisy ReLU teacher with offsets, argmax(relu(x A + c) B + noise): (x (n, d_in), y (n,))."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen, dtype=F64)
    a = torch.randn(d_in, 32, generator=gen, dtype=F64) / math.sqrt(d_in)
    c = torch.randn(32, generator=gen, dtype=F64)  # the teacher's thresholds
    b = torch.randn(32, d_out, generator=gen, dtype=F64)
    y = (torch.relu(x @ a + c) @ b + 0.3 * torch.randn(n, d_out, generator=gen, dtype=F64)).argmax(1)
    return x, y


def held_out_accuracy(depth: int, bias: bool, seed: int) -> float:
    """Held-out accuracy of a :data:`M07_NET` network trained with (or without) the bias of every linear layer
    that feeds a LayerNorm. Both start from the same weights (relu_mlp's biases start at zero), so a seed's
    two runs differ only in whether those biases can learn."""
    net = M07_NET
    x, y = threshold_teacher(net["train"] + net["test"])
    xtr, ytr, xte, yte = x[: net["train"]], y[: net["train"]], x[net["train"]:], y[net["train"]:]
    model = relu_mlp(depth, net["width"], "layer", seed=seed)
    if not bias:
        for layer in list(model)[:-1]:  # the last linear layer feeds no LayerNorm: it keeps its bias
            if isinstance(layer, torch.nn.Linear):
                layer.bias = None
    model = seeded_start(model)
    opt = torch.optim.Adam(model.parameters(), lr=net["lr"])
    with one_thread():  # tiny matmuls: a thread pool only adds overhead
        for _ in range(net["steps"]):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xtr), ytr).backward()
            opt.step()
        with torch.no_grad():
            return float((model(xte).argmax(1) == yte).to(F64).mean())


def _decide_m07(n) -> dict[str, bool]:
    harmless = {}
    for depth in M07_NET["depths"]:
        # What removing the bias does to held-out accuracy (without minus with, paired by seed): harmless when
        # its mean plus two standard errors stays inside the margin, either sign.
        se = n[f"d{depth}_change_sd"] / math.sqrt(n["seeds"])
        harmless[f"removal_harmless_depth{depth}"] = abs(n[f"d{depth}_change_mean"]) + 2 * se < n["margin"]
    return {
        # float64 rounding: the mean part is removed exactly.
        "mean_part_removed": n["mean_part_diff"] < 1e-12 and n["perp_equiv_diff"] < 1e-12,
        "rest_changes_output": n["full_diff"] > 0.1,
        # A per-feature affine that absorbed the bias would explain all of it (R² = 1 up to rounding).
        "beta_cannot_absorb": n["beta_r2"] < 0.95, "affine_cannot_absorb": n["affine_r2"] < 0.99,
        # The networks learned the task (chance is 25 %), so an accuracy difference could show.
        "networks_learn": n["acc_mean"] > 0.8,
        **harmless,
    }


def _source_wrong_m07(n) -> dict:
    """The numbers of a world where the bias mattered: removing it costs five points of held-out accuracy."""
    return {**n, **{f"d{depth}_change_mean": -0.05 for depth in M07_NET["depths"]}}


@claim(
    "M07",
    anchors=(("001", HEADING, "偏置 $b$ 通常是多余的"), ("001", HEADING, "可以在不损害性能的情况下移除"),
             ("001", HEADING, "参数可以学习加回任何特定的")),
    claim="So when LayerNorm follows a linear layer, that layer's bias is usually redundant and can be removed "
    "without hurting performance; β can learn to add back any useful per-feature bias. Read as the source "
    "argues it: an empirical claim about performance ('usually', 'without hurting'), not an identity.",
    statement=(
        "Holds under conditions: in the small networks measured, for performance, not as an identity. Removing "
        "the bias of every linear layer that feeds a LayerNorm changes held-out accuracy by {d1_change_mean:+.2%} "
        "(percentage points) with one hidden layer, whose linear layer reads the zero-mean input so that its "
        "weights cannot make a bias, and by {d2_change_mean:+.2%} with two (without minus with, mean over "
        "{seeds} paired seeds, at an accuracy of {acc_mean:.1%}): each inside a margin of {margin:.0%}, about "
        "one seed's spread, even with two standard errors added. Exactly redundant is only the bias's mean b̄·1, which LayerNorm "
        "removes to rounding. The rest, b⊥ = b − b̄·1, moves the output in a way that depends on each "
        "sample's σ and x̂, and a per-feature β explains only {beta_r2:.0%} of that change (γ and β together "
        "not all of it): β does not replace b⊥, training simply does not need it here. Whether 'usually' "
        "reaches large models these toys cannot say."
    ),
    verdict="holds under conditions",
    decide=_decide_m07,
    # The world where the bias mattered: its removal costs five points of accuracy.
    null=_source_wrong_m07,
    outcomes=("d1_change_mean", "d1_change_sd", "d2_change_mean", "d2_change_sd", "acc_mean"),
    answer_zh="有条件成立：在所测的小网络中，作为对性能的判断而非恒等式——去掉 LayerNorm 之前线性层的偏置，"
    "单隐层网络的留出准确率变化 {d1_change_mean:+.2%}，双隐层 {d2_change_mean:+.2%}（百分点，{seeds} 个种子配对的均值，"
    "准确率约 {acc_mean:.1%}），都在 {margin:.0%} 的容差内；但严格多余的只是偏置的均值部分，其余部分随每个样本的 σ 和 x̂ "
    "改变输出，逐特征的 β 只能解释其中 {beta_r2:.0%}。",
)
def m07() -> dict:
    r"""The evidence for M07. See book/02_principles.ipynb, section "$\gamma$ and $\beta$"."""
    w, x = randn(16, 16, seed=39) / 4, randn(256, 16, seed=40)
    z = x @ w.T  # (256, 16): pre-activations of a linear layer
    b = randn(16, seed=41) + 0.7  # a general bias with a nonzero mean
    b_perp = b - b.mean()
    base, full = ln(z, 1e-5), ln(z + b, 1e-5)
    nums = {"batch": z.shape[0], "mean_part_diff": max_abs(ln(z + b.mean(), 1e-5), base),
            "perp_equiv_diff": max_abs(full, ln(z + b_perp, 1e-5)), "full_diff": max_abs(full, base),
            "beta_r2": per_feature_fit_r2(base, full, False), "affine_r2": per_feature_fit_r2(base, full, True),
            "seeds": len(M07_SEEDS), "margin": M07_MARGIN}
    accs = []
    for depth in M07_NET["depths"]:
        pairs = [(held_out_accuracy(depth, True, s), held_out_accuracy(depth, False, s)) for s in M07_SEEDS]
        change = over_seeds(without_b - with_b for with_b, without_b in pairs)
        nums[f"d{depth}_change_mean"], nums[f"d{depth}_change_sd"] = change.mean, change.sd
        accs += [a for pair in pairs for a in pair]
    return {**nums, "acc_mean": sum(accs) / len(accs)}


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
    anchors=(("001", HEADING, "在所有特征上是均匀的"), ("001", HEADING, "将所有特征向上或向下调整相同的量"),
             ("001", HEADING, "才会收到一个强烈的信号来增加输出方差")),
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
    answer_zh="不成立：均匀的上游梯度 dy = c·1 使 β 的梯度为 c，而 γ 的梯度是 c·x̂，并不接近零，趋于零的只是它在各特征上的和，"
    "所以均匀信号会把各个 γᵢ 推上推下；在一个训练好的小网络中，ReLU 之后那个 LayerNorm 的输入特征保留着偏移，256 个训练样本上"
    "|Σdγᵢ| 与 Σdβᵢ 之比的最大值为 {trained_mean:.2f} ± {trained_sd:.2f}（{seeds} 个种子），而独立同分布的行只有 {iid_256:.2f}。",
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
