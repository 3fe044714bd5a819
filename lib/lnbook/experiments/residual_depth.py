"""Chapter 5 (seed 004), book/05_residual: Pre-LN and Post-LN at initialization and the residual stream,
claims R05–R08, R17, R23 and R24.

Sections of the chapter: "Pre-LN and Post-LN at initialization" (R05, R23, R24) and "The residual
stream" (R06–R08, R17). The formula, the shapes, the labels and the residual Jacobian are
:mod:`lnbook.experiments.residual` (both take the placement test, ``classify_placement``, from
``common``); training is :mod:`lnbook.experiments.residual_training`; the
backward pass, precision, costs and sharding are :mod:`lnbook.experiments.residual_practice`; R40–R43
are :mod:`lnbook.experiments.residual_landscape`.

Every experiment is seeded and small, runs on one thread (the tensors are tiny), and is cached so
that the chapter and the claims share one run. Quoted constants (GPT-2's initialization, DeepNorm's α
and β) name their source where they are defined. No claim here trains a model: every number is
measured at initialization (R24's one random-sign step of every weight included) or computed.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from lnbook import models
from lnbook.claims import claim
from lnbook.experiments.common import (
    F64,
    SeedSpread,
    classify_placement,
    ln,
    loglog_slope,
    max_abs,
    one_thread,
    over_seeds,
    randn,
    semilog_slope,
)
from lnbook.models import (
    Block,
    DeepNormBlock,
    TransformerBlock,
    deepnorm_constants,
    deepnorm_init_,
    gpt2_init_,
    zero_branches_,
)

H34 = "3.4 选型建议与迁移注意事项"  # headings of seed 004 that several anchors cite
H532 = "5.3.2 GPT-2/3与DeepNet的设计选择"
CHAPTER = "book/05_residual"  # the chapter that shows this module's claims
DEPTHS = (6, 12, 24, 48, 96)
STACK = {"d": 32, "heads": 4, "batch": 4, "tokens": 8}

# ----------------------------------------------------------------------------- gradients in depth


def _stack(placement: str, depth: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    d, h = STACK["d"], STACK["heads"]
    layers = [TransformerBlock(d, h, placement) for _ in range(depth)]
    if placement == "pre":  # Pre-LN stacks end in a LayerNorm (GPT-2's ln_f; Xiong et al.'s setting)
        layers.append(nn.LayerNorm(d))
    return nn.Sequential(*layers)


@functools.cache
def layer_gradients(placement: str, depth: int, seed: int = 0) -> dict[str, list[float]]:
    """At initialization: ‖∂L/∂θ‖ of every layer's parameters, and of its last feed-forward weight W².

    L = ⟨c, y⟩/√(size) with c fixed and random: a loss whose gradient at the output has a fixed size,
    so what varies with depth is the stack alone.
    """
    with one_thread():
        model = _stack(placement, depth, seed)
        x = randn(STACK["batch"], STACK["tokens"], STACK["d"], seed=seed, dtype=torch.float32)
        y = model(x)
        (randn(*y.shape, seed=seed + 1, dtype=torch.float32) * y).sum().div(y.numel() ** 0.5).backward()
        layers = [m for m in model if isinstance(m, TransformerBlock)]
        norm = lambda ps: float(torch.sqrt(sum(p.grad.pow(2).sum() for p in ps)))
        return {"layer": [norm(list(m.parameters())) for m in layers],
                "w2": [float(m[1].sublayer.proj.weight.grad.norm()) for m in layers]}


SEEDS = (0, 1, 2, 3, 4)


def _mean_over_seeds(placement: str, depth: int, key: str) -> list[float]:
    runs = [layer_gradients(placement, depth, s)[key] for s in SEEDS]
    return [sum(v) / len(v) for v in zip(*runs)]


def last_w2_gradients() -> dict[str, list[float]]:
    """Xiong et al.'s Theorem 1 quantity, ‖∂L/∂W^{2,L}‖ of the last layer, per depth in :data:`DEPTHS`."""
    return {p: [_mean_over_seeds(p, L, "w2")[-1] for L in DEPTHS] for p in ("post", "pre")}


