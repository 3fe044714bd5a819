"""Chapter 1 (seed 000), book/01_foundations: the computations behind claims F01–F07, F16 and F17.

Sections of the chapter: "The formula" (F01–F03, F17), "LayerNorm against BatchNorm" (F04, F05),
"Why language models prefer LayerNorm" (F06), "RMSNorm" (F07), "The invariance table" (F16) and the
exercises. The chapter's second half, on stability and gradients (F08–F15), is
:mod:`lnbook.experiments.foundations_gradients`.

Every function is seeded and small (the whole chapter runs in well under a minute on 2 CPU cores).
Functions named after a quantity return data (for figures and the prose); the functions decorated
with :func:`lnbook.claims.claim` measure the numbers of one claim, which its decision checks.
"""

from __future__ import annotations

import math

import torch

from lnbook import norms
from lnbook.claims import claim
from lnbook.experiments.common import (
    F64,
    FLOPS_PER_ELEMENT,
    H100,
    count_flops,
    ln,
    loglog_slope,
    max_abs,
    randn,
    roofline_seconds,
)
from lnbook.experiments.toys import padded_batch
from lnbook.kernels import traffic

# The headings of seed 000 that this module's anchors cite, as the seed writes them.
INTUITION = "2. LayerNorm 的核心直觉"
ANALOGY = "通俗类比："
STEP1 = "第一步：计算均值 (Mean) 和方差 (Variance)"
STEP2 = "第二步：归一化 (Normalization)"
STEP3 = "第三步：仿射变换 (Affine Transformation)"
VERSUS = "4. 核心对比：LayerNorm vs Batch Normalization"
NLP = "5. 为什么 NLP/Transformer 偏爱 LayerNorm？"
RMS = "6. 进阶：RMSNorm (Root Mean Square Normalization)"
CHAPTER = "book/01_foundations"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- §3: the formula


@claim(
    "F01",
    anchors=(("000", INTUITION, "在“单个样本”的范围内，对其所有特征进行归一化"),
             ("000", INTUITION, "它不关心你这一个 Batch 里有多少其他样本"),
             ("000", ANALOGY, "这依赖于“全班同学”（Batch）的数据"),
             ("000", STEP1, "与 Batch Size 完全无关"),
             ("000", VERSUS, "在同一个样本内，计算所有特征通道的均值"),
             ("000", VERSUS, "Batch Size 为 1 也能照常工作"),
             ("000", NLP, "而 LN 对 Batch Size 不敏感")),
    claim="LayerNorm's statistics are taken over the H features of one sample, so its output does not depend on "
    "the batch (it works the same with a batch of one), whereas BatchNorm's statistics, taken per feature across "
    "the samples, depend on the batch.",
    statement=(
        "Holds. A sample normalized alone and inside batches of 1, 8 and 64 gives the same output "
        "(largest difference {ln_batch_diff:.2g} in float32), while BatchNorm's output for the same sample "
        "changes by up to {bn_batch_diff:.2f} between batches of 8 and 64."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # Rows are reduced independently; 1e-6 allows for a differently vectorized reduction.
        "ln_independent_of_batch": n["ln_batch_diff"] <= 1e-6,
        # Batch statistics of 8 and 64 N(0, 1) samples differ by tenths; 0.1 is well inside that.
        "bn_depends_on_batch": n["bn_batch_diff"] > 0.1,
    },
    # A world where LayerNorm's output moves with the batch as much as BatchNorm's does.
    null=lambda n: {**n, "ln_batch_diff": n["bn_batch_diff"]},
    answer_zh="成立：同一个样本单独归一化与放在 1、8、64 个样本的批次中归一化，LayerNorm 的输出相同（float32 下最大差异 "
    "{ln_batch_diff:.2g}），而 BatchNorm 对同一样本的输出在批次为 8 与 64 之间最多相差 {bn_batch_diff:.2f}。",
)
def f01() -> dict:
    """The evidence for F01. See book/01_foundations.ipynb, section "The formula"."""
    x = randn(64, 32, seed=1, dtype=torch.float32)  # (B, H)
    alone = ln(x[:1], eps=1e-5)
    ln_diff = max(max_abs(ln(x[:b], eps=1e-5)[:1], alone) for b in (1, 8, 64))
    bn = {b: norms.batch_norm(x[:b], None, None, training=True)[:1] for b in (8, 64)}
    bn_diff = max_abs(bn[8], bn[64])
    return {"ln_batch_diff": ln_diff, "bn_batch_diff": bn_diff}


