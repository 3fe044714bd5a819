"""Chapter 5 (seed 004), book/05_residual: LayerNorm and residual connections, claims R01–R04, R09, R19
and R25–R29.

Sections of the chapter: "The formula, the shapes and the labels" (R02–R04, R26–R29) and "The residual
Jacobian" (R01, R09, R19, R25). Pre-LN and Post-LN at initialization and the residual stream are
:mod:`lnbook.experiments.residual_depth` (its placement test, ``classify_placement``, is in ``common``);
training is :mod:`lnbook.experiments.residual_training`; the backward pass, precision, costs and
sharding are :mod:`lnbook.experiments.residual_practice`; R40–R43 are
:mod:`lnbook.experiments.residual_landscape`. R11 (fused add + LayerNorm) belongs to the kernels chapter
(:mod:`lnbook.experiments.kernels`).

Every experiment is seeded and small, runs on one thread (the tensors are tiny), and is cached so
that the chapter and the claims share one run. Functions named after a quantity return data for the
figures and the prose; the functions decorated with :func:`lnbook.claims.claim` turn it into evidence.
Each claim's function measures and returns its numbers; its ``decide`` turns them into checks and
its ``null`` gives the numbers of a world without the claim's effect, which the decision must reject. No claim
here trains a model: every number is measured at initialization or computed, so none is a training outcome.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from lnbook.claims import claim
from lnbook.experiments.common import F64, classify_placement, ln, max_abs, one_thread, randn
from lnbook.models import Block, TransformerBlock

H31 = "3.1 Layer Normalization：解决内部协变量偏移"  # headings of seed 004 that several anchors cite
H33 = "3.3 关键数据结构与代码实现"
H34 = "3.4 选型建议与迁移注意事项"
H42 = "4.2 技术优势和创新点：解决梯度消失与退化"
H62 = "6.2 梯度爆炸与消失的根治：残差连接对奇异值的影响"
CHAPTER = "book/05_residual"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- the formula and the shapes


@claim(
    "R02",
    anchors=(("004", H31, "{\\sigma + \\epsilon} + \\beta"),),
    claim="LayerNorm is LN(h) = γ·(h − μ)/(σ + ε) + β, with σ the standard deviation over the features.",
    statement=(
        "Does not hold as written: frameworks divide by √(σ² + ε), not σ + ε. PyTorch's layer_norm matches "
        "the √(σ² + ε) form to {err_sqrt:.1g} and differs from σ + ε by {err_plus:.2g} on rows of σ = 1; on a "
        "row of σ = 10⁻³ the two forms differ by a factor {ratio_small:.2f}. The source's own code "
        "(manual_layer_norm) uses the correct form."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # float64 on rows of σ = 1: only rounding separates torch from the √(σ² + ε) form.
        "torch_is_sqrt_form": n["err_sqrt"] < 1e-12,
        # 1/√(1+ε) − 1/(1+ε) ≈ ε/2 = 5e-6 times |x| up to about 3.
        "plus_form_differs": n["err_plus"] > 1e-6,
        # σ = 10⁻³ against √ε ≈ 3·10⁻³: the closed form √(s² + ε)/(s + ε) is 3.28.
        "small_sigma_far_apart": n["ratio_small"] > 3,
    },
    # The source's world: torch divides by σ + ε, so the σ + ε form matches and the √ form is the one that differs.
    null=lambda n: {**n, "err_sqrt": n["err_plus"], "err_plus": n["err_sqrt"], "ratio_small": 1.0},
    answer_zh="不成立：框架除以 √(σ² + ε) 而不是 σ + ε；PyTorch 的 layer_norm 与 √(σ² + ε) 形式相差 {err_sqrt:.1g}，"
    "与 σ + ε 形式相差 {err_plus:.2g}，而在 σ = 10⁻³ 的行上两种写法相差 {ratio_small:.2f} 倍（原文自己的 manual_layer_norm "
    "用的是正确形式）。",
)
def r02() -> dict:
    """The evidence for R02. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    eps = 1e-5
    x = randn(8, 64, seed=2)
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)  # σ = 1 exactly per row
    torch_y = torch.nn.functional.layer_norm(x, (64,), eps=eps)
    sqrt_form, plus_form = x / math.sqrt(1 + eps), x / (1 + eps)
    s = 1e-3  # a nearly constant row of std s: torch's output against the σ + ε form's, s/(s + ε)
    near = s * x[:1]
    torch_small = float(torch.nn.functional.layer_norm(near, (64,), eps=eps).std(correction=0))
    return {"err_sqrt": max_abs(torch_y, sqrt_form), "err_plus": max_abs(torch_y, plus_form),
            "ratio_small": float((near / (s + eps)).std(correction=0)) / torch_small}