@claim(
    "R23",
    anchors=(("004", H532, "DeepNet理论从数学上证明了Pre-Norm的优越性"),),
    claim="The source says a theory proved Pre-Norm superior (it names DeepNet). The theorem on the two placements' "
    "gradients at initialization is Xiong et al. (2020, Theorem 1), beyond the source: the gradient of the last "
    "feed-forward weight is O(d·√(ln d)) for Post-LN and O(d·√(ln d / L)) for Pre-LN, constant in depth L for "
    "Post-LN and shrinking like 1/√L for Pre-LN.",
    statement=(
        "Holds at this scale. Over depths {depths} (width 32, mean of {seeds} seeds), the last layer's W² gradient "
        "changes with depth as $L^{{{post_slope:.2f}}}$ for Post-LN and $L^{{{pre_slope:.2f}}}$ for Pre-LN "
        "(the theorem: $L^0$ and $L^{{-1/2}}$); at depth {deepest} Pre-LN's is {ratio:.2f}× Post-LN's."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # Five depths, five seeds: a slope within 0.15 of the theorem's exponent.
        "post_flat": abs(n["post_slope"]) < 0.15,
        "pre_inverse_sqrt": abs(n["pre_slope"] + 0.5) < 0.15,
        "pre_smaller_when_deep": n["ratio"] < 0.5,
    },
    # A world without the theorem's 1/√L: Pre-LN's gradient is as flat in depth as Post-LN's, so the ratio
    # at the deepest stack stays what it is at the shallowest.
    null=lambda n: {**n, "pre_slope": n["post_slope"], "ratio": n["ratio_shallowest"]},
    answer_zh="成立（在本书的规模上）：深度 {depths}（宽 32，{seeds} 个种子平均）下，最后一层 W² 的梯度随深度的变化为 "
    "Post-LN 的 $L^{{{post_slope:.2f}}}$ 与 Pre-LN 的 $L^{{{pre_slope:.2f}}}$（定理为 $L^0$ 与 $L^{{-1/2}}$），"
    "深度 {deepest} 时 Pre-LN 的梯度是 Post-LN 的 {ratio:.2f} 倍。",
)
def r23() -> dict:
    """The evidence for R23. See book/05_residual.ipynb, section "Pre-LN and Post-LN at initialization"."""
    g = last_w2_gradients()
    return {"depths": ", ".join(map(str, DEPTHS)), "seeds": len(SEEDS), "post_slope": loglog_slope(DEPTHS, g["post"]),
            "pre_slope": loglog_slope(DEPTHS, g["pre"]), "deepest": DEPTHS[-1], "ratio": g["pre"][-1] / g["post"][-1],
            "ratio_shallowest": g["pre"][0] / g["post"][0]}


def study_setup() -> dict:
    """How the stacks of this section are built, for the chapter's prose (the cards state the results): their
    width and heads, the depths, the seeds, and the size of the one weight step of R24."""
    return {"width": STACK["d"], "heads": STACK["heads"], "depths": ", ".join(map(str, DEPTHS)),
            "deepest": DEPTHS[-1], "seeds": len(SEEDS), "deepnorm_layers": ", ".join(map(str, DEEPNORM_LAYERS)),
            "update_step": UPDATE_STEP}


def depth_profile(placement: str, depth: int) -> list[float]:
    """Per-layer gradient norms, normalized by the last layer's (mean of :data:`SEEDS`)."""
    g = _mean_over_seeds(placement, depth, "layer")
    return [v / g[-1] for v in g]


def decay_rate(placement: str, depth: int, seed: int) -> float:
    """How fast the per-layer gradient norm falls from the top layer down: the least-squares slope of
    ln ‖∂L/∂θ_l‖ against the layer index l (1 at the bottom). A gradient q^(L − l) that decays from the top
    down by a factor q < 1 per layer has rate −ln q > 0; a negative rate means it grows downwards."""
    g = layer_gradients(placement, depth, seed)["layer"]
    return semilog_slope(range(1, len(g) + 1), g)


def r_squared(x, y) -> float:
    """R² of the least-squares straight line through (x, y): the share of y's variance the line explains."""
    x, y = torch.tensor([float(v) for v in x], dtype=F64), torch.tensor([float(v) for v in y], dtype=F64)
    xc, yc = x - x.mean(), y - y.mean()
    residual = yc - (xc * yc).sum() / (xc * xc).sum() * xc
    return float(1 - (residual * residual).sum() / (yc * yc).sum())