@claim(
    "F02",
    anchors=(("004", "4.3 实现细节与代码解析", "它在方差极小时防止分母为零"),
             ("000", STEP2, "用于防止分母为 0"),),
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
    answer_zh="成立，而且 ε 的作用不止于此：对常数向量，ε = 0 时 {n} 个输出中有 {nan_count} 个是 NaN，ε = 1e-5 时输出恰为 0；"
    "对几乎为常数的向量（σ = {sigma_small:.1g}），ε 还把输出的标准差压到 σ/√(σ²+ε) = {std_small:.3f}，而不是 1。",
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


def ks_distance_to_normal(v: torch.Tensor) -> float:
    """Kolmogorov–Smirnov distance between the empirical distribution of ``v`` and N(0, 1)."""
    v, _ = v.sort()
    n = v.numel()
    cdf = 0.5 * (1 + torch.erf(v / math.sqrt(2)))
    i = torch.arange(1, n + 1, dtype=v.dtype)
    return float(torch.maximum(i / n - cdf, cdf - (i - 1) / n).max())


def skewness(v: torch.Tensor) -> torch.Tensor:
    """Sample skewness of each row."""
    z = (v - v.mean(-1, keepdim=True)) / v.std(-1, correction=0, keepdim=True)
    return (z**3).mean(-1)


NORMALITY = {"rows": 8, "h": 4096}  # eight samples of 4096 features: a KS test resolves 0.03 at this width


@claim(
    "F17",
    anchors=(("000", STEP2, "转化为标准正态分布"),),
    claim="Normalizing with the sample's mean and variance turns x into a standard normal distribution. "
    "Read literally (normal in shape, not only mean 0 and variance 1), since 'standard normal' names a shape; "
    "the weaker reading, mean 0 and variance 1, is F01's and F08's.",
    statement=(
        "Does not hold: LayerNorm fixes each sample's mean at 0 and its variance at 1 (up to ε's share) and "
        "keeps the shape of its features' distribution. On samples of exponentially distributed features the "
        "output's skewness equals the input's to {skew_change:.1g} (the smallest is {skew_min:.2f}; a normal "
        "distribution's is 0), and the Kolmogorov–Smirnov distance to N(0, 1) is at least {ks_min:.3f}, against "
        "{ks_crit:.3f} for rejection at the 5 % level and at most {ks_gauss_max:.3f} for Gaussian features "
        "normalized the same way."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # The moments LayerNorm does fix: ε = 1e-5 lowers the variance by about ε/σ² ≈ 1e-5 here.
        "mean_zero_var_one": n["mean_err"] < 1e-12 and n["var_err"] < 1e-4,
        # An affine map with a positive scale leaves skewness unchanged: float64 rounding only.
        "shape_kept": n["skew_change"] < 1e-9,
        # Every output row is rejected as N(0, 1) by the KS test at 5 % (1.36/√h), while Gaussian input rows
        # normalized alike are not: the test can tell.
        "not_normal": n["ks_min"] > n["ks_crit"],
        "test_has_power": n["ks_gauss_max"] < n["ks_crit"],
    },
    # The source's world: the output is standard normal, with no skew and the KS distance of Gaussian features.
    null=lambda n: {**n, "skew_change": n["skew_min"], "ks_min": n["ks_gauss_max"]},
    answer_zh="不成立：LayerNorm 只把每个样本的均值定为 0、方差定为 1（只差 ε 带来的一点），分布的形状保持不变；"
    "对指数分布的特征，输出的偏度与输入相同（差异 {skew_change:.1g}，最小偏度 {skew_min:.2f}，正态分布为 0），"
    "与 N(0, 1) 的 KS 距离至少 {ks_min:.3f}，远超 5% 显著性的临界值 {ks_crit:.3f}，而同样归一化的高斯特征最多只有 "
    "{ks_gauss_max:.3f}。",
)
def f17() -> dict:
    """The evidence for F17. See book/01_foundations.ipynb, section "The formula"."""
    rows, h = NORMALITY["rows"], NORMALITY["h"]
    x = torch.empty(rows, h, dtype=F64).exponential_(generator=torch.Generator().manual_seed(22))  # (rows, h)
    y = ln(x, eps=1e-5)
    gauss = ln(randn(rows, h, seed=23), eps=1e-5)
    return {"rows": rows, "h": h, "mean_err": float(y.mean(-1).abs().max()),
            "var_err": float((y.var(-1, correction=0) - 1).abs().max()),
            "skew_change": float((skewness(y) - skewness(x)).abs().max()), "skew_min": float(skewness(y).min()),
            "out_min": float(y.min()), "ks_min": min(ks_distance_to_normal(r) for r in y),
            "ks_crit": 1.36 / math.sqrt(h), "gauss_min": float(gauss.min()), "ks_gauss_max": max(ks_distance_to_normal(r) for r in gauss)}


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
    anchors=(("002", "$\\beta$（平移参数）", "可以学习这个偏移"),
             ("002", "$\\gamma$（缩放参数）", "可以学习这个比例"),
             ("004", "3. 工作流程与数据流", "利用缩放因子"),
             ("000", STEP3, "如果网络发现不需要归一化"),),
    claim="If normalizing does not help, the network can learn γ = σ and β = μ and so recover its original input.",
    statement=(
        "Holds under conditions: only when every sample has the same mean and standard deviation. γ and β are per-feature "
        "parameters shared by all samples, while μ and σ belong to each sample. With one sample, or samples "
        "sharing their statistics, the best γ, β recover the input exactly (relative error {err_shared:.2g}); "
        "on {batch} samples with different means and spreads the best γ, β leave a relative error of "
        "{err_varied:.2f}."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # float64 least squares: an exact fit leaves rounding only.
        "recovers_shared_stats": n["err_shared"] < 1e-12,
        # A tenth of the input's spread left over is no recovery.
        "fails_varied_stats": n["err_varied"] > 0.1,
    },
    # The source's world: per-feature γ, β recover the input whatever each sample's statistics.
    null=lambda n: {**n, "err_varied": n["err_shared"]},
    answer_zh="有条件成立：只有当所有样本的均值和标准差都相同时才成立，因为 γ、β 是所有样本共用的逐特征参数，而 μ、σ 属于每个样本；"
    "样本统计量相同时最优的 γ、β 能精确还原输入（相对误差 {err_shared:.2g}），{batch} 个均值与离散程度各异的样本则留下 "
    "{err_varied:.2f} 的相对误差。",
)
def f03() -> dict:
    """The evidence for F03. See book/01_foundations.ipynb, section "The formula"."""
    b, h = 256, 16
    gen = torch.Generator().manual_seed(3)
    varied = samples_with_stats(torch.randn(b, generator=gen, dtype=F64),
                                torch.rand(b, generator=gen, dtype=F64) * 1.5 + 0.5, h, seed=4)
    shared = samples_with_stats(torch.full((b,), 0.7, dtype=F64), torch.full((b,), 1.9, dtype=F64), h, seed=5)
    err_varied, err_shared = affine_recovery_error(varied), affine_recovery_error(shared)
    return {"batch": b, "err_shared": err_shared, "err_varied": err_varied}