def snippet_placements() -> list[tuple[str, str, str]]:
    """Each residual expression the source labels Pre-LN or Post-LN, in code, in its inline flow descriptions
    and in its formulas: (where, the source's label, what it implements)."""
    snippets = [  # (where, source's label, the expression as a function of norm, sublayer, x)
        ("§3.1 SublayerWrapper", "post", lambda n, f, x: n(x + f(x))),
        ("§3.2 SublayerWrapper (comment: norm after the add)", "post", lambda n, f, x: x + f(n(x))),
        ("§3.3 SublayerConnection (docstring, comment and note: Post-LN)", "post", lambda n, f, x: x + f(n(x))),
        ("§3.4 migration notes, Post-LN: Input -> SubLayer -> LN -> Add", "post", lambda n, f, x: x + n(f(x))),
        ("§3.4 migration notes, Pre-LN: Input -> LN -> SubLayer -> Add", "pre", lambda n, f, x: x + f(n(x))),
        ("§4.3 TransformerBlock (comment: Pre-Norm)", "pre", lambda n, f, x: x + f(n(x))),
        ("§4.2 SublayerConnection (comment: Post-LN variant)", "post", lambda n, f, x: x + f(n(x))),
        ("§4.3 SublayerConnection (comment: Post-LN)", "post", lambda n, f, x: x + f(n(x))),
        ("§5.1.1 formula (Post-Norm)", "post", lambda n, f, x: n(x + f(x))),
        ("§5.1.1 formula (Pre-Norm)", "pre", lambda n, f, x: x + f(n(x))),
        ("§5.2.1 formula (Post-Norm)", "post", lambda n, f, x: x + f(n(x))),
        ("§5.3.1 formula (Pre-Norm)", "pre", lambda n, f, x: x + f(n(x))),
        ("§8.3 Post-LN formula", "post", lambda n, f, x: x + n(f(x))),
        ("§8.3 Pre-LN formula", "pre", lambda n, f, x: x + f(n(x))),
        ("§4.2 comparison code, scheme one (Post-LN)", "post", lambda n, f, x: x + f(n(x))),
        ("§4.2 comparison code, scheme two (Pre-LN)", "pre", lambda n, f, x: x + n(f(x))),
    ]
    return [(where, label, classify_placement(expr)) for where, label, expr in snippets]


@claim(
    "R03",
    anchors=(("004", "3.2 技术实现与规格", "Layer Norm：通常在加法之后进行"),
             ("004", H33, "(此处为Post-LN结构)"),
             ("004", H33, "代码展示了经典的Post-LN结构"),
             ("004", H34, "Input -> SubLayer -> LN -> Add"),
             ("004", "4.3 工作流程与数据流", "以下代码块展示了典型的 Pre-LN 结构"),
             ("004", H42, "这里采用Post-LN的常见变体示意"),
             ("004", "4.3 实现细节与代码解析", "这种写法对应 Post-LN 结构 (先加后归一化)"),
             ("004", "4.2 优缺点与架构演进", "方案一：Post-LN (原始Transformer"),
             ("004", "4.2 优缺点与架构演进", "方案二：Pre-LN (GPT-2/BERT/Llama"),
             ("004", "5.2.1 信号传输的“阻尼”效应", "从数学上看，在Post-Norm中"),
             ("004", "8.3 架构细节对比：Pre-LN vs. Post-LN", "Post-LN（原始Transformer架构）：即")),
    claim="The source names the placement of each residual expression it writes, in code comments, a docstring, "
    "a note, inline flow descriptions and formulas: for example x + dropout(sublayer(norm(x))) is called Post-LN, "
    "x_l = x_{l−1} + F(LayerNorm(x_{l−1})) is called Post-Norm in §5.2.1 and Pre-Norm in §5.3.1, and "
    "x + Dropout(LayerNorm(Sublayer(x))) (Input → SubLayer → LN → Add) is called Pre-LN in one place and Post-LN "
    "in two others.",
    statement=(
        "Does not hold: {wrong} of the source's {total} labelled residual expressions carry the wrong label. "
        "x + sublayer(norm(x)) is Pre-LN (the sublayer sees normalized input; the sum is not normalized), "
        "whatever its comment says; norm(x + sublayer(x)) is Post-LN; and x + LayerNorm(Sublayer(x)), which the "
        "source calls Pre-LN once and Post-LN {branch_as_post} times, is neither: it normalizes the branch's "
        "output before the add."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # The classifier itself: it must name the two standard forms before its verdicts count.
        "classifier_knows_post": n["post_form"] == "post",
        "classifier_knows_pre": n["pre_form"] == "pre",
        "some_mislabeled": n["wrong"] > 0,
        "table_pre_is_branch_norm": n["table_pre"] == "branch",
    },
    # The source's world: every label names what its expression does, the comparison's Pre-LN included.
    null=lambda n: {**n, "wrong": 0, "table_pre": "pre", "branch_as_post": 0},
    answer_zh="不成立：原文给残差表达式标注的位置中，{total} 处有 {wrong} 处标错；x + sublayer(norm(x)) 是 Pre-LN，"
    "norm(x + sublayer(x)) 才是 Post-LN，而 x + LayerNorm(Sublayer(x))（原文一处称 Pre-LN、{branch_as_post} 处称 "
    "Post-LN）两者都不是，它是在相加之前归一化分支的输出。",
)
def r03() -> dict:
    """The evidence for R03. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    rows = snippet_placements()
    return {"wrong": sum(label != real for _, label, real in rows), "total": len(rows),
            "table_pre": next(real for where, _, real in rows if "scheme two" in where),
            "branch_as_post": sum(label == "post" and real == "branch" for _, label, real in rows),
            "post_form": classify_placement(lambda n, f, x: n(x + f(x))),
            "pre_form": classify_placement(lambda n, f, x: x + f(n(x)))}


@claim(
    "R04",
    anchors=(("004", "4.2 关键数据结构", "关键节点在 PyTorch 中的典型张量形状"),),
    claim="A [16, 512, 768] activation (batch 16, 512 tokens, width 768) keeps its shape through the sublayer, the "
    "add and the LayerNorm.",
    statement=(
        "Holds: a Transformer layer of width 768 with 12 heads maps a {shape} input to {out_shape} through "
        "attention, MLP, adds and norms (checked on PyTorch's meta device: shapes without arithmetic)."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {"all_shapes_equal": n["shapes_equal"] == n["shapes"] and n["out_shape"] == n["shape"]},
    # A world where a shape leaks: the layer returns the MLP's hidden width, 4·768.
    null=lambda n: {**n, "out_shape": "[16, 512, 3072]", "shapes_equal": n["shapes"] - 1},
    answer_zh="成立：宽 768、12 个头的 Transformer 层把 {shape} 的输入经注意力、MLP、相加和归一化映射为 {out_shape}"
    "（在 PyTorch 的 meta 设备上只检查形状）。",
)
def r04() -> dict:
    """The evidence for R04. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    with torch.device("meta"):
        layer = TransformerBlock(768, heads=12)
        x = torch.empty(16, 512, 768)
        shapes = [tuple(x.shape)]
        for block in layer:
            shapes.append(tuple(block.sublayer(block.norm(x)).shape))
            x = block(x)
            shapes.append(tuple(x.shape))
    return {"shape": str(list(shapes[0])), "out_shape": str(list(shapes[-1])), "shapes": len(shapes),
            "shapes_equal": sum(s == shapes[0] for s in shapes)}