def profile_fits(placement: str, depth: int, seed: int) -> dict[str, float]:
    """One seed's per-layer gradient norms g_l (l = 1 at the bottom) in a stack of ``depth`` layers: the R² of an
    exponential (ln g_l linear in l) and of a linear (g_l linear in l) fit, and the bottom layer's g over the top's."""
    g = layer_gradients(placement, depth, seed)["layer"]
    layers = range(1, len(g) + 1)
    return {"r2_exp": r_squared(layers, [math.log(v) for v in g]), "r2_lin": r_squared(layers, g),
            "bottom_over_top": g[0] / g[-1]}


def _decide_r05(n: dict) -> dict[str, bool]:
    return {
        "post_falls_downwards": n["post_rate_min"] > 0,
        # The source's exponential form would need the exponential fit to beat the linear one beyond the seed
        # spread: by more than 3 standard errors, or on every seed.
        "exponential_not_preferred": not (n["r2_gain"] - 3 * n["r2_gain_se"] > 0 or n["r2_gain_min"] > 0),
        # Vanishing would be orders of magnitude; 0.2 is a factor 5 at most over 96 layers.
        "post_no_vanishing": n["post_first_min"] > 0.2,
        "pre_grows_downwards": n["pre_first_min"] > 1,
        # |ln(bottom/top)| larger for Pre-LN than for Post-LN on every seed (paired: same weights' seed).
        "pre_more_uneven": n["uneven_gap_min"] > 0,
    }


def _source_world_r05(n: dict) -> dict:
    # The source's world: Post-LN's exponential fit beats the linear one on every seed, and Pre-LN's gradient
    # decays towards the bottom (its measured bottom/top ratios inverted), so it is the more even of the two.
    return {**n, "r2_gain_min": abs(n["r2_gain_min"]) + n["r2_gain_se"], "r2_gain": n["r2_gain"] + 6 * n["r2_gain_se"],
            "pre_first": 1 / n["pre_first"], "pre_first_min": 1 / n["pre_first_max"],
            "pre_first_max": 1 / n["pre_first_min"], "uneven_gap_min": -abs(n["uneven_gap_min"])}