# ----------------------------------------------------------------------------- §4–5: LN vs BN


@claim(
    "F04",
    anchors=(("004", "🆚 8.1 归一化技术的巅峰对决：LayerNorm vs. BatchNorm", "即使Batch Size = 1，LN依然能稳定工作"),
             ("000", VERSUS, "如果是 1，无法计算"), ("000", VERSUS, "推理时用滑动平均统计量"),
             ("000", VERSUS, "训练和推理完全一致")),
    claim="BatchNorm needs batch statistics: with a batch of one it cannot normalize in training, and it "
    "uses the current batch's statistics in training but running averages in inference; LayerNorm computes the "
    "same thing in both and keeps no global statistics.",
    statement=(
        "Holds. torch's BatchNorm1d refuses a training batch of one sample ({bn_batch1_error}); on a batch of "
        "16 its training and evaluation outputs differ by up to {bn_train_eval:.2f}, while LayerNorm's differ "
        "by {ln_train_eval:.2g}."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        "bn_refuses_batch1": n["bn_batch1_error"] == "ValueError",
        # Running statistics start at 0 and 1 while the batch has mean 1 and std 3: a gap of order 1.
        "bn_modes_differ": n["bn_train_eval"] > 0.1,
        "ln_modes_equal": n["ln_train_eval"] == 0.0,
    },
    # A world where BatchNorm behaves like LayerNorm: a batch of one is accepted and the two modes agree.
    null=lambda n: {**n, "bn_batch1_error": "no error", "bn_train_eval": n["ln_train_eval"]},
    answer_zh="成立：torch 的 BatchNorm1d 拒绝只有一个样本的训练批次（{bn_batch1_error}），在 16 个样本的批次上其训练与推理输出"
    "最多相差 {bn_train_eval:.2f}，而 LayerNorm 的两种模式相差 {ln_train_eval:.2g}。",
)
def f04() -> dict:
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
    return {"bn_batch1_error": error, "bn_train_eval": bn_gap, "ln_train_eval": ln_gap}


