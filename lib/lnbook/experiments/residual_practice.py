"""Chapter 5 (seed 004), book/05_residual: LayerNorm's backward, precision, costs and sharding, claims
R10, R12–R16, R18 and R21, and the chapter's exercises.

Sections of the chapter: "LayerNorm's backward, ε and precision" (R10, R13, R16, R18), "What the pair
costs" (R12, R14, R21), "LayerNorm across devices" (R15) and "Exercises". The rest of the chapter is
:mod:`lnbook.experiments.residual`, :mod:`lnbook.experiments.residual_depth`,
:mod:`lnbook.experiments.residual_training` and :mod:`lnbook.experiments.residual_landscape` (R40–R43:
the landscape's isotropy, perturbations, highway gates, a code example).

Quoted constants (GPT-2 small's sizes, PyTorch's autocast lists, the H100's datasheet) name their
source where they are defined.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lnbook import distributed, norms, variance
from lnbook.claims import claim
from lnbook.experiments.common import F64, FLOPS_PER_ELEMENT, H100, count_traffic, max_abs, randn, roofline_seconds
from lnbook.models import TransformerBlock, deepnorm_constants, gpt2_init_

CHAPTER = "book/05_residual"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- LayerNorm's backward


def grad_vs_scale(scales=(1e-4, 1e-2, 1.0, 1e2), d: int = 64, seed: int = 6) -> dict[float, float]:
    """‖∂⟨c, LN(s·x)⟩/∂x'‖ at x' = s·x for each scale s (ε = 1e-5)."""
    x, c = randn(d, seed=seed), randn(d, seed=seed + 1)
    out = {}
    for s in scales:
        xs = (s * x).requires_grad_()
        (c * norms.layer_norm(xs, (d,), eps=1e-5)).sum().backward()
        out[s] = float(xs.grad.norm())
    return out


@claim(
    "R10",
    anchors=(("004", "梯度的 Lipschitz 约束", "对梯度施加了一个自适应的缩放因子"), ("004", "梯度的 Lipschitz 约束", "自动减小反向传播的梯度幅度"),
             ("004", "梯度的 Lipschitz 约束", "自动增大梯度幅度")),
    claim=("LayerNorm's backward carries the factor 1/√(Var + ε), an adaptive scale on the gradient: when activations "
           "are large it shrinks the gradient, and when they are small it enlarges it."),
    statement=(
        "Holds, until ε takes over. LN(s·x) = LN(x) when ε ≪ Var, so its Jacobian scales as 1/s: the gradient "
        "norm times s is {prod_1e2:.4f} at s = 100, {prod_1:.4f} at s = 1 and {prod_1e_2:.4f} at s = 0.01. For "
        "rows whose variance is far below ε the factor is capped at 1/√ε: at s = 10⁻⁴ the gradient is "
        "{g_1e_4:,.0f}, not the {uncapped:,.0f} that 1/s would give."
    ),
    verdict="holds",
    answer_zh=("成立，直到 ε 接管：LN(s·x) 的梯度按 1/s 缩放，梯度范数乘以 s 在 s = 100、1、0.01 时分别为 {prod_1e2:.4f}、"
               "{prod_1:.4f}、{prod_1e_2:.4f}；方差远小于 ε 时放大被 1/√ε 封顶：s = 10⁻⁴ 时梯度为 {g_1e_4:,.0f}，而不是 1/s "
               "给出的 {uncapped:,.0f}。"),
    decide=lambda n: {
        # Var(s·x) = s²·Var(x) ≈ s²; ε = 1e-5 changes the factor by ε/(2s²): 5e-10 at s = 100, 0.05 at s = 0.01.
        "inverse_scale": math.isclose(n["prod_1e2"], n["prod_1"], rel_tol=1e-4),
        "eps_visible_at_0.01": abs(n["prod_1e_2"] / n["prod_1"] - 1) > 0.01,
        "capped": n["g_1e_4"] < n["uncapped"] / 10},
    # A backward without the factor: the same gradient norm at every scale.
    null=lambda n: {**n, "prod_1e2": 100 * n["prod_1"], "prod_1e_2": 0.01 * n["prod_1"], "g_1e_4": n["prod_1"]},
)
def r10() -> dict:
    """The evidence for R10. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    g = grad_vs_scale()
    return {"prod_1e2": 100 * g[1e2], "prod_1": g[1.0], "prod_1e_2": 0.01 * g[1e-2], "g_1e_4": g[1e-4],
            "uncapped": g[1.0] / 1e-4}