def _skew_kurt(v: torch.Tensor) -> tuple[float, float]:
    z = (v - v.mean()) / v.std(correction=0)
    return float((z ** 3).mean()), float((z ** 4).mean() - 3)


def _ks_normal(v: torch.Tensor) -> float:
    """Kolmogorov–Smirnov distance between the values of ``v`` and N(0, 1)."""
    v, _ = torch.sort(v)
    n = len(v)
    cdf = 0.5 * (1 + torch.erf(v / math.sqrt(2)))
    k = torch.arange(1, n + 1, dtype=v.dtype)
    return float(torch.maximum(k / n - cdf, cdf - (k - 1) / n).max())


def ln_output_shape(d: int = 768, seed: int = 26) -> dict[str, float]:
    """LayerNorm (ε = 1e-5) of a row of exponential values (skewed) and of a Gaussian row: moments and normality."""
    gen = torch.Generator().manual_seed(seed)
    expo = -torch.log(torch.rand(d, generator=gen, dtype=F64))  # Exp(1): skewness 2, excess kurtosis 6
    gauss = randn(d, seed=seed)
    y, yg = ln(expo, eps=1e-5), ln(gauss, eps=1e-5)
    (skew_in, kurt_in), (skew_out, kurt_out) = _skew_kurt(expo), _skew_kurt(y)
    return {"d": d, "mean_out": float(y.mean().abs()), "var_dev": abs(float(y.var(correction=0)) - 1),
            "skew_in": skew_in, "skew_out": skew_out, "kurt_out": kurt_out, "kurt_in": kurt_in,
            "ks_out": _ks_normal(y), "ks_gauss": _ks_normal(yg)}