def batch_stat_spread(batch_sizes=(2, 4, 8, 16, 32, 64, 128, 256), draws: int = 4000, seed: int = 7):
    """Standard deviation, over ``draws`` batches of N(0, 1) data, of the batch mean and batch variance."""
    x = randn(draws, max(batch_sizes), seed=seed)
    mean_sd = [float(x[:, :b].mean(1).std()) for b in batch_sizes]
    var_sd = [float(x[:, :b].var(1, correction=0).std()) for b in batch_sizes]
    return list(batch_sizes), mean_sd, var_sd


@claim(
    "F05",
    anchors=(("000", VERSUS, "如果 Batch 太小，统计不准"), ("000", NLP, "BN 估算的均值方差噪声极大")),
    claim="Small batches make BatchNorm's statistics inaccurate, and with batches of 1 or 2 extremely noisy. "
    "The source adds that this noise makes the model collapse; this card tests the noise, and chapter 4 (W04) "
    "trains BatchNorm at small batches.",
    statement=(
        "Holds, at the rate sampling theory predicts: the batch mean's standard deviation falls as 1/√B "
        "(fitted log–log slope {mean_slope:.3f}; closed form −0.5) and at B = 2 it is {mean_sd_b2:.3f} of the "
        "feature's own standard deviation (closed form 1/√2 = 0.707); the batch variance's spread is "
        "{var_sd_b2:.3f} at B = 2 (closed form √(2(B−1))/B = 0.707) and {var_sd_b256:.3f} at B = 256."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # 4000 draws: the relative standard error of a standard deviation estimate is about 1/√8000 ≈ 1.1 %,
        # so 5 % is over four standard errors, and 0.02 on the slope is well outside its fitting error.
        "slope_is_minus_half": abs(n["mean_slope"] + 0.5) < 0.02,
        "mean_sd_closed_form": n["mean_rel_err"] < 0.05,
        "var_sd_closed_form": n["var_rel_err"] < 0.05,
    },
    # A world where batch statistics are no noisier in small batches: B = 2 as quiet as B = 256, measured
    # against the same closed forms.
    null=lambda n: {**n, "mean_slope": 0.0, "mean_sd_b2": n["mean_sd_b256"], "var_sd_b2": n["var_sd_b256"],
                    "mean_rel_err": abs(n["mean_sd_b256"] * math.sqrt(2) - 1),
                    "var_rel_err": abs(n["var_sd_b256"] / (math.sqrt(2) / 2) - 1)},
    answer_zh="成立，且符合抽样理论的速率：批均值的标准差按 1/√B 下降（对数拟合斜率 {mean_slope:.3f}，理论值 −0.5），B = 2 时为"
    "特征自身标准差的 {mean_sd_b2:.3f}（理论值 0.707）；批方差的离散度在 B = 2 时为 {var_sd_b2:.3f}，B = 256 时为 "
    "{var_sd_b256:.3f}。",
)
def f05() -> dict:
    """The evidence for F05. See book/01_foundations.ipynb, section "LayerNorm against BatchNorm"."""
    sizes, mean_sd, var_sd = batch_stat_spread()
    closed_var = [math.sqrt(2 * (b - 1)) / b for b in sizes]  # Gaussian data, biased variance
    rel = max(abs(m * math.sqrt(b) - 1) for m, b in zip(mean_sd, sizes))
    rel_var = max(abs(v / c - 1) for v, c in zip(var_sd, closed_var))
    slope = loglog_slope(sizes, mean_sd)
    return {"mean_slope": slope, "mean_sd_b2": mean_sd[0], "mean_sd_b256": mean_sd[-1], "var_sd_b2": var_sd[0],
            "var_sd_b256": var_sd[-1], "mean_rel_err": rel, "var_rel_err": rel_var}