@claim(
    "R05",
    anchors=(("004", H532, "Post-Norm模型的梯度是随着深度指数级衰减的"),
             ("004", H532, "这使得Pre-Norm成为训练超深模型"),
             ("004", "5.2.2 热启动与模型稳定性", "梯度很难穿透数十层Post-Norm结构"),
             ("004", H34, "容易导致深层梯度消失"),
             ("004", H34, "是训练百层模型的必要条件"),
             ("004", "4.3 选型建议与迁移注意事项", "Post-LN在深层网络中极易出现梯度爆炸或消失"),
             ("004", "8.5 综合技术对比表", "中低 (深层易梯度消失)"),
             ("004", "2. 实施指南与部署方法", "但在百层深网络中极易导致梯度消失")),
    claim="Post-LN's gradient decays exponentially with depth (it hardly gets through dozens of Post-LN layers back "
    "to the bottom, so deep Post-LN models are hard to train), Pre-LN's only linearly, and under a suitable "
    "initialization not at all (attributed to DeepNet's proof); this makes Pre-LN the necessary choice for very deep "
    "models (a condition for 100 layers in §3.4, the required option beyond 1,000 layers in §5.3.2). Tested at "
    "initialization, where a decay with depth is a property of the architecture; the source's failures that depend "
    "on the learning rate are R22's.",
    statement=(
        "Does not hold: neither form is what the gradients show. At initialization, in stacks of {deepest} layers "
        "({seeds} seeds), Post-LN's per-layer gradient falls from the top layer down, but slowly: the bottom layer "
        "gets {post_first:.2f} of the top layer's, and an exponential fits that fall no better than a straight line "
        "(R² {r2_exp:.2f} against {r2_lin:.2f} on the mean over seeds, a difference within the seeds' spread). "
        "Pre-LN's gradient does not decay at all, linearly or otherwise: it grows towards the bottom, which gets "
        "{pre_first:.1f}× the top layer's, more uneven than Post-LN's on every seed. Nothing vanishes in either "
        "stack, so the consequence does not follow: a gradient that reaches the bottom layer does not make Pre-LN "
        "necessary. Liu et al. (2020) likewise found that vanishing gradients do not explain Post-LN's difficulty, "
        "its training dynamics do (R22), and DeepNet itself trains 1,000-layer Post-LN models (R24)."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=_decide_r05,
    null=_source_world_r05,
    answer_zh="不成立：两种衰减形式都不是梯度的实际表现；初始化时 {deepest} 层的 Post-LN 堆叠中（{seeds} 个种子），"
    "最底层的梯度是最顶层的 {post_first:.2f}，指数拟合并不比直线好（R² {r2_exp:.2f} 对 {r2_lin:.2f}，差别在种子间的波动之内），"
    "Pre-LN 的梯度反而向底层增大到 {pre_first:.1f} 倍；两者都没有梯度消失，所以“Pre-LN 是必选项”的结论并不成立，"
    "DeepNet 本身就训练了 1000 层的 Post-LN 模型（R24）。",
)
def r05() -> dict:
    """The evidence for R05. See book/05_residual.ipynb, section "Pre-LN and Post-LN at initialization"."""
    L = DEPTHS[-1]
    fits = {p: [profile_fits(p, L, s) for s in SEEDS] for p in ("post", "pre")}
    rates = over_seeds(decay_rate("post", L, s) for s in SEEDS)
    gain = over_seeds(f["r2_exp"] - f["r2_lin"] for f in fits["post"])
    ratios = {p: [f["bottom_over_top"] for f in fits[p]] for p in ("post", "pre")}
    r2 = [f[k] for f in fits["post"] for k in ("r2_exp", "r2_lin")]
    return {"deepest": L, "seeds": len(SEEDS), "post_rate": rates.mean, "post_rate_se": rates.se,
            "post_rate_min": min(rates.values), "post_first": depth_profile("post", L)[0],
            "post_first_min": min(ratios["post"]), "post_first_max": max(ratios["post"]),
            "r2_exp": sum(f["r2_exp"] for f in fits["post"]) / len(SEEDS),
            "r2_lin": sum(f["r2_lin"] for f in fits["post"]) / len(SEEDS), "r2_min": min(r2), "r2_max": max(r2),
            "r2_gain": gain.mean, "r2_gain_se": gain.se, "r2_gain_min": min(gain.values),
            "pre_first": depth_profile("pre", L)[0], "pre_first_min": min(ratios["pre"]),
            "pre_first_max": max(ratios["pre"]),
            "uneven_gap_min": min(abs(math.log(b)) - abs(math.log(a)) for a, b in zip(ratios["post"], ratios["pre"]))}


# ----------------------------------------------------------------------------- the residual stream


@functools.cache
def stream_variance(placement: str, depth: int, init: str = "default", seed: int = 0) -> list[float]:
    """Var of the residual stream x_0 … x_depth of a stack of Transformer layers at initialization.

    ``init``: "default" (PyTorch), "gpt2" (:func:`gpt2_init_`, x_0 of std 0.02 like GPT-2's embeddings),
    "gpt2-unscaled" (the same without the 1/√(2·n_layer) factor).
    """
    with one_thread(), torch.no_grad():
        torch.manual_seed(seed)
        layers = [TransformerBlock(STACK["d"], STACK["heads"], placement) for _ in range(depth)]
        model = nn.Sequential(*layers)
        scale = 1.0
        if init.startswith("gpt2"):
            gpt2_init_(model, depth, scaled=init == "gpt2")
            scale = 0.02
        h = scale * randn(STACK["batch"], 4 * STACK["tokens"], STACK["d"], seed=seed, dtype=torch.float32)
        out = [float(h.var(correction=0))]
        for layer in layers:
            h = layer(h)
            out.append(float(h.var(correction=0)))
    return out


GPT2_DEPTHS = (12, 48)


@claim(
    "R07",
    anchors=(("004", "5.4.2 Scale Init：平衡梯度的尺度艺术", "通过对残差投影层权重进行特殊的缩放处理"),
             ("004", "5.4.2 Scale Init：平衡梯度的尺度艺术", "对残差投影层权重进行特殊的缩放处理"),),
    claim="GPT-2 scales the initialization of its residual projection weights with depth (usually dividing by "
    "√layer_depth), which keeps scales constant in deep networks (the source says the gradient's). Tested: the factor, "
    "against GPT-2's code, and what it keeps constant in the forward pass, the residual stream's scale (the purpose "
    "GPT-2's paper gives: the accumulation on the residual path); the gradient's scale is not measured here.",
    statement=(
        "Holds, with the factor stated exactly: GPT-2 scales the weights of the residual layers by 1/√N with N "
        "the number of residual layers, two per Transformer layer, so the branch output projections start at "
        "std 0.02/√(2·n_layer) (OpenAI's and nanoGPT's code). Each Pre-LN branch adds about the same variance to "
        "the stream, whatever the stream's size, so without the factor the variance grows linearly: "
        "{unscaled_12:.1f}× x₀'s after 12 layers, {unscaled_48:.1f}× after 48. With it the total added variance "
        "no longer depends on depth: {scaled_12:.2f}× and {scaled_48:.2f}×."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # Linear growth: the added variance quadruples from 12 to 48 layers (±25 % for a width-32 sample).
        "unscaled_linear": 3 < n["linear_ratio"] < 5,
        # Depth-independent: 48 layers add within 25 % of what 12 add.
        "scaled_flat": abs((n["scaled_48"] - 1) / (n["scaled_12"] - 1) - 1) < 0.25,
        "scaled_smaller": n["scaled_48"] < n["unscaled_48"] / 4,
    },
    # A world where GPT-2's factor does nothing: the scaled stream grows as the unscaled one does.
    null=lambda n: {**n, "scaled_12": n["unscaled_12"], "scaled_48": n["unscaled_48"]},
    answer_zh="成立（因子要说准确）：GPT-2 把残差投影的权重按 1/√N 缩放，N 是残差层数（每个 Transformer 层两个），即初始标准差 "
    "0.02/√(2·n_layer)；不缩放时残差流的方差随深度线性增长（12 层 {unscaled_12:.1f} 倍、48 层 {unscaled_48:.1f} 倍），"
    "缩放后与深度无关（{scaled_12:.2f} 倍与 {scaled_48:.2f} 倍）。",
)
def r07() -> dict:
    """The evidence for R07. See book/05_residual.ipynb, section "The residual stream"."""
    growth = lambda init, L: (lambda v: v[-1] / v[0])(stream_variance("pre", L, init))
    nums = {f"{k}_{L}": growth(init, L) for k, init in (("unscaled", "gpt2-unscaled"), ("scaled", "gpt2"))
            for L in GPT2_DEPTHS}
    nums["linear_ratio"] = (nums["unscaled_48"] - 1) / (nums["unscaled_12"] - 1)
    return nums


@claim(
    "R08",
    anchors=(("004", "方差的保持与“信号传播率”", "近似地满足"),
             ("004", "6.1 信号传播理论：初始化阶段的均值与方差保持", "整个网络在初始化时能够近似地满足"),
             ("004", "6.1 信号传播理论：初始化阶段的均值与方差保持", "信号在穿越100层网络时"),
             ("004", "6.1 信号传播理论：初始化阶段的均值与方差保持", "确保了无论网络有多深")),
    claim="With residual connections and LayerNorm's control of the branch F(x_l), the network at initialization "
    "approximately satisfies Var(x_{l+1}) ≈ Var(x_l): through 100 layers the signal neither decays to 0 nor "
    "blows up.",
    statement=(
        "Holds under conditions: for Post-LN only, where it is forced: every layer ends in a LayerNorm, so the stream's variance is "
        "1 after every layer (largest deviation {post_dev:.2g} over {depth} layers). In a Pre-LN stack nothing "
        "renormalizes the stream: with PyTorch's default initialization its variance grows to {pre_growth:.1f}× "
        "x₀'s over {depth} layers, which is why GPT-2 scales its initialization (R07) and ends "
        "with a final LayerNorm."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # A LayerNorm output has variance σ²/(σ² + ε) of its row ≈ 1 − 1e-5; float32 sums over 1024 values.
        "post_renormalized": n["post_dev"] < 1e-4,
        "pre_grows": n["pre_growth"] > 2,
    },
    # A world where not even Post-LN keeps the variance: its stream drifts as far as Pre-LN's.
    null=lambda n: {**n, "post_dev": n["pre_growth"] - 1},
    answer_zh="有条件成立：只对 Post-LN，而且是被强制的：每层都以 LayerNorm 结束，残差流方差每层都是 1（{depth} 层中最大偏差 "
    "{post_dev:.2g}）；Pre-LN 堆叠中没有什么重新归一化残差流，默认初始化下 {depth} 层后方差增长到输入的 {pre_growth:.1f} 倍。",
)
def r08() -> dict:
    """The evidence for R08. See book/05_residual.ipynb, section "The residual stream"."""
    depth = 48
    post, pre = stream_variance("post", depth), stream_variance("pre", depth)
    return {"depth": depth, "post_dev": max(abs(v - 1) for v in post[1:]), "pre_growth": pre[-1] / pre[0]}


# ----------------------------------------------------------------------------- initialization


def identity_at_init(seed: int = 4) -> dict[str, float]:
    """max |block(x) − x| for zero-initialized branches and for γ = 0, with and without sublayer biases."""
    x = randn(2, 8, 16, seed=seed, dtype=torch.float32)
    out = {}
    with torch.no_grad():
        for placement in ("pre", "post"):
            out.update(_identity_cases(placement, x, seed))
    out["x_max"] = float(x.abs().max())
    return out


def _identity_cases(placement: str, x: torch.Tensor, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    out = {f"zero_{placement}": max_abs(zero_branches_(TransformerBlock(16, 4, placement))(x), x)}
    for biases in (True, False):
        torch.manual_seed(seed)
        layer = TransformerBlock(16, 4, placement)
        for m in layer.modules():
            if isinstance(m, (models.LayerNorm, models.RMSNorm)):
                m.weight.zero_()  # γ = 0
            elif isinstance(m, nn.Linear) and not biases:
                m.bias.zero_()
        out[f"gamma0_{placement}_{'bias' if biases else 'nobias'}"] = max_abs(layer(x), x)
    return out


@claim(
    "R06",
    anchors=(("004", "5.4.1 Zero Init：让模型从“恒等映射”起步", "残差分支的输出理论上为零"),
             ("004", "5.4.1 Zero Init：让模型从“恒等映射”起步", "将残差分支中最后一个线性层"),
             ("004", "5.4.1 Zero Init：让模型从“恒等映射”起步", "它都等价于只有一层"),
             ("004", "4.1 主要功能特性：恒等映射与梯度高速通道", "的权重推向0即可")),
    claim="Zero-initializing the last linear layer of each residual branch makes F(x) = 0, so the block, and the "
    "whole network however deep, is the identity at initialization.",
    statement=(
        "Holds under conditions: for Pre-LN: with the attention's and the MLP's output projections zeroed (weights and biases), a "
        "Pre-LN Transformer layer returns its input exactly (largest change {zero_pre:.1g}). In a Post-LN layer the "
        "same initialization gives LN(LN(x)), not x (largest change {zero_post:.2f} on an input up to "
        "{x_max:.2f}): the identity needs the norm off the stream."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {"pre_identity": n["zero_pre"] == 0.0,
                      # LN(LN(x)) against x of entries up to about 3: far above float32 rounding.
                      "post_not_identity": n["zero_post"] > 0.1},
    # A world where zeroed branches do not give the identity even in Pre-LN: it changes its input as Post-LN does.
    null=lambda n: {**n, "zero_pre": n["zero_post"]},
    answer_zh="有条件成立（Pre-LN）：把注意力和 MLP 的输出投影（权重和偏置）置零后，Pre-LN Transformer 层精确地返回输入"
    "（最大变化 {zero_pre:.1g}）；Post-LN 层同样初始化得到的是 LN(LN(x)) 而不是 x（输入最大 {x_max:.2f} 时最大变化 "
    "{zero_post:.2f}）。",
)
def r06() -> dict:
    """The evidence for R06. See book/05_residual.ipynb, section "The residual stream"."""
    m = identity_at_init()
    return {k: m[k] for k in ("zero_pre", "zero_post", "x_max")}


@claim(
    "R17",
    anchors=(("004", "2. 实施指南与部署方法", "对LN层的增益参数（γ）进行初始化置零"),
             ("004", "2. 实施指南与部署方法", "进行初始化置零，让网络在初始阶段仅表现为恒等映射"),),
    claim="If the loss oscillates early in training, initialize LayerNorm's gain γ to zero: the network then acts as "
    "the identity at the start, which speeds convergence. Tested: the identity at the start; the speed-up is not.",
    statement=(
        "Holds under conditions: only for Pre-LN with bias-free branches. With γ = 0 a Pre-LN branch sees β = 0, and returns "
        "sublayer(0): exactly 0 without biases (largest change {gamma0_pre_nobias:.1g}), but the biases' output "
        "with them (largest change {gamma0_pre_bias:.2f}). In Post-LN γ = 0 does the opposite of the identity: "
        "the layer outputs β = 0 and erases its input (largest change {gamma0_post_bias:.2f}, the input's own size)."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        "pre_nobias_identity": n["gamma0_pre_nobias"] == 0.0,
        # The biases' output is of the order of PyTorch's default bias init, 1/√fan_in: far above 1e-3.
        "pre_bias_not_identity": n["gamma0_pre_bias"] > 1e-3,
        # Output 0 everywhere: the change is exactly |x|'s maximum.
        "post_erases": n["gamma0_post_bias"] == n["x_max"],
    },
    # A world where γ = 0 does not give the identity even without biases: the layer changes its input as with them.
    null=lambda n: {**n, "gamma0_pre_nobias": n["gamma0_pre_bias"]},
    answer_zh="有条件成立：只对分支不带偏置的 Pre-LN；γ = 0 时 Pre-LN 分支输出 sublayer(0)，无偏置时恰为 0（最大变化 "
    "{gamma0_pre_nobias:.1g}），有偏置时是偏置的输出（最大变化 {gamma0_pre_bias:.2f}）；在 Post-LN 中 γ = 0 恰恰相反，"
    "层输出 β = 0，抹掉了输入（最大变化 {gamma0_post_bias:.2f}）。",
)
def r17() -> dict:
    """The evidence for R17. See book/05_residual.ipynb, section "The residual stream"."""
    m = identity_at_init()
    return {k: m[k] for k in ("gamma0_pre_nobias", "gamma0_pre_bias", "gamma0_post_bias", "x_max")}


DEEPNORM_LAYERS = (6, 24, 96)  # N: Transformer layers, two sublayers each
UPDATE_STEP = 1e-3  # η: every weight moves by ±η, the size of Adam's first step


@functools.cache
def model_update(kind: str, layers: int, seed: int) -> float:
    """‖ΔF‖/‖F‖: how far a stack's output moves when every weight moves by ±η (random signs, the size of an
    Adam step), at initialization. ``kind``: "post" (Post-LN MLP blocks, PyTorch's default initialization) or
    "deepnorm" (DeepNorm blocks with α and β for ``layers`` layers); a stack of ``layers`` Transformer layers is
    2·``layers`` sublayers, here all MLPs. DeepNet bounds this update independently of depth; the seed draws the
    input, the update's signs and Post-LN's weights (``deepnorm_init_`` draws its own, from a fixed generator)."""
    with one_thread(), torch.no_grad():
        torch.manual_seed(seed)
        d = STACK["d"]
        if kind == "post":
            model = nn.Sequential(*[Block(d, "post") for _ in range(2 * layers)])
        else:
            alpha, beta = deepnorm_constants(layers)
            model = deepnorm_init_(nn.Sequential(*[DeepNormBlock(d, alpha) for _ in range(2 * layers)]), beta)
        x = ln(randn(64, d, seed=seed, dtype=torch.float32), eps=0.0)
        before = model(x)
        gen = torch.Generator().manual_seed(seed + 1)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                signs = torch.randint(0, 2, m.weight.shape, generator=gen).mul(2).sub(1)
                m.weight.add_(UPDATE_STEP * signs.to(m.weight.dtype))
        return float((model(x) - before).norm() / before.norm())


def update_growth(kind: str) -> SeedSpread:
    """Per seed, the log-log slope of the model update against the depth N over :data:`DEEPNORM_LAYERS`."""
    return over_seeds(loglog_slope(DEEPNORM_LAYERS, [model_update(kind, n, s) for n in DEEPNORM_LAYERS])
                      for s in SEEDS)


def _decide_r24(n: dict) -> dict[str, bool]:
    return {
        "deepnet_is_post_ln": n["placement"] == "post",
        # Bounded in depth: DeepNorm's update grows more slowly than N^0.15 (Post-LN's grows about as √N), with
        # three standard errors to spare.
        "deepnorm_update_flat": abs(n["deepnorm_slope"]) + 3 * n["deepnorm_slope_se"] < 0.15,
        # Post-LN's update grows with depth: slope above a quarter, with three standard errors to spare.
        "post_update_grows": n["post_slope"] - 3 * n["post_slope_se"] > 0.25,
        "deepnorm_smaller_when_deep": n["deepnorm_deepest"] < n["post_deepest"] / 2,
    }


def _source_world_r24(n: dict) -> dict:
    # The source's world: DeepNet moved to Pre-LN, and its α, β do nothing: its stack updates as Post-LN's does.
    return {**n, "placement": "pre", "deepnorm_slope": n["post_slope"], "deepnorm_slope_se": n["post_slope_se"],
            "deepnorm_shallowest": n["post_shallowest"], "deepnorm_deepest": n["post_deepest"]}


@claim(
    "R24",
    anchors=(("004", "5.3.2 GPT-2/3与DeepNet的设计选择", "微软提出的DeepNet理论从数学上证明"),
             ("004", H532, "DeepNet理论从数学上证明了Pre-Norm的优越性"),
             ("004", "5.3 Pre-Norm架构的兴起：通往极致深处的“高速路”", "GPT-3、DeepNet等模型纷纷转向了Pre-Norm"),
             ("004", "3.3 技术优势与创新点", "（如 GPT-2, DeepNet）中，Pre-LN")),
    claim="DeepNet proved Pre-Norm superior, and models such as DeepNet moved to Pre-Norm.",
    statement=(
        "Does not hold: DeepNet (Wang et al. 2022) keeps Post-LN and fixes it. Its DeepNorm computes "
        "LN(α·x + G(x)), a LayerNorm after the add (our placement test: {placement}), and scales the initial "
        "feed-forward, value and output projections of the branches by β, with $\\alpha = (2N)^{{1/4}}$ and "
        "$\\beta = (8N)^{{-1/4}}$ for an $N$-layer encoder (the paper's formulas), derived to bound the model "
        "update independently of depth. That is what they do: when every weight moves by the size of one Adam "
        "step, the relative change of a DeepNorm stack's output varies with depth as $N^{{{deepnorm_slope:.2f}}}$, "
        "that is hardly at all, against $N^{{{post_slope:.2f}}}$ in plain Post-LN (mean over seeds); at N = {depth} it is "
        "{deepnorm_deepest:.2g} against {post_deepest:.2g}."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=_decide_r24,
    null=_source_world_r24,
    answer_zh="不成立：DeepNet（Wang et al. 2022）保留了 Post-LN 并修正它：DeepNorm 计算 LN(α·x + G(x))（我们的位置检测："
    "{placement}），α 与 β 的设计让模型更新的大小与深度无关；每个权重移动一步 Adam 的大小时，DeepNorm 堆叠输出的相对变化随深度"
    "按 $N^{{{deepnorm_slope:.2f}}}$ 变化，几乎不变，而普通 Post-LN 按 $N^{{{post_slope:.2f}}}$ 增长；N = {depth} 时前者为 "
    "{deepnorm_deepest:.2g}，后者为 {post_deepest:.2g}。",
)
def r24() -> dict:
    """The evidence for R24. See book/05_residual.ipynb, section "Pre-LN and Post-LN at initialization"."""
    shallow, deep = DEEPNORM_LAYERS[0], DEEPNORM_LAYERS[-1]
    alpha, beta = deepnorm_constants(deep)
    growth = {k: update_growth(k) for k in ("post", "deepnorm")}
    mean = lambda kind, n: sum(model_update(kind, n, s) for s in SEEDS) / len(SEEDS)
    nums = {"placement": classify_placement(lambda n, f, x: n(alpha * x + f(x))), "depth": deep, "alpha": alpha,
            "beta": beta, "step": UPDATE_STEP, "seeds": len(SEEDS), "shallowest": shallow}
    for k in ("post", "deepnorm"):
        nums.update({f"{k}_shallowest": mean(k, shallow), f"{k}_deepest": mean(k, deep),
                     f"{k}_slope": growth[k].mean, f"{k}_slope_se": growth[k].se})
    return nums