@claim(
    "R26",
    anchors=(("004", "面临的挑战与为什么需要这项技术", "方差为1的标准正态分布"),
             ("004", "2. 核心组件与关键技术原理", "将数据分布拉回到均值为0、方差为1的标准正态分布"),
             ("004", "3.1 核心功能特性", "将数据的分布强制拉回到标准正态分布")),
    claim="LayerNorm pulls each layer's input back to the standard normal distribution (mean 0, variance 1).",
    statement=(
        "Does not hold: LayerNorm fixes two moments of each row, not its distribution. On a row of {d} values drawn "
        "from an exponential distribution the output has mean 0 and variance 1 (up to ε and rounding), but LayerNorm "
        "is an affine map of the row, so the shape is untouched: skewness {skew_out:.2f} as in the input "
        "({skew_in:.2f}), excess kurtosis {kurt_out:.1f} (a normal has 0 for both), and a Kolmogorov–Smirnov distance "
        "of {ks_out:.2f} from N(0, 1), against {ks_gauss:.2f} for a Gaussian row. The output is standard normal only "
        "when the input row already was normal."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # The two moments LayerNorm does fix: float64, ε = 1e-5 against a variance of about 1.
        "mean_zero": n["mean_out"] < 1e-12,
        "variance_one": n["var_dev"] < 1e-4,
        # An affine map with a positive scale leaves the standardized moments unchanged: float64 rounding only.
        "skew_kept": abs(n["skew_out"] - n["skew_in"]) < 1e-9 and n["skew_out"] > 1,
        # KS distance of 768 normal draws is about 0.03 (its 1 % critical value 1.63/√768 = 0.059).
        "not_normal": n["ks_out"] > 0.059 > n["ks_gauss"],
    },
    # The source's world: the output is standard normal, with a normal's skewness and KS distance.
    null=lambda n: {**n, "skew_out": 0.0, "kurt_out": 0.0, "ks_out": n["ks_gauss"]},
    answer_zh="不成立：层归一化只固定每一行的均值和方差，不改变分布的形状：对 {d} 个指数分布取值的一行，输出的均值为 0、方差为 1，"
    "但偏度仍为 {skew_out:.2f}（与输入的 {skew_in:.2f} 相同），超额峰度为 {kurt_out:.1f}，与 N(0, 1) 的 KS 距离为 {ks_out:.2f}"
    "（高斯行为 {ks_gauss:.2f}）；只有输入本来就服从正态分布时输出才是标准正态分布。",
)
def r26() -> dict:
    """The evidence for R26. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    return ln_output_shape()


def source_manual_layer_norm(x, gamma, beta, eps=1e-6):
    """The source's ``manual_layer_norm`` (seed 004, "4.3 实现细节与代码解析"), as it writes it."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    x_normalized = (x - mean) / torch.sqrt(var + eps)
    return gamma * x_normalized + beta


@claim(
    "R27",
    anchors=(("004", "4.3 实现细节与代码解析", "手动模拟 LayerNorm 的计算过程"),),
    claim="The source's manual_layer_norm (mean and biased variance over the last dimension, (x − mean)/√(var + ε), "
    "then γ and β) reproduces what nn.LayerNorm computes.",
    statement=(
        "Holds under conditions: with the same ε. In float64, on rows of width 64 with random γ and β, it matches "
        "torch's layer_norm at ε = 10⁻⁶ to {err_same:.1g}. Its default ε = 10⁻⁶ is not nn.LayerNorm's 10⁻⁵: the "
        "outputs then differ by {err_default:.1g} on rows of standard deviation 1, and by {err_small:.2f} on a row of "
        "standard deviation 10⁻³, where ε is no longer small next to the variance."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # float64: rounding only.
        "same_eps_matches": n["err_same"] < 1e-12,
        # 1/√(1 + 1e-6) − 1/√(1 + 1e-5) ≈ 4.5e-6 times |x̂·γ| of order 1: far above rounding, far below 1e-3.
        "default_eps_differs": 1e-7 < n["err_default"] < 1e-3,
        # σ = 1e-3, σ² = 1e-6: the two ε change the scale by √(2e-6/1.1e-5) ≈ 0.43, so outputs of order 1 differ by tenths.
        "small_rows_differ": n["err_small"] > 0.1,
    },
    # A world where the manual version is not LayerNorm: it misses torch's result even at the same ε.
    null=lambda n: {**n, "err_same": n["err_small"]},
    answer_zh="有条件成立：ε 相同时才一致；float64 下它与 ε = 10⁻⁶ 的 layer_norm 相差 {err_same:.1g}，但它默认的 ε = 10⁻⁶ "
    "不是 nn.LayerNorm 的 10⁻⁵，在标准差为 1 的行上相差 {err_default:.1g}，在标准差为 10⁻³ 的行上相差 {err_small:.2f}。",
)
def r27() -> dict:
    """The evidence for R27. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    x = randn(8, 64, seed=27)
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)  # σ = 1 per row
    gamma, beta = randn(64, seed=28), randn(64, seed=29)
    torch_ln = lambda v, eps: torch.nn.functional.layer_norm(v, (64,), gamma, beta, eps=eps)
    small = 1e-3 * x[:1]
    return {"err_same": max_abs(source_manual_layer_norm(x, gamma, beta), torch_ln(x, 1e-6)),
            "err_default": max_abs(source_manual_layer_norm(x, gamma, beta), torch_ln(x, 1e-5)),
            "err_small": max_abs(source_manual_layer_norm(small, gamma, beta), torch_ln(small, 1e-5))}


def batchnorm_axes(seed: int = 29) -> dict[str, float]:
    """The source's BatchNorm1d line on a [2, 10, 512] input, bn(x.view(2, 512, 10)).view(2, 10, 512), against
    the channel-first layout BatchNorm1d expects, x.transpose(1, 2): per-feature mean over batch and positions."""
    torch.manual_seed(seed)
    x = randn(2, 10, 512, seed=seed)
    x = x * torch.linspace(0.5, 2.0, 512, dtype=F64) + torch.linspace(-1.0, 1.0, 512, dtype=F64)  # features differ
    bn = nn.BatchNorm1d(512).double()  # training mode: normalizes with the batch's statistics
    with torch.no_grad():
        return _bn_layouts(bn, x)


def _bn_layouts(bn: nn.Module, x: torch.Tensor) -> dict[str, float]:
    viewed = bn(x.view(2, 512, 10)).view(2, 10, 512)
    right = bn(x.transpose(1, 2)).transpose(1, 2)
    per_feature = lambda y: y.mean(dim=(0, 1))  # (512,): each feature's mean over batch and positions
    return {"mean_right": float(per_feature(right).abs().max()), "mean_view": float(per_feature(viewed).abs().max()),
            "var_view_max": float(viewed.var(dim=(0, 1), correction=0).max()), "diff": max_abs(viewed, right)}


@claim(
    "R28",
    anchors=(("004", "3.3 代码实现对比", "bn(x.view(2, 512, 10))"),),
    claim="The comparison code's (commented-out) BatchNorm line, bn(x.view(2, 512, 10)).view(2, 10, 512) on an input "
    "of shape [batch, sequence, hidden] = [2, 10, 512], normalizes each of the 512 hidden features over the batch "
    "(the axis the code contrasts with LayerNorm's).",
    statement=(
        "Does not hold: view does not move the hidden axis to the channel position, it reinterprets the memory, so "
        "each of BatchNorm's 512 'channels' holds ten consecutive values of the flattened tokens, across features. On an input whose features have "
        "different means and scales, the line leaves per-feature means up to {mean_view:.2f} (variances up to "
        "{var_view_max:.2f}), while bn(x.transpose(1, 2)).transpose(1, 2) brings every feature's mean to "
        "{mean_right:.1g}; the two outputs differ by up to {diff:.2f}."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # The transposed layout normalizes each feature: float64 rounding only.
        "transpose_normalizes": n["mean_right"] < 1e-12,
        # The input's feature means range over ±1: the view leaves most of that in place.
        "view_does_not": n["mean_view"] > 0.3,
        "outputs_differ": n["diff"] > 0.3,
    },
    # The source's world: view and transpose give the same layout and the same output.
    null=lambda n: {**n, "mean_view": n["mean_right"], "diff": 0.0},
    answer_zh="不成立：view 并不会把隐藏维移到通道位置，只是重新解释内存，于是 BatchNorm 的 512 个“通道”各装着展平后序列中连续的十个数，跨越不同特征；"
    "特征均值不同的输入经这一行后，各特征的均值仍可达 {mean_view:.2f}，而先 transpose(1, 2) 的写法能把每个特征的均值降到 "
    "{mean_right:.1g}，两者输出最多相差 {diff:.2f}。",
)
def r28() -> dict:
    """The evidence for R28. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    return batchnorm_axes()