@claim(
    "F06",
    anchors=(("002", "4. 对Transformer的特殊意义", "适合变长序列处理"),
             ("004", "🆚 8.1 归一化技术的巅峰对决：LayerNorm vs. BatchNorm", "不受序列长度变化的影响"),
             ("000", NLP, "统计量会完全跑偏"), ("000", NLP, "不受序列长度影响")),
    claim="Padding variable-length sentences to one length throws BatchNorm's statistics completely off; "
    "LayerNorm, computed inside each token, is unaffected by the sequence length.",
    statement=(
        "Holds. In a batch of a 100-token and a 5-token sequence padded to 100, BatchNorm's per-feature mean "
        "computed over all positions is off by {bn_mean_rel_err:.0%} and its variance by "
        "{bn_var_rel_err:.0%} against the statistics of the real tokens; LayerNorm of the real tokens is the "
        "same with and without padding (largest difference {ln_pad_diff:.2g})."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # 95 of the 200 positions are padding: an error of a fifth is a skew no reader would miss.
        "bn_mean_skewed": n["bn_mean_rel_err"] > 0.2,
        "bn_var_skewed": n["bn_var_rel_err"] > 0.2,
        # float64 rows normalized alone or among padding: rounding only.
        "ln_unaffected": n["ln_pad_diff"] < 1e-12,
    },
    # A world where padding does not skew BatchNorm (its statistics taken over the real tokens only).
    null=lambda n: {**n, "bn_mean_rel_err": 0.0, "bn_var_rel_err": 0.0},
    answer_zh="成立：一个 100 词和一个 5 词的句子填充到 100 后，BatchNorm 在所有位置上算出的逐特征均值偏离真实词元的统计量 "
    "{bn_mean_rel_err:.0%}，方差偏离 {bn_var_rel_err:.0%}；真实词元的 LayerNorm 输出有无填充都一样（最大差异 "
    "{ln_pad_diff:.2g}）。",
)
def f06() -> dict:
    """The evidence for F06. See book/01_foundations.ipynb, section "Why language models prefer LayerNorm"."""
    x, mask = padded_batch()
    real = x[mask]  # (tokens, H)
    flat = x.reshape(-1, x.shape[-1])  # padded positions included, as a naive BN sees them
    mean_err = float(((flat.mean(0) - real.mean(0)).abs() / real.mean(0).abs()).mean())
    var_err = float(((flat.var(0, correction=0) - real.var(0, correction=0)).abs() / real.var(0, correction=0)).mean())
    ln_diff = max_abs(ln(x, eps=1e-5)[mask], ln(real, eps=1e-5))
    return {"bn_mean_rel_err": mean_err, "bn_var_rel_err": var_err, "ln_pad_diff": ln_diff}