def near_constant_row(value: float = 3000.1, d: int = 1024) -> torch.Tensor:
    """A float32 row of two neighbouring floats around ``value``, alternating: its true variance is ~1e-8,
    and the one-pass E[x²] − E[x]² of it cancels to a negative number. Shape (1, d)."""
    row = torch.full((1, d), value, dtype=torch.float32)
    row[0, ::2] = torch.nextafter(torch.tensor(value), torch.tensor(1e9))
    return row


def one_pass_nan_count(row: torch.Tensor, eps: float) -> int:
    """NaN outputs of LayerNorm on ``row`` when its variance is the one-pass E[x²] − E[x]² (float32)."""
    y = (row - row.mean(-1, keepdim=True)) / torch.sqrt(variance.naive(row) + eps)
    return int(torch.isnan(y).sum())


def grad_at_eps(row: torch.Tensor, eps: float, seed: int = 11) -> float:
    """‖∂⟨c, LN(x)⟩/∂x‖ for the two-pass LayerNorm in float64 (autograd): the worst-case factor 1/√(Var + ε)
    at work on a row whose variance is far below ε."""
    x = row.to(F64).requires_grad_()
    (randn(*row.shape, seed=seed) * norms.layer_norm(x, row.shape[-1:], eps=eps)).sum().backward()
    return float(x.grad.norm())