@claim(
    "R29",
    anchors=(("004", H33, "而在BERT、GPT-3等现代大模型中"),
             ("004", "4.1 核心算法原理：加法与归一化的协同", "在 BERT 等 Transformer 变体中"),
             ("004", "4.2 优缺点与架构演进", "GPT-2/BERT/Llama等现代架构首选"),
             ("004", H34, "在从 BERT (Post-LN) 迁移到 GPT")),
    claim="BERT, like GPT-3, uses Pre-LN (said three times; §3.4, like §5.2, calls BERT Post-LN instead).",
    statement=(
        "Does not hold for BERT: BERT is Post-LN. Devlin et al. (2019) build BERT as 'almost identical to the "
        "original implementation' of the Transformer, whose sublayers compute LayerNorm(x + Sublayer(x)), and the "
        "released code writes LayerNorm(hidden_states + input_tensor) after attention and after the feed-forward "
        "layer; our placement test on that expression says {bert}. GPT-3 is Pre-LN, as the source says (GPT-2's "
        "x + Sublayer(LayerNorm(x)), which Brown et al. (2020) keep; placement test: {gpt3}). The source's own "
        "§3.4 and §5.2 have BERT right."
    ),
    verdict="does not hold",
    kind="model",
    assumptions="BERT's architecture as Devlin et al. (2019, §3) state it, the original Transformer's "
    "LayerNorm(x + Sublayer(x)), and as their released modeling.py writes it (BertSelfOutput and BertOutput: "
    "LayerNorm(hidden_states + input_tensor)); GPT-3's as Brown et al. (2020, §2.1) state it: GPT-2's "
    "pre-normalization.",
    decide=lambda n: {"bert_is_post_ln": n["bert"] == "post", "gpt3_is_pre_ln": n["gpt3"] == "pre"},
    # The source's world: BERT's layer normalizes the sublayer's input, as GPT-3's does.
    null=lambda n: {**n, "bert": "pre"},
    answer_zh="不成立（就 BERT 而言）：BERT 是 Post-LN，Devlin et al.（2019）称其与原始 Transformer 的实现几乎相同，"
    "发布的代码在注意力和前馈层之后都计算 LayerNorm(hidden_states + input_tensor)，我们的位置检测给出 {bert}；"
    "GPT-3 确实是 Pre-LN（检测结果 {gpt3}），原文第 3.4 节和第 5.2 节对 BERT 的说法本来就是对的。",
)
def r29() -> dict:
    """The evidence for R29. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    return {"bert": classify_placement(lambda n, f, x: n(f(x) + x)),  # modeling.py: LayerNorm(hidden + input)
            "gpt3": classify_placement(lambda n, f, x: x + f(n(x)))}  # GPT-2/3: x + sublayer(ln(x))


# ----------------------------------------------------------------------------- the residual Jacobian


def block_jacobians(d: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """For one token through a Pre-LN MLP block: the Jacobian of the block and of its branch (d, d)."""
    torch.manual_seed(seed)
    block = Block(d, "pre").double()
    x = randn(d, seed=seed)
    full = torch.autograd.functional.jacobian(block, x)
    branch = torch.autograd.functional.jacobian(lambda v: block.sublayer(block.norm(v)), x)
    return {"block": full, "branch": branch}


@claim(
    "R01",
    anchors=(("004", "雅可比矩阵的特征结构", "变成了 $I + J$ 的形式"),
             ("004", "2. 核心组件与关键技术原理", "梯度的计算包含了一项常数 $1$"),
             ("004", "3.2 残差连接：梯度的高速公路", "而残差连接的导数包含了一个常数项“1”"),
             ("004", H42, "梯度的反向传播包含了一项常数 $1$"),
             ("004", "4.1 核心算法原理：加法与归一化的协同", "直接通过“加法”运算流向浅层"),
             ("004", H62, "而是变成了 $I + J$ 的形式")),
    claim="The derivative of a residual block y = x + F(x) is I + ∂F/∂x: the backward pass carries a constant "
    "identity term besides the branch's Jacobian.",
    statement=(
        "Holds, exactly: for a Pre-LN MLP block of width {d} the autograd Jacobian of the block equals "
        "I plus the autograd Jacobian of its branch to {err:.1g}."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        # float64 sums of O(1) terms: rounding only.
        "jacobian_is_identity_plus_branch": n["err"] < 1e-12,
        # A branch whose Jacobian is zero would make the identity trivial: its entries reach 0.01 or more.
        "branch_not_zero": n["branch_max"] > 0.01,
    },
    # A block without its skip, y = F(x): its Jacobian misses the identity, an error of exactly 1.
    null=lambda n: {**n, "err": 1.0},
    answer_zh="成立，且是精确的：宽 {d} 的 Pre-LN MLP 块，其雅可比矩阵等于单位矩阵加上分支的雅可比矩阵，误差 {err:.1g}。",
)
def r01() -> dict:
    """The evidence for R01. See book/05_residual.ipynb, section "The residual Jacobian"."""
    j = block_jacobians()
    d = j["block"].shape[0]
    return {"d": d, "err": max_abs(j["block"], torch.eye(d, dtype=F64) + j["branch"]),
            "branch_max": float(j["branch"].abs().max())}


def chain_rule_through_block(d: int = 12, seed: int = 0) -> dict[str, float]:
    """For one token through a Pre-LN MLP block y = x + F(x) and a random upstream gradient g = ∂L/∂y: autograd's
    ∂L/∂x against gᵀ(I + ∂F/∂x), and how far g itself is from it."""
    j = block_jacobians(d, seed)
    g = randn(d, seed=seed + 7)  # ∂L/∂y for L = ⟨g, y⟩
    torch.manual_seed(seed)
    block = Block(d, "pre").double()
    x = randn(d, seed=seed).requires_grad_()
    (g * block(x)).sum().backward()
    chain = g @ (torch.eye(d, dtype=F64) + j["branch"])
    return {"d": d, "err": max_abs(x.grad, chain), "gap": float((x.grad - g).norm() / g.norm())}


@claim(
    "R25",
    anchors=(("004", "4.4 关键技术原理：为何百层模型不崩塌？", "在反向传播时，梯度变为"),),
    claim="Through y = x + F(x) the gradient becomes ∂L/∂y = ∂L/∂y·(1 + ∂F/∂x), as the source writes it (the same "
    "symbol ∂L/∂y on both sides).",
    statement=(
        "Does not hold as written: the left-hand side is ∂L/∂x. For a Pre-LN MLP block of width {d} and a random "
        "upstream gradient, autograd's ∂L/∂x equals ∂L/∂y·(I + ∂F/∂x) to {err:.1g}, and differs from ∂L/∂y by "
        "{gap:.2f} of its norm; read literally, the source's equation would force ∂L/∂y·∂F/∂x = 0."
    ),
    verdict="does not hold",
    kind="derivation",
    decide=lambda n: {
        # float64 products of O(1) terms: rounding only.
        "chain_rule_gives_dx": n["err"] < 1e-12,
        # The branch changes the gradient by far more than rounding: a relative gap of a few per cent or more.
        "dx_is_not_dy": n["gap"] > 0.01,
    },
    # The source's equation read literally: ∂L/∂x is ∂L/∂y itself, the branch adding nothing.
    null=lambda n: {**n, "gap": 0.0},
    answer_zh="不成立（按原文写法）：左边应是 ∂L/∂x；宽 {d} 的 Pre-LN MLP 块上，自动求导的 ∂L/∂x 与 ∂L/∂y·(I + ∂F/∂x) "
    "相差 {err:.1g}，而与 ∂L/∂y 相差其范数的 {gap:.2f}。",
)
def r25() -> dict:
    """The evidence for R25. See book/05_residual.ipynb, section "The residual Jacobian"."""
    return chain_rule_through_block()


def sigma_min_cases(d: int = 64, seed: int = 1) -> dict[str, float]:
    """σ_min(I + J) for a small random J (‖J‖₂ = 0.1), for a stack of such blocks, for the branches of Pre-LN MLP
    blocks at PyTorch's default initialization, and for a J with the eigenvalue −0.99 (no small singular values)."""
    small = lambda s: (lambda g: 0.1 * g / float(torch.linalg.matrix_norm(g, 2)))(randn(d, d, seed=s) / math.sqrt(d))
    eye = torch.eye(d, dtype=F64)
    smin = lambda m: float(torch.linalg.svdvals(m).min())
    layers = 20
    product = eye
    for layer in range(layers):
        product = (eye + small(seed + 100 + layer)) @ product  # ∂x_L/∂x_0 of a stack of small residual blocks
    u = randn(d, 1, seed=seed + 1)
    u = u / u.norm()
    blocks = [smin(torch.eye(16, dtype=F64) + block_jacobians(16, s)["branch"]) for s in range(4)]
    return {"small": smin(eye + small(seed)), "depth": layers, "stacked_small": smin(product),
            "blocks_min": min(blocks), "blocks_max": max(blocks), "adversarial": smin(eye - 0.99 * u @ u.T)}