def _meta(*shape: int) -> torch.Tensor:
    """A bfloat16 tensor with a shape and no data: enough to count operations and bytes."""
    return torch.empty(*shape, dtype=torch.bfloat16, device="meta")


def fused_op_bytes(op: str, M: int, N: int) -> int:
    """Bytes of the tensors PyTorch's own fused forward op reads and writes (aten.native_layer_norm,
    aten._fused_rms_norm) on an (M, N) bfloat16 input: a count independent of :func:`lnbook.kernels.traffic.bytes_moved`."""
    x, w = _meta(M, N), _meta(N)
    if op == "layer_norm":
        ins, outs = (x, w, _meta(N)), torch.native_layer_norm(x, (N,), w, _meta(N), 1e-5)
    else:
        ins, outs = (x, w), torch.ops.aten._fused_rms_norm(x, [N], w, 1e-6)
    return sum(t.numel() * t.element_size() for t in (*ins, *outs) if t is not None)


def counted_flops_per_element(op: str, M: int, N: int) -> tuple[float, float]:
    """FLOPs per element of the reference forward (:mod:`lnbook.norms`) as PyTorch's dispatcher sees them
    (:func:`lnbook.experiments.common.count_flops`): (counted, repeated work left out of the count)."""
    x, w = _meta(M, N), _meta(N)
    call = {"layer_norm": lambda: norms.layer_norm(x, (N,), w, _meta(N)),
            "rms_norm": lambda: norms.rms_norm(x, (N,), w, eps=1e-6)}[op]
    count = count_flops(call)
    return count.total / (M * N), count.repeated / (M * N)


def rms_vs_ln_cost(M: int = 4096, N: int = 4096, element_size: int = 2) -> dict[str, float]:
    """The cost of one forward pass of RMSNorm against LayerNorm on (M, N): FLOPs per element by the
    book's one definition (:data:`FLOPS_PER_ELEMENT`) and as counted by the dispatcher, bytes by
    :func:`lnbook.kernels.traffic.bytes_moved` and as PyTorch's fused ops' tensors, and the least times of a
    roofline on an H100 (:func:`roofline_seconds` with CUDA-core float32 throughput: a norm does no
    matrix products)."""
    ops = ("layer_norm", "rms_norm")
    flops = {op: FLOPS_PER_ELEMENT[op] * M * N for op in ops}
    nbytes = {op: traffic.bytes_moved(op, "forward", M, N, element_size) for op in ops}
    counted = {op: counted_flops_per_element(op, M, N) for op in ops}
    t = {op: roofline_seconds(flops[op], nbytes[op], "fp32 CUDA core") for op in ops}
    return {"n": N, "ln_flops_per_element": FLOPS_PER_ELEMENT["layer_norm"],
            "rms_flops_per_element": FLOPS_PER_ELEMENT["rms_norm"],
            "ln_flops_counted": counted["layer_norm"][0], "rms_flops_counted": counted["rms_norm"][0],
            "ln_flops_repeated": counted["layer_norm"][1],
            "ln_bytes": nbytes["layer_norm"], "ln_bytes_fused_op": fused_op_bytes("layer_norm", M, N),
            "rms_bytes": nbytes["rms_norm"], "rms_bytes_fused_op": fused_op_bytes("rms_norm", M, N),
            "flop_ratio": flops["rms_norm"] / flops["layer_norm"],
            "byte_ratio": nbytes["rms_norm"] / nbytes["layer_norm"], "time_ratio": t["rms_norm"] / t["layer_norm"],
            "intensity": flops["layer_norm"] / nbytes["layer_norm"], "balance": H100.balance("fp32 CUDA core")}


# The dispatcher also counts per-row work that the per-element definition leaves out (ε's add and the
# square root: 2 per row, 2/N per element); 4/N admits that with room, while one per-element operation more
# or less would move the count by 1.
PER_ROW_ALLOWANCE = 4