@claim(
    "R16",
    anchors=(("004", "3. 最佳实践与避坑指南", "从1e-5调整为1e-6"),),
    claim=("When LayerNorm's denominator gets close to zero and training produces NaN, one fix is to adjust ε, for "
           "example from 1e-5 down to 1e-6, to prevent division by zero."),
    statement=(
        "Does not hold: lowering ε from 10⁻⁵ to 10⁻⁶ multiplies LayerNorm's gradient on a row of variance far "
        "below ε by {grad_ratio:.2f} (nearly √10: the factor 1/√(Var + ε) grows by as much), and it does nothing for "
        "the NaN that cancellation causes: on a float32 row alternating between two neighbouring floats around "
        "{value:g}, the one-pass variance comes out {naive_var:g}, and LayerNorm with it gives NaN in {nan_5} of its "
        "{d} outputs at ε = 10⁻⁵ and in {nan_6} at 10⁻⁶ (NaN for every ε smaller than that negative variance's "
        "size). The cures are the two-pass or Welford variance, which stays non-negative on the same row, and, if "
        "anything, a larger ε."
    ),
    verdict="does not hold",
    answer_zh=("不成立：把 ε 从 10⁻⁵ 降到 10⁻⁶ 会把方差远小于 ε 的行的梯度放大 {grad_ratio:.2f} 倍，而对相消造成的 NaN 毫无帮助："
               "在 {value:g} 附近的一行上，单遍方差得到 {naive_var:g}，ε = 10⁻⁵ 和 10⁻⁶ 时 {d} 个输出分别有 {nan_5} 和 {nan_6} 个 NaN；"
               "真正的办法是两遍或 Welford 方差（在同一行上不为负），要改也是把 ε 调大。"),
    decide=lambda n: {
        # Measured by autograd against the factor's closed form; they differ by the Jacobian's x̂x̂ᵀ/n term,
        # whose size relative to the rest is Var/(Var + ε) ≤ 3 % at ε = 1e-6 here.
        "smaller_eps_larger_gradient": n["grad_ratio"] > 1 and abs(n["grad_ratio"] / n["factor_ratio"] - 1) < 0.05,
        "naive_negative": n["naive_var"] < 0,
        "nan_at_both_eps": n["nan_5"] == n["d"] and n["nan_6"] == n["d"],
        # Two neighbouring floats 2.4e-4 apart: the true variance is about 1.5e-8, and two-pass stays near it.
        "two_pass_nonnegative": 0 <= n["two_pass_var"] < 1e-6},
    # The world the source assumes: a smaller ε cures the NaN and costs no larger gradient.
    null=lambda n: {**n, "nan_6": 0, "grad_ratio": 1.0, "factor_ratio": 1.0},
)
def r16() -> dict:
    """The evidence for R16. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    row, value = near_constant_row(), 3000.1
    naive, var = float(variance.naive(row)), float(row.to(F64).var(correction=0))
    return {"grad_ratio": grad_at_eps(row, 1e-6) / grad_at_eps(row, 1e-5),
            "factor_ratio": math.sqrt((var + 1e-5) / (var + 1e-6)), "value": value, "d": row.shape[-1],
            "naive_var": naive, "neg": -naive, "nan_5": one_pass_nan_count(row, 1e-5),
            "nan_6": one_pass_nan_count(row, 1e-6), "two_pass_var": float(variance.two_pass(row))}


# ----------------------------------------------------------------------------- precision


R13_ROWS = {"rows": 8, "d": 1024, "seed": 7}  # the rows of R13: std 1 around the mean under test


@claim(
    "R13",
    anchors=(("004", "9. 性能优化：计算效率与显存占用", "使用Welford算法在线计算均值和方差"), ("004", "9. 性能优化：计算效率与显存占用", "在计算统计量时动态提升精度至FP32"),
             ("004", "💡 8.4 场景选型建议与迁移指南", "建议保留较高的累加精度")),
    claim=("In FP16/BF16 training, computing LayerNorm's mean and variance online with Welford's algorithm is more "
           "numerically stable, or the statistics can be raised to FP32 and the result cast back, a small overhead worth "
           "paying. The source does not say more stable than what; the card reads it as than the direct one-pass "
           "formula E[x²] − E[x]², and compares with two passes too."),
    statement=(
        "Holds under conditions: the second half always, the first in part. On rows of std 1 and mean 10⁴ in float32 the one-pass E[x²] − E[x]² has relative error "
        "{naive32:.2g}. Welford's update repairs most of it ({wel32:.1g}), but computed element by element in "
        "float32 it is less accurate than two passes ({two32:.1g}): its merit is needing one pass, not more "
        "stability. In float16 (mean 100) the one-pass form fails completely ({naive16:.2g}) and Welford in float16 "
        "arithmetic is poor; two passes give {two16:.2g} (PyTorch's float16 sums accumulate in "
        "float32 internally), and the statistics computed in float32 {fp32_16:.1g}. Float32 statistics are the "
        "part that matters."
    ),
    verdict="holds under conditions",
    answer_zh=("有条件成立：用 FP32 计算统计量始终有效（float16 输入时相对误差 {fp32_16:.1g}），Welford 只比单遍公式稳定："
               "float32、均值 10⁴ 时单遍误差 {naive32:.2g}，Welford {wel32:.1g}，两遍法 {two32:.1g}；float16 下单遍 "
               "{naive16:.2g}、Welford 也很差、两遍 {two16:.2g}。"),
    decide=lambda n: {
        # float32's 2⁻²⁴ ≈ 6e-8 per operation: two passes over 1024 values stay below 1e-5; Welford's running mean
        # of size 1e4 loses about 1e4·2⁻²⁴ per update, so 1e-2 is its bound here.
        "naive32_fails": n["naive32"] > 0.1, "two_pass32_accurate": n["two32"] < 1e-5,
        "welford32_repairs": n["wel32"] < 1e-2, "welford32_behind_two_pass": n["wel32"] > n["two32"],
        "naive16_fails": n["naive16"] > 1, "fp32_stats_best": n["fp32_16"] < min(1e-5, n["two16"])},
    # The source's world: Welford at least as accurate as two passes, and float32 statistics no better than
    # float16 two-pass ones.
    null=lambda n: {**n, "wel32": n["two32"], "fp32_16": n["two16"]},
)
def r13() -> dict:
    """The evidence for R13. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    e32 = variance.relative_errors(1e4, torch.float32, **R13_ROWS)
    e16 = variance.relative_errors(100.0, torch.float16, **R13_ROWS)
    return {"naive32": e32["naive"], "two32": e32["two_pass"], "wel32": e32["welford"],
            "naive16": e16["naive"], "two16": e16["two_pass"], "wel16": e16["welford"], "fp32_16": e16["fp32_stats"]}