@claim(
    "R09",
    anchors=(("004", "雅可比矩阵的特征结构", "奇异值下界被锁定在1附近"),
             ("004", H62, "单位矩阵 $I$ 的存在保证了总梯度矩阵"),
             ("004", H62, "梯度至少能以 $1.0$ 的倍率无损地传回前层"),
             ("004", "面临的挑战与为什么需要这项技术", "确保梯度至少能够无损地传回前面的层"),
             ("004", "3.2 残差连接：梯度的高速公路", "这确保了梯度至少能以原始强度传回"),
             ("004", "4.2 核心组件与模块", "保证梯度至少为1"),
             ("004", "2. 核心组件与关键技术原理", "梯度也能通过这个“恒等映射”通道无损地流向浅层"),
             ("004", "4.4 关键技术原理：为何百层模型不崩塌？", "梯度也能通过常数项 $1$ 无损地回传到浅层网络"),
             ("004", H42, "梯度可以无损地穿过多个层直接传递"),
             ("004", "引言", "彻底告别梯度消失")),
    claim="When the branch's Jacobian J has very small singular values (near 0), the identity locks the smallest "
    "singular value of I + J near 1; so the gradient is passed back at least at its full strength (a factor of "
    "at least 1.0), losslessly, and vanishing gradients are cured completely.",
    statement=(
        "Does not hold: near 1 is not at least 1. The source's condition does give a bound near 1: Weyl's inequality "
        "gives σ_min(I + J) ≥ 1 − ‖J‖₂, and a random J with ‖J‖₂ = 0.1 gives σ_min = {small:.3f}. But that is "
        "below 1, so along some directions the gradient comes back smaller, and the losses compound: through "
        "{depth} such blocks the weakest direction keeps {stacked_small:.2f} of its size. Real branches at "
        "PyTorch's default initialization are not that small: four Pre-LN MLP blocks of width 16 have "
        "σ_min(I + J) from {blocks_min:.2f} to {blocks_max:.2f}, every one below 1. And without the condition there "
        "is no bound at all: a J with the eigenvalue −0.99 gives σ_min = {adversarial:.2f}."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # Weyl: σ_min(I + J) ≥ 1 − ‖J‖₂ = 0.9, up to float64 rounding: the source's condition does give "near 1".
        "weyl_bound": n["small"] >= 0.9 - 1e-12,
        # "At least 1.0" fails: σ_min below 1 by far more than rounding, for the small J and for every init block.
        "small_below_one": n["small"] < 1 - 1e-3,
        "init_blocks_below_one": n["blocks_max"] < 1 - 1e-3,
        "losses_compound": n["stacked_small"] < n["small"],
        # I − 0.99·uuᵀ has singular values 1 (d − 1 times) and exactly 0.01: float64 rounding only.
        "no_bound_without_condition": abs(n["adversarial"] - 0.01) < 1e-12,
    },
    # The source's world: the identity keeps every singular value of I + J at 1 or above.
    null=lambda n: {**n, "small": 1.0, "stacked_small": 1.0, "blocks_min": 1.0, "blocks_max": 1.0},
    answer_zh="不成立：接近 1 不等于至少为 1；在原文的条件下 σ_min(I + J) ≥ 1 − ‖J‖₂ 确实接近 1（‖J‖₂ = 0.1 时为 "
    "{small:.3f}），但仍小于 1，某些方向上的梯度会变小，经过 {depth} 个这样的块后最弱方向只剩 {stacked_small:.2f}；"
    "默认初始化下四个宽 16 的 Pre-LN MLP 块的 σ_min(I + J) 在 {blocks_min:.2f} 到 {blocks_max:.2f} 之间，全都小于 1。",
)
def r09() -> dict:
    """The evidence for R09. See book/05_residual.ipynb, section "The residual Jacobian"."""
    return sigma_min_cases()