def _decide_f07(n: dict) -> dict[str, bool]:
    agrees = lambda counted, defined: abs(counted - defined) <= PER_ROW_ALLOWANCE / n["n"]
    return {
        # float64 against torch's own rms_norm and LayerNorm: rounding only.
        "matches_torch": n["rms_vs_torch"] < 1e-12, "equals_ln_when_centered": n["rms_eq_ln_centered"] < 1e-12,
        # A mean of 1 against a spread of 1: the outputs differ by order 1.
        "differs_when_mean_nonzero": n["rms_vs_ln_shifted"] > 0.1,
        "ln_count_is_counted": agrees(n["ln_flops_counted"], n["ln_flops_per_element"]),
        "rms_count_is_counted": agrees(n["rms_flops_counted"], n["rms_flops_per_element"]),
        "rms_does_less_arithmetic": n["rms_flops_counted"] <= n["ln_flops_counted"] - 1,
        # Integers: the model's bytes are those of PyTorch's fused ops, exactly.
        "bytes_are_counted": n["ln_bytes"] == n["ln_bytes_fused_op"] and n["rms_bytes"] == n["rms_bytes_fused_op"],
        # β and the mean are N and M values against 2·M·N: well under 1 %.
        "same_bytes": n["byte_ratio"] > 0.99,
        # Memory-bound: ten times fewer FLOPs per byte than the machine balance, far from the ridge.
        "memory_bound": n["intensity"] < n["balance"] / 10,
        # "Almost nothing": RMSNorm's least time within 1 % of LayerNorm's.
        "speed_gain_small": n["time_ratio"] > 0.99,
    }