def autocast_dtypes() -> dict[str, str]:
    """Output dtypes of F.layer_norm and F.linear under torch.autocast("cpu", dtype=torch.bfloat16)."""
    x = randn(4, 16, seed=8, dtype=torch.float32)
    w = randn(16, 16, seed=9, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = torch.nn.functional.linear(x, w)
        out = {"ln_fp32_input": torch.nn.functional.layer_norm(x, (16,)).dtype,
               "linear": h.dtype, "ln_bf16_input": torch.nn.functional.layer_norm(h, (16,)).dtype}
    out = {k: str(v).removeprefix("torch.") for k, v in out.items()}
    ref = torch.nn.functional.layer_norm(h.to(F64), (16,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out["ln_bf16_err"] = max_abs(torch.nn.functional.layer_norm(h, (16,)).to(F64), ref)
    return out


@claim(
    "R18",
    anchors=(("004", "2. 实施指南与部署方法", "建议保持LN在FP32下进行计算"),),
    claim=("With automatic mixed precision on, keep LayerNorm computing in FP32 while the rest runs in FP16: this "
           "keeps it numerically stable and the whole fast."),
    statement=(
        "Holds under conditions: on CUDA by default, not on the CPU. PyTorch's autocast reference lists layer_norm among the CUDA "
        "ops that autocast to float32. On the CPU (PyTorch {version}) under torch.autocast('cpu', bfloat16), "
        "layer_norm is not in that list: it runs in its input's dtype, {ln_bf16_input} for the {linear} output of a "
        "linear layer and {ln_fp32_input} for a float32 input. The bfloat16 result is still accurate to "
        "{ln_bf16_err:.2g}, within one bfloat16 rounding of the output: the kernel's statistics are computed in "
        "float32; only the output is stored in the input's dtype."
    ),
    verdict="holds under conditions",
    answer_zh=("有条件成立：在 CUDA 上 autocast 默认就把 layer_norm 放在 float32，而 CPU 上（PyTorch {version}）它跟随输入类型，"
               "线性层的 {linear} 输出进入时结果是 {ln_bf16_input}，不过内核内部用 float32 计算统计量，误差仅 {ln_bf16_err:.2g}，"
               "在一次 bfloat16 舍入之内。"),
    decide=lambda n: {
        "linear_autocasts": n["linear"] == "bfloat16", "cpu_ln_follows_input": n["ln_bf16_input"] == "bfloat16",
        "fp32_in_fp32_out": n["ln_fp32_input"] == "float32",
        # Outputs of size ≤ √15 < 4: one bfloat16 rounding is at most 2⁻⁸·4 = 2⁻⁶.
        "bf16_output_one_rounding": n["ln_bf16_err"] <= 2 ** -6},
    # A CPU autocast that keeps LayerNorm in float32, as CUDA's does.
    null=lambda n: {**n, "ln_bf16_input": "float32"},
)
def r18() -> dict:
    """The evidence for R18. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    return {**autocast_dtypes(), "version": torch.__version__.split("+")[0]}


# ----------------------------------------------------------------------------- memory and compute


def saved_bytes(checkpoint: bool, d: int = 64, seed: int = 10) -> int:
    """Bytes of the non-parameter tensors autograd saves for backward in one Pre-LN Transformer layer."""
    torch.manual_seed(seed)
    layer = TransformerBlock(d, 4, "pre")
    params = {p.data_ptr() for p in layer.parameters()}
    x = randn(4, 32, d, seed=seed, dtype=torch.float32).requires_grad_()
    seen: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if checkpoint:
            y = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=True)
        else:
            y = layer(x)
    y.sum().backward()
    return sum(seen.values())


@claim(
    "R12",
    anchors=(("004", "9. 性能优化：计算效率与显存占用", "约增加30%的前向计算时间"), ("004", "9. 性能优化：计算效率与显存占用", "通常能减少40%-50%的激活值显存占用")),
    claim=("Recomputing the activations inside residual blocks in the backward, instead of storing them, costs about "
           "30 % more forward computation time and usually cuts activation memory by 40–50 %."),
    statement=(
        "Holds under conditions: both numbers depend on what is checkpointed. Measured with saved-tensor hooks on "
        "one Pre-LN Transformer layer (width 64, 4×32 tokens), autograd keeps {plain_kb:.0f} kB of activations "
        "for backward; checkpointing the whole layer keeps only its input, {ckpt_kb:.0f} kB, a saving of "
        "{saving:.0%}, far more than 40–50 %. The price is one more forward pass of the layer: +100 % forward "
        "compute, about +33 % of a training step whose backward costs twice the forward. Checkpointing only some "
        "sublayers gives savings and costs in between."
    ),
    verdict="holds under conditions",
    answer_zh=("有条件成立：两个数字都取决于重算的范围：对一整层 Pre-LN 做检查点时只保留其输入（{ckpt_kb:.0f} kB，"
               "原为 {plain_kb:.0f} kB），省下 {saving:.0%}，远多于 40–50%，代价是该层多算一次前向（前向 +100%，约为训练步的 +33%）。"),
    decide=lambda n: {"keeps_only_input": n["ckpt_kb"] == n["input_kb"], "saving_above_half": n["saving"] > 0.5},
    # The source's world: checkpointing keeps 55 % of the activations (a saving of 45 %).
    null=lambda n: {**n, "ckpt_kb": 0.55 * n["plain_kb"], "saving": 0.45},
)
def r12() -> dict:
    """The evidence for R12. See book/05_residual.ipynb, section "What the pair costs"."""
    plain, ckpt = saved_bytes(False), saved_bytes(True)
    return {"plain_kb": plain / 1024, "ckpt_kb": ckpt / 1024, "saving": 1 - ckpt / plain,
            "input_kb": 4 * 32 * 64 * 4 / 1024}  # the layer's input: (4, 32, 64) float32


GPT2_SMALL = {"n_layer": 12, "d": 768, "heads": 12, "vocab": 50257, "context": 1024}


def gpt2_small_counts() -> dict[str, float]:
    """Parameters and forward FLOPs per token of GPT-2 small, counted by hand (tied embeddings).

    FLOPs: 2 per multiply-add of every matrix product (weights, the attention's QKᵀ and AV over a full
    context, the tied output layer); LayerNorm :data:`~lnbook.experiments.common.FLOPS_PER_ELEMENT` per
    element, a residual add 1 per element.
    """
    L, d, V, T = (GPT2_SMALL[k] for k in ("n_layer", "d", "vocab", "context"))
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
    ln_params = (2 * L + 1) * 2 * d
    params = V * d + T * d + L * per_layer + 2 * d
    matmul = 2 * L * (12 * d * d) + 2 * L * 2 * T * d + 2 * d * V
    ln_flops, add_flops = FLOPS_PER_ELEMENT["layer_norm"] * d * (2 * L + 1), d * 2 * L
    total = matmul + ln_flops + add_flops
    return {"params": params, "ln_params": ln_params, "ln_param_share": ln_params / params,
            "flops": total, "add_share": add_flops / total, "ln_add_share": (ln_flops + add_flops) / total,
            "layer_matmul_flops": 2 * 12 * d * d + 2 * 2 * T * d}


def gpt2_small_module_params() -> int:
    """Parameters of GPT-2 small built from this library's layers on the meta device (no memory)."""
    L, d, V, T, h = (GPT2_SMALL[k] for k in ("n_layer", "d", "vocab", "context", "heads"))
    with torch.device("meta"):
        layers = nn.ModuleList([TransformerBlock(d, h) for _ in range(L)] + [nn.LayerNorm(d)])
    return sum(p.numel() for p in layers.parameters()) + V * d + T * d


def gpt2_layer_counted_flops() -> float:
    """Matrix-product FLOPs per token of one GPT-2 small layer over a full context, as PyTorch's own
    ``FlopCounterMode`` counts them (on the meta device: shapes only, no memory, no arithmetic)."""
    d, T, h = (GPT2_SMALL[k] for k in ("d", "context", "heads"))
    with torch.device("meta"):
        layer, x = TransformerBlock(d, h), torch.empty(1, T, d)
        with FlopCounterMode(display=False) as counter:
            layer(x)
    return counter.get_total_flops() / T


@claim(
    "R21",
    anchors=(("004", "4. ROI分析", "占整个网络的比重不足1%"), ("004", "10. 实践应用：应用场景与案例", "引入的额外计算开销相对于前向传播微乎其微")),
    claim=("LayerNorm and the residual adds make up under 1 % of a network's compute and parameters, a negligible "
           "extra cost next to the forward pass."),
    statement=(
        "Holds under conditions: for parameters and arithmetic, not for running time. In GPT-2 small (12 layers, "
        "d = 768, vocabulary 50,257, context 1,024) the 25 LayerNorms hold {ln_params:,} of {params:,} parameters "
        "({ln_param_share:.3%}); LayerNorm and the residual adds are {ln_add_share:.3%} of the forward FLOPs per "
        "token. Their share of the running time is larger, because they are memory-bound (R14 and the kernels "
        "chapter)."
    ),
    verdict="holds under conditions",
    kind="model",
    assumptions=("2 FLOPs per multiply-add of every matrix product over a full 1024-token context, 7 per "
                 "LayerNorm element and 1 per residual-add element; the parameter count is exact"),
    answer_zh=("有条件成立：就参数和算术量而言成立，就运行时间而言不成立：GPT-2 small 的 25 个 LayerNorm 只有 {params:,} 个参数中的 "
               "{ln_params:,} 个（{ln_param_share:.3%}），LayerNorm 与残差加法占每个 token 前向 FLOPs 的 {ln_add_share:.3%}，"
               "但它们受显存带宽限制，占用的时间更多。"),
    decide=lambda n: {
        "params_match_modules": n["params"] == n["module_params"],
        # 124,439,808: the count Hugging Face's GPT2Model reports for "gpt2".
        "gpt2_small_size": n["params"] == 124_439_808,
        # The hand count of a layer's matrix products against PyTorch's FlopCounterMode: both exact integers.
        "matmul_count_matches_pytorch": n["layer_matmul_flops"] == n["layer_counted_flops"],
        "under_one_percent": n["ln_param_share"] < 0.01 and n["ln_add_share"] < 0.01},
    # The source's claim false: LayerNorm and the adds as costly as a few percent of either.
    null=lambda n: {**n, "ln_param_share": 0.03, "ln_add_share": 0.03},
)
def r21() -> dict:
    """The evidence for R21. See book/05_residual.ipynb, section "What the pair costs"."""
    c = gpt2_small_counts()
    return {**{k: c[k] for k in ("ln_params", "params", "ln_param_share", "ln_add_share", "layer_matmul_flops")},
            "module_params": gpt2_small_module_params(), "layer_counted_flops": gpt2_layer_counted_flops()}


def add_vs_matmul_cost(tokens: int, d: int = 768, element_size: int = 2) -> dict[str, float]:
    """Counted FLOPs and bytes of a residual add and of the MLP's first matrix product on (tokens, d),
    and their least times on an H100 (:func:`roofline_seconds`), in bfloat16.

    The add reads two (tokens, d) tensors and writes one: one FLOP per output. The product
    (tokens, d) @ (d, 4d) does 2·tokens·d·4d FLOPs and reads x and W and writes its output once.
    """
    add = {"flops": tokens * d, "bytes": 3 * tokens * d * element_size}
    mm = {"flops": 2 * tokens * d * 4 * d, "bytes": (tokens * d + d * 4 * d + tokens * 4 * d) * element_size}
    # The add is elementwise (CUDA cores), the product runs on the tensor cores.
    t_add = roofline_seconds(add["flops"], add["bytes"], "fp32 CUDA core")
    t_mm = roofline_seconds(mm["flops"], mm["bytes"], "bf16 tensor core")
    return {"flop_ratio": add["flops"] / mm["flops"], "byte_ratio": add["bytes"] / mm["bytes"],
            "time_ratio": t_add / t_mm, "mm_flops": mm["flops"], "add_bytes": add["bytes"], "mm_bytes": mm["bytes"]}


def counted_add_and_matmul(tokens: int, d: int = 768) -> dict[str, float]:
    """The same quantities counted from PyTorch on the meta device (bfloat16 shapes, no arithmetic): the
    product's FLOPs by ``FlopCounterMode``, every tensor's bytes as ATen's ops read and write them."""
    x, r, w = (torch.empty(*shape, dtype=torch.bfloat16, device="meta") for shape in ((tokens, d), (tokens, d), (d, 4 * d)))
    with FlopCounterMode(display=False) as counter:
        x @ w
    return {"mm_flops": counter.get_total_flops(), "add_bytes": count_traffic(lambda: x + r).bytes,
            "mm_bytes": count_traffic(lambda: x @ w).bytes}


R14_TOKENS = (512, 8192)


@claim(
    "R14",
    anchors=(("004", "3.2 技术实现与规格", "其计算复杂度为 $O(d)$"),
             ("004", "9. 性能优化：计算效率与显存占用", "残差连接的逐元素加法复杂度仅为"), ("004", "9. 性能优化：计算效率与显存占用", "计算延迟增加几乎可以忽略不计")),
    claim=("The residual add is O(d) against the O(d²) matrix products; on GPUs such as the A100/H100 it is hidden in "
           "the gaps of memory traffic and matrix products, so the latency it adds is negligible."),
    statement=(
        "Holds under conditions: for arithmetic, not for time. A residual add on 512 tokens of width 768 does "
        "{flop_ratio:.2g} of the FLOPs of the MLP's first matrix product but moves {byte_ratio:.0%} of its "
        "bytes, because it reads two values and writes one for every FLOP. On an H100, where an op takes at least "
        "its bytes over the memory bandwidth or its FLOPs over the peak rate of the units it runs on (the add on the "
        "float32 CUDA cores, the product on the bfloat16 tensor cores), the add takes at least {time_ratio:.2f} of "
        "the product's time, {excess:,.0f}× its FLOP share; with 8192 tokens, where the product is bound by "
        "arithmetic, still {time_ratio_long:.2f} (closed form 3·peak/(4·bandwidth·d) = {closed_form_long:.2f}). "
        "That is why the kernels chapter fuses it with LayerNorm (R11)."
    ),
    verdict="holds under conditions",
    kind="model",
    assumptions=("an op takes at least its bytes over the H100's memory bandwidth or its FLOPs over the peak rate "
                 "of the units it runs on (float32 CUDA cores for the add, dense bfloat16 tensor cores for the "
                 "product; datasheet figures, lnbook.hardware), whichever is longer; every tensor is read or "
                 "written once"),
    answer_zh=("有条件成立：算术上可忽略，时间上不可忽略：512 个 token、宽 768 时残差加法的 FLOPs 只有 MLP 第一个矩阵乘的 "
               "{flop_ratio:.2g}，搬运的字节却达其 {byte_ratio:.0%}，按 H100 的带宽和峰值至少耗时后者的 {time_ratio:.2f}，"
               "8192 个 token 时仍为 {time_ratio_long:.2f}。"),
    decide=lambda n: {
        # The roofline's inputs, counted twice: by hand and by PyTorch on the meta device (exact integers).
        "counts_match_pytorch": n["counts_agree"] == 1,
        "negligible_in_flops": n["flop_ratio"] < 1e-3,
        # "Not negligible in time": at least a tenth of the product's least time, in both regimes.
        "not_negligible_in_time": min(n["time_ratio"], n["time_ratio_long"]) > 0.1},
    # The source's world: the add's share of the time no larger than its share of the FLOPs.
    null=lambda n: {**n, "time_ratio": n["flop_ratio"], "time_ratio_long": n["flop_ratio"], "excess": 1.0},
)
def r14() -> dict:
    """The evidence for R14. See book/05_residual.ipynb, section "What the pair costs"."""
    short, long = (add_vs_matmul_cost(t) for t in R14_TOKENS)
    counted = [counted_add_and_matmul(t) for t in R14_TOKENS]
    agree = all(c[k] == m[k] for c, m in zip(counted, (short, long)) for k in c)
    d = 768
    closed = 3 * H100.balance("bf16 tensor core") / (4 * d)  # add bytes 6·T·d over matmul FLOPs 8·T·d² at peak
    return {**{k: short[k] for k in ("flop_ratio", "byte_ratio", "time_ratio")},
            "excess": short["time_ratio"] / short["flop_ratio"], "time_ratio_long": long["time_ratio"],
            "closed_form_long": closed, "bandwidth_tbs": H100.bandwidth / 1e12, "tflops": H100.peak["bf16 tensor core"] / 1e12,
            "counts_agree": int(agree)}


# ----------------------------------------------------------------------------- distributed


R15_N = 96
R15_CONFIGS = ({"N": R15_N}, {"N": R15_N, "shift": 1e4}, {"N": R15_N, "shift": 1e4, "stats": "sums"})


@functools.cache
def sharded_errors(processes: int) -> list[dict[str, float]]:
    """Per config of :data:`R15_CONFIGS`: the worst error over ranks of y, dx, dw, db (one launch)."""
    per_rank = distributed.launch(distributed.shard_checks, processes, list(R15_CONFIGS))
    return [{k: max(r[i][k] for r in per_rank) for k in ("y", "dx", "dw", "db", "y_single", "dx_single")}
            for i in range(len(R15_CONFIGS))]


@claim(
    "R15",
    anchors=(("004", "9. 性能优化：计算效率与显存占用", "计算均值和方差就需要进行跨设备的通信"), ("004", "9. 性能优化：计算效率与显存占用", "必须严格保证全局统计量的同步一致性")),
    claim=("When the feature dimension is split across GPUs, LayerNorm's mean and variance need communication across "
           "devices, and the global statistics must be kept strictly synchronized rather than skipped or updated "
           "asynchronously."),
    statement=(
        "Holds, and the reduction is small. With each row's features split over 2 and 4 local processes (gloo), "
        "the sharded LayerNorm (y, dx, dw, db) is as accurate as unsharded float32: largest errors against float64 "
        "{err2:.2g} and {err4:.2g}, against {err_single:.2g}. On rows of mean 10⁴ the Welford merge stays as "
        "accurate as unsharded float32 (both limited by the rounding of x itself), while one all-reduce of Σx and "
        "Σx² gives an error of {err_sums_shift:,.0f}. Each process receives {bytes_fwd4:.0f} + {bytes_bwd4:.0f} "
        "bytes per token (forward statistics, backward sums) at 4 processes, whatever the row's width, where the row "
        "itself takes 4 bytes per feature in float32."
    ),
    verdict="holds",
    answer_zh=("成立，且通信量很小：把每行的特征分到 2 和 4 个进程，归约后的 LayerNorm 与 float64 的最大误差为 {err2:.2g} 和 "
               "{err4:.2g}，与不切分的 float32（{err_single:.2g}）相当；均值为 10⁴ 时只归约 Σx 和 Σx² 的误差达 "
               "{err_sums_shift:,.0f}，Welford 合并则没有问题；每个进程每个 token 只需接收 {bytes_fwd4:.0f} + "
               "{bytes_bwd4:.0f} 字节。"),
    decide=lambda n: {
        # Float32 on O(1) values: within 4× torch's own unsharded error plus 2 ulp at 1 (2 × 1.2e-7).
        "sharded_equals_unsharded": max(n["err2"], n["err4"]) <= 4 * n["err_single"] + 2.4e-7,
        # Without the reduction each shard normalizes with its own statistics: an O(1) error, not rounding.
        "reduction_needed": n["err_local4"] > 1000 * n["err_single"],
        "welford_shift_ok": n["err_welford_shift"] <= 2 * n["err_single_shift"],
        "sums_shift_fails": n["err_sums_shift"] > 1000 * n["err_single_shift"],
        "bytes_tiny": n["bytes_fwd4"] + n["bytes_bwd4"] < 0.01 * n["act_bytes"]},
    # A world where the shards' own statistics would do: no reduction needed.
    null=lambda n: {**n, "err_local4": n["err4"]},
)
def r15() -> dict:
    """The evidence for R15. See book/05_residual.ipynb, section "LayerNorm across devices"."""
    e2, e4 = sharded_errors(2), sharded_errors(4)
    worst = lambda e: max(e[k] for k in ("y", "dx", "dw", "db"))
    b = distributed.bytes_per_token(4)
    return {"N": R15_N, "err2": worst(e2[0]), "err4": worst(e4[0]), "err_single": max(e4[0]["y_single"], e4[0]["dx_single"]),
            "err_local4": local_statistics_error(4), "err_welford_shift": max(worst(e2[1]), worst(e4[1])),
            "err_single_shift": max(e4[1]["y_single"], e4[1]["dx_single"]), "err_sums_shift": max(worst(e2[2]), worst(e4[2])),
            "bytes_fwd4": b["forward"], "bytes_bwd4": b["backward"], "act_bytes": 4096 * 4}


def local_statistics_error(shards: int, rows: int = 16, seed: int = 12) -> float:
    """Largest error of LayerNorm when each of ``shards`` slices of the features is normalized with its own
    mean and variance (no cross-device reduction), against the whole row's, in float64."""
    x = randn(rows, R15_N, seed=seed) * torch.linspace(0.5, 2.0, R15_N, dtype=F64)  # features of unequal scale
    local = torch.cat([norms.layer_norm(c, c.shape[-1:], eps=1e-5) for c in x.chunk(shards, -1)], -1)
    return max_abs(local, norms.layer_norm(x, (R15_N,), eps=1e-5))


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float]:
    """The chapter's exercise answers, computed (tests/test_residual.py checks them against closed forms)."""
    d = 8
    u = torch.zeros(d, 1, dtype=F64)
    u[0] = 1.0
    smin = lambda a: float(torch.linalg.svdvals(torch.eye(d, dtype=F64) - a * u @ u.T).min())
    torch.manual_seed(0)
    model = nn.Sequential(*[TransformerBlock(16, 4) for _ in range(12)])
    gpt2_init_(model, 12)
    proj_std = float(model[0][1].sublayer.proj.weight.detach().std())
    alpha, beta = deepnorm_constants(12)
    c = gpt2_small_counts()
    return {"smin_099": smin(0.99), "smin_150": smin(1.5), "smin_099_10": smin(0.99) ** 10,
            "gpt2_proj_std": proj_std, "alpha_12": alpha, "beta_12": beta, "ln_params": c["ln_params"]}