# ----------------------------------------------------------------------------- effective depth


@functools.cache
def first_layer_gradient(kind: str, depth: int, d: int = 32, seed: int = 12) -> float:
    """‖∂L/∂W₁‖ of the first layer of a ReLU stack, relative to the last layer's: plain (PyTorch default or He
    init) or residual (Pre-LN MLP blocks)."""
    with one_thread():
        torch.manual_seed(seed)
        if kind == "residual":
            layers = [Block(d, "pre") for _ in range(depth)]
            first, last = layers[0].sublayer.fc, layers[-1].sublayer.proj
        else:
            layers = [nn.Sequential(nn.Linear(d, d), nn.ReLU()) for _ in range(depth)]
            if kind == "plain-he":
                for lay in layers:
                    nn.init.kaiming_normal_(lay[0].weight, nonlinearity="relu")
            first, last = layers[0][0], layers[-1][0]
        y = nn.Sequential(*layers)(randn(64, d, seed=seed, dtype=torch.float32))
        (randn(64, d, seed=seed + 1, dtype=torch.float32) * y).sum().backward()
    return float(first.weight.grad.norm() / last.weight.grad.norm())


EFFECTIVE_DEPTHS = (6, 12, 24, 48)


@claim(
    "R19",
    anchors=(("004", "4.3 性能指标和规格", "指数级衰减 | 线性衰减或常数级"),
             ("004", "4.3 性能指标和规格", "通常 < 20层 | 100层 ~ 1000层+"),
             ("004", "面临的挑战与为什么需要这项技术", "梯度需要通过连乘运算穿过数百层激活函数"),
             ("004", "3.2 残差连接：梯度的高速公路", "梯度在反向传播时需要不断乘以权重矩阵"),
             ("004", H62, "如果这些矩阵的奇异值普遍小于1")),
    claim="Without residual connections the gradient, a product of many layers' factors, decays exponentially (or "
    "explodes) and the effective depth is usually under 20 layers; with them it decays linearly or not at all, and "
    "100–1000+ layers train.",
    statement=(
        "Holds under conditions: exponential decay is a property of the initialization, not of plain stacks. "
        "With PyTorch's default initialization a plain ReLU stack's first-layer gradient is {default_24:.1g} of "
        "its last layer's at depth 24 and {default_48:.1g} at 48, exponential decay; with He initialization the "
        "same plain stack gives {he_24:.2f} and {he_48:.2f}: no decay in expectation at initialization. "
        "A Pre-LN residual stack gives {res_24:.2f} and {res_48:.2f} with the default initialization. The "
        "source's 20 and 100–1000+ layers are not measurable quantities of the architecture."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # Exponential: doubling the depth (24 → 48) squares the ratio, up to a factor 100 of seed noise.
        "default_exponential": n["default_48"] < 100 * n["default_24"] ** 2 and n["default_24"] < 1e-3,
        "he_no_collapse": min(n["he_24"], n["he_48"]) > 0.05,
        "residual_no_collapse": min(n["res_24"], n["res_48"]) > 0.2,
    },
    # A world where the decay belongs to plain stacks whatever their initialization: He decays like the default.
    null=lambda n: {**n, "he_24": n["default_24"], "he_48": n["default_48"]},
    answer_zh="有条件成立：指数衰减取决于初始化而不在于是否有残差；默认初始化的普通 ReLU 堆叠第一层梯度在深 24 层时只有"
    "最后一层的 {default_24:.1g}、48 层时 {default_48:.1g}，而 He 初始化下为 {he_24:.2f} 和 {he_48:.2f}，"
    "Pre-LN 残差堆叠为 {res_24:.2f} 和 {res_48:.2f}；原文的 20 层与 100–1000+ 层不是架构可测的量。",
)
def r19() -> dict:
    """The evidence for R19. See book/05_residual.ipynb, section "The residual Jacobian"."""
    g = {k: [first_layer_gradient(k, L) for L in EFFECTIVE_DEPTHS] for k in ("plain", "plain-he", "residual")}
    i24, i48 = EFFECTIVE_DEPTHS.index(24), EFFECTIVE_DEPTHS.index(48)
    return {"default_24": g["plain"][i24], "default_48": g["plain"][i48], "he_24": g["plain-he"][i24],
            "he_48": g["plain-he"][i48], "res_24": g["residual"][i24], "res_48": g["residual"][i48]}