@claim(
    "F07",
    anchors=(("000", RMS, "RMSNorm 认为，中心化（减去均值"), ("000", RMS, "少算了一个均值"),
             ("000", RMS, "效果与 LayerNorm 几乎持平")),
    claim="RMSNorm divides by √(mean(x²)+ε) without subtracting the mean, on the view that centring does not "
    "matter; it is faster than LayerNorm because it skips the mean, works about as well, and in some deep "
    "networks is even more stable.",
    statement=(
        "Holds under conditions: the formula holds and RMSNorm saves arithmetic, but in a roofline model "
        "arithmetic is not what a normalization waits for. Our RMSNorm matches torch's, and it is LayerNorm "
        "without centring (equal on zero-mean inputs, different once the mean is not zero). It does "
        "{flop_ratio:.2f} of LayerNorm's FLOPs (the book's count per element, which PyTorch's dispatcher "
        "confirms on the reference code), yet on a 4096×4096 bfloat16 forward it moves {byte_ratio:.4f} of "
        "LayerNorm's bytes (the tensors of PyTorch's fused ops). LayerNorm does {intensity:.2f} FLOPs per byte "
        "where an H100's float32 CUDA cores can do {balance:.0f} (datasheet figures), so both are memory-bound, "
        "and RMSNorm's least time is {time_ratio:.4f} of LayerNorm's: a kernel near the bandwidth limit gains "
        "almost nothing from skipping the mean. This is a model, not a timing: the kernels chapter counts the "
        "bytes its kernels move, and GPU times exist only where a benchmark run on a GPU is recorded. Quality is "
        "chapter 4's question (W07); the source's 'more stable in some deep networks' is not tested."
    ),
    verdict="holds under conditions",
    kind="model",
    assumptions=f"a roofline with the {H100.name} datasheet's {H100.bandwidth / 1e12:.3g} TB/s of memory bandwidth "
    f"and {H100.peak['fp32 CUDA core'] / 1e12:.0f} TFLOP/s of float32 on the CUDA cores (a norm does no matrix "
    "products), and a kernel that reads and writes each tensor once",
    decide=_decide_f07,
    # The source's world: a normalization that waits for its arithmetic (twice the machine balance in FLOPs
    # per byte), so that RMSNorm's time follows its FLOPs.
    null=lambda n: {**n, "intensity": 2 * n["balance"], "time_ratio": n["flop_ratio"]},
    answer_zh="有条件成立：公式成立，RMSNorm 的运算量也只有 LayerNorm 的 {flop_ratio:.2f}，但它搬运的字节是 LayerNorm 的 "
    "{byte_ratio:.4f}，而归一化受显存带宽限制（每字节 {intensity:.2f} 次运算，H100 的 float32 CUDA 核心每字节可做 "
    "{balance:.0f} 次），所以在屋顶线模型中其最短时间仍是 LayerNorm 的 {time_ratio:.4f}，省去均值几乎不提速。",
)
def f07() -> dict:
    """The evidence for F07. See book/01_foundations.ipynb, section "RMSNorm"."""
    x = randn(32, 64, seed=10)
    centered = x - x.mean(-1, keepdim=True)
    rms = lambda v: norms.rms_norm(v, v.shape[-1:], eps=1e-6)
    vs_torch = max_abs(rms(x), torch.nn.functional.rms_norm(x, x.shape[-1:], eps=1e-6))
    eq_centered = max_abs(rms(centered), ln(centered, eps=1e-6))
    shifted = max_abs(rms(centered + 1), ln(centered + 1, eps=1e-6))
    return {"rms_vs_torch": vs_torch, "rms_eq_ln_centered": eq_centered, "rms_vs_ln_shifted": shifted,
            **rms_vs_ln_cost()}


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
    anchors=(("000", ANALOGY, "消除了“试卷难度”（样本整体数值大小）带来的干扰"),),
    claim="LayerNorm removes the influence of a sample's overall size (the analogy's 'difficulty of the exam'), "
    "which BatchNorm, standardizing each feature across the class, does not. The book checks it as the "
    "'single training case re-scaling' column of Table 1 of Ba et al. 2016, with the table's other "
    "re-scalings and re-centerings of weights and data, and RMSNorm added as a fourth row.",
    statement=(
        "Holds: all {cells} cells computed in float64 with ε = 0 agree with the published tables "
        "(Ba et al. 2016 for the first three rows, Zhang & Sennrich 2019 for RMSNorm), among them layer norm's "
        "invariance to re-scaling a single training case, which batch norm lacks; every 'invariant' "
        "cell changes by at most {max_invariant:.2g} (rounding), every other cell by at least "
        "{min_variant:.2f}."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        # The gap between rounding (INVARIANT_TOL) and a real change (> 1e-3) makes every verdict unambiguous.
        "invariant_cells": is_invariant(n["max_invariant"]),
        "variant_cells": n["min_variant"] > 1e-3,
    },
    # A world where the published tables are wrong in one cell: an 'invariant' cell changes as much as the
    # least-changing 'no' cell.
    null=lambda n: {**n, "max_invariant": n["min_variant"]},
    answer_zh="成立：用 float64、ε = 0 计算的全部 {cells} 个格子都与已发表的表格一致（Ba 等 2016 的前三行，Zhang 与 Sennrich "
    "2019 的 RMSNorm 行），其中 LayerNorm 对单个样本整体缩放不变而 BatchNorm 会变；标为“不变”的格子最多变化 "
    "{max_invariant:.2g}（舍入误差），其余格子至少变化 {min_variant:.2f}。",
)
def f16() -> dict:
    """The evidence for F16. See book/01_foundations.ipynb, section "The invariance table"."""
    table = invariance_table()
    cells = [(table[k][t], PUBLISHED[k][i]) for k in NORMALIZERS for i, t in enumerate(TRANSFORMS)]
    max_inv = max(v for v, inv in cells if inv)
    min_var = min(v for v, inv in cells if not inv)
    return {"cells": len(cells), "max_invariant": max_inv, "min_variant": min_var}


def invariance_markdown() -> tuple[str, str]:
    """The computed table (verdict and largest relative change per cell) and the published one, as Markdown."""
    table = invariance_table()
    head = "| | " + " | ".join(TRANSFORMS) + " |\n|---|" + "---|" * len(TRANSFORMS) + "\n"
    word = lambda inv: "invariant" if inv else "no"
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
