"""Chapter 4 (seed 003), book/04_why: the computations behind claims W06–W11, W14 and W15.

Sections of the chapter: "The models the source quotes" (W06, W10, W11), "RMSNorm: what removing
the mean changes" (W07) and "Pre-Norm, Post-Norm and FP16" (W08, W09), "Why not InstanceNorm or GroupNorm?" (W14, W15),
and the exercises. The first
half of the chapter is :mod:`lnbook.experiments.why` and :mod:`lnbook.experiments.why_batchnorm`.

The published model configurations in :data:`PUBLISHED_CONFIGS` are quotations, not computations:
each row names the paper or configuration file it comes from. The stacks (W08, W09) run on one
thread: their tensors are tiny.
"""

from __future__ import annotations

import functools
import math

import torch

from lnbook import norms
from lnbook.claims import as_written, claim
from lnbook.experiments.common import F64, ln, max_abs, one_thread, randn
from lnbook.models import Block, zero_branches_
from lnbook.variance import FP16_MAX, tree_sum

CHAPTER = "book/04_why"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- published configurations

# QUOTED, not computed: published sizes, norm type, norm placement and ε of the models the source and
# the chapter mention. None means not published. Sources: the papers' tables and the configuration
# files released with the weights (file name given).
PUBLISHED_CONFIGS = {
    "Transformer base": dict(layers=6, hidden=512, norm="LayerNorm", placement="post", eps=None,
                             source="Vaswani et al. 2017, Table 3 (N, d_model); §3.1: LayerNorm(x + Sublayer(x))"),
    "BERT-base": dict(layers=12, hidden=768, norm="LayerNorm", placement="post", eps=1e-12,
                      source="Devlin et al. 2019, §3 (L, H); bert-base-uncased config.json (layer_norm_eps)"),
    "BERT-large": dict(layers=24, hidden=1024, norm="LayerNorm", placement="post", eps=1e-12,
                       source="Devlin et al. 2019, §3 (L, H); bert-large-uncased config.json (layer_norm_eps)"),
    "GPT-2 small": dict(layers=12, hidden=768, norm="LayerNorm", placement="pre", eps=1e-5,
                        source="Radford et al. 2019, Table 2 and §2.3; gpt2 config.json (layer_norm_epsilon)"),
    "GPT-2 XL": dict(layers=48, hidden=1600, norm="LayerNorm", placement="pre", eps=1e-5,
                     source="Radford et al. 2019, Table 2 and §2.3; gpt2-xl config.json (layer_norm_epsilon)"),
    "GPT-3 175B": dict(layers=96, hidden=12288, norm="LayerNorm", placement="pre", eps=None,
                       source="Brown et al. 2020, Table 2.1; §2.1: GPT-2's pre-normalization"),
    "LLaMA 7B": dict(layers=32, hidden=4096, norm="RMSNorm", placement="pre", eps=1e-6,
                     source="Touvron et al. 2023a, Table 2 and §2.2; LLaMA 7B params.json (norm_eps)"),
    "LLaMA 65B": dict(layers=80, hidden=8192, norm="RMSNorm", placement="pre", eps=1e-6,
                      source="Touvron et al. 2023a, Table 2 and §2.2; LLaMA 65B params.json (norm_eps)"),
    "Llama 2 7B": dict(layers=32, hidden=4096, norm="RMSNorm", placement="pre", eps=1e-5,
                       source="Touvron et al. 2023b, §2.2; Llama-2-7b-hf config.json (hidden_size, rms_norm_eps)"),
    "Llama 2 70B": dict(layers=80, hidden=8192, norm="RMSNorm", placement="pre", eps=1e-5,
                        source="Touvron et al. 2023b, §2.2; Llama-2-70b-hf config.json (hidden_size, rms_norm_eps)"),
}

# QUOTED from the source text (seed 003), the figures the claims below hold against the table.
SOURCE_SAYS = {
    "hidden": ("Llama 2 70B", 4096),  # "its embedding dimension is 4096 (Llama 2 70B scale)"
    "layers": (80, 100),  # "today's LLMs easily have 80 or 100 layers"
    "post_norm": ("Transformer base",),  # "the original Attention Is All You Need used Post-Norm"
    "pre_norm": ("GPT-2 small", "GPT-2 XL", "GPT-3 175B", "LLaMA 7B", "LLaMA 65B", "Llama 2 7B", "Llama 2 70B"),
    "rms_norm": ("LLaMA 7B", "LLaMA 65B", "Llama 2 7B", "Llama 2 70B"),  # "from Llama 1 on, RMSNorm"
}




def configs_markdown() -> str:
    """The quoted table as Markdown."""
    rows = ["| model | layers | hidden size | norm | placement | ε | published in |", "|---|---|---|---|---|---|---|"]
    for name, c in PUBLISHED_CONFIGS.items():
        eps = "not stated" if c["eps"] is None else as_written(f"{c['eps']:.3g}")
        cells = (name, c["layers"], c["hidden"], c["norm"], f"{c['placement']}-norm", eps, c["source"])
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


@claim(
    "W06",
    anchors=(('003', '为什么LN能赢？', '维度是4096（像Llama 2 70B这种级别'),),
    claim="A token's embedding dimension of 4096 is 'Llama 2 70B scale'.",
    statement=(
        "Does not hold: Llama 2 70B's hidden size is {published_hidden} (its released configuration), twice "
        "the source's {source_hidden}. A width of 4096 belongs to the 7B models ({models_4096}). The argument "
        "does not depend on it: LayerNorm takes its statistics over whatever the width is."
    ),
    verdict="does not hold",
    kind="measurement",  # a lookup: the source's figure against the released configurations
    decide=lambda n: {"source_differs": n["published_hidden"] != n["source_hidden"],
                      "4096_is_7b": n["models_4096"] != "" and all("7B" in m for m in n["models_4096"].split(" and "))},
    # The source's world: Llama 2 70B released with a hidden size of 4096, one of the models of that width.
    null=lambda n: {**n, "published_hidden": n["source_hidden"], "models_4096": n["models_4096"] + " and Llama 2 70B"},
    answer_zh=(
        "不成立：Llama 2 70B 的隐藏维度是 {published_hidden}（官方发布的配置），是文中 {source_hidden} 的两倍，4096 属于 "
        "7B 模型（{models_4096}）；不过论证本身不依赖这个数。"
    ),
)
def w06() -> dict:
    """The evidence for W06. See book/04_why.ipynb, section "The models the source quotes"."""
    model, width = SOURCE_SAYS["hidden"]
    with_width = [name for name, c in PUBLISHED_CONFIGS.items() if c["hidden"] == width]
    return {"source_hidden": width, "published_hidden": PUBLISHED_CONFIGS[model]["hidden"],
            "models_4096": " and ".join(with_width)}


@claim(
    "W10",
    anchors=(('003', '为什么必须要有Norm？真的是为了解决ICS吗？', '现在的LLM动不动就80层、100层'),),
    claim="Today's LLMs easily have 80 or 100 layers.",
    statement=(
        "Holds under conditions: for the largest models only: LLaMA 65B and Llama 2 70B have {layers_70b} layers and GPT-3 "
        "175B has {layers_gpt3}; none of the published models quoted here reaches 100. The 7B models have "
        "{layers_7b}, and BERT-base and GPT-2 small have {layers_small}."
    ),
    verdict="holds under conditions",
    kind="measurement",  # a lookup: the source's figures against the published configurations
    decide=lambda n: {
        "largest_in_range": n["layers_65b"] == n["source_low"]
        and n["source_low"] <= n["layers_gpt3"] < n["source_high"],
        "none_reach_100": n["layers_max"] < n["source_high"],
        "smaller_models_shallower": n["layers_7b"] < n["source_low"],
    },
    # The source's world without its condition: every model of today, the 7B ones included, has 80 layers
    # or more, and the largest reach 100.
    null=lambda n: {**n, "layers_7b": n["source_low"], "layers_max": n["source_high"]},
    answer_zh=(
        "有条件成立：只对最大的模型成立——LLaMA 65B 与 Llama 2 70B 为 {layers_70b} 层，GPT-3 175B 为 {layers_gpt3} 层，"
        "这里引用的已发表模型没有一个达到 100 层，7B 模型只有 {layers_7b} 层。"
    ),
)
def w10() -> dict:
    """The evidence for W10. See book/04_why.ipynb, section "The models the source quotes"."""
    c = PUBLISHED_CONFIGS
    low, high = SOURCE_SAYS["layers"]
    return {"layers_70b": c["Llama 2 70B"]["layers"], "layers_gpt3": c["GPT-3 175B"]["layers"],
            "layers_7b": c["Llama 2 7B"]["layers"], "layers_small": c["BERT-base"]["layers"],
            "layers_65b": c["LLaMA 65B"]["layers"], "layers_max": max(m["layers"] for m in c.values()),
            "source_low": low, "source_high": high}


@claim(
    "W11",
    anchors=(("004", "当前技术现状和竞争格局：不可撼动的“基础设施”", "被Llama-2/3采用"),
             ('003', 'LN的变体与RMSNorm的称霸', '从Llama一代开始'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '论文，用的是Post-Norm'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '全改成了Pre-Norm'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '成为了工业界的标准配置'),
             ('003', '为什么不用Instance Norm、Group Norm？', '不需要任何超参数（除了那个极小的epsilon）')),
    claim="The original Transformer used Post-Norm; GPT-2, GPT-3 and Llama moved to Pre-Norm, which (with RMSNorm) "
    "became the industry standard; from Llama 1 on, models use RMSNorm; LayerNorm (RMSNorm especially) needs no "
    "hyperparameter but a tiny ε",
    statement=(
        "Holds for every model the source names, against the published papers and configurations "
        "({rows} rows in the table). The one hyperparameter is not uniform: the published ε spans more than six "
        "orders of magnitude, from BERT's to GPT-2's and Llama 2's, and chapter 1 (F02) shows where ε matters. "
        "That every open model since Llama 1 uses RMSNorm is a census the book does not take."
    ),
    verdict="holds",
    kind="measurement",  # a lookup: the source's statements against the published papers and configurations
    decide=lambda n: {
        "post_norm": n["post_agree"] == n["post_named"], "pre_norm": n["pre_agree"] == n["pre_named"],
        "rms_norm": n["rms_agree"] == n["rms_named"], "gpt_uses_layernorm": n["gpt_layernorm"] == n["gpt_named"],
        # "A tiny ε" is not one value: the published ones span at least six orders of magnitude.
        "eps_spans_orders": n["eps_max"] / n["eps_min"] >= 1e6,
    },
    # A world where the source misremembers one model: GPT-2 small kept the original Post-Norm.
    null=lambda n: {**n, "pre_agree": n["pre_agree"] - 1},
    answer_zh=(
        "成立：对文中点名的每个模型都与已发表的论文和配置一致（表中 {rows} 行）；但唯一的超参数 ε 并不统一，"
        "从 BERT 的到 GPT-2 与 Llama 2 的相差六个数量级以上。"
    ),
)
def w11() -> dict:
    """The evidence for W11. See book/04_why.ipynb, section "The models the source quotes"."""
    c, s = PUBLISHED_CONFIGS, SOURCE_SAYS
    eps = [m["eps"] for m in c.values() if m["eps"] is not None]
    gpt = [m for m in s["pre_norm"] if m.startswith("GPT")]
    return {"rows": len(c), "eps_min": min(eps), "eps_max": max(eps),
            "post_named": len(s["post_norm"]), "post_agree": sum(c[m]["placement"] == "post" for m in s["post_norm"]),
            "pre_named": len(s["pre_norm"]), "pre_agree": sum(c[m]["placement"] == "pre" for m in s["pre_norm"]),
            "rms_named": len(s["rms_norm"]), "rms_agree": sum(c[m]["norm"] == "RMSNorm" for m in s["rms_norm"]),
            "gpt_named": len(gpt), "gpt_layernorm": sum(c[m]["norm"] == "LayerNorm" for m in gpt)}


# ----------------------------------------------------------------------------- RMSNorm, the mathematics


def rms_ln_relation(mean_over_std: float, d: int = 64, seed: int = 60) -> dict[str, float]:
    """RMSNorm against LayerNorm (ε = 0) for a row whose mean is ``mean_over_std`` standard deviations.

    With θ = arctan(μ/σ): RMSNorm(x) = cos θ · LN(x) + sin θ · 1, so the root-mean-square difference of
    the two outputs is 2 sin(θ/2).
    """
    z = randn(d, seed=seed)
    x = (z - z.mean()) / z.std(correction=0) * 1.7 + 1.7 * mean_over_std  # σ = 1.7, μ = 1.7·mean_over_std
    y_ln, rms = ln(x, eps=0.0), norms.rms_norm(x, (d,), eps=0.0)
    theta = math.atan(mean_over_std)
    return {"identity_err": max_abs(rms, math.cos(theta) * y_ln + math.sin(theta)),
            "rms_gap": float((rms - y_ln).pow(2).mean().sqrt()), "closed_gap": 2 * math.sin(theta / 2),
            "ln_shift_change": max_abs(ln(x + 3.0, eps=0.0), y_ln),
            "rms_shift_change": max_abs(norms.rms_norm(x + 3.0, (d,), eps=0.0), rms)}


@claim(
    "W07",
    anchors=(("004", "11.1 技术演进：从“标准化”走向“极简主义”", "RMSNorm移除了均值计算"),
             ('003', 'LN的变体与RMSNorm的称霸', 'RMSNorm少了一个减均值的操作'),
             ('003', 'LN的变体与RMSNorm的称霸', '去不去均值对模型效果影响微乎其微'),
             ('003', 'LN的变体与RMSNorm的称霸', '重要的是缩放（Scaling）')),
    claim="RMSNorm drops the mean subtraction, saving a little compute per call, which is worth much at scale; "
    "experiments show that whether the mean is removed makes almost no difference to quality; what matters is the "
    "scaling",
    statement=(
        "Holds under conditions. Exactly: with θ = arctan(μ/σ), RMSNorm(x) = cos θ·LN(x) + sin θ·1 (error "
        "{identity_err:.2g}), so the two outputs differ by 2 sin(θ/2) in root mean square: {gap_small:.3f} "
        "for a mean of a tenth of a standard deviation, {gap_large:.3f} when mean and standard deviation are "
        "equal. RMSNorm loses LayerNorm's re-centring invariance: adding 3 to every input changes its output "
        "by up to {rms_shift_change:.2f}, LayerNorm's by {ln_shift_change:.1g}. So the difference is "
        "negligible when the rows are nearly centred, or when the layer before can learn to centre them; "
        "that it is negligible in practice is Zhang & Sennrich's empirical finding, not something this "
        "chapter measures. The compute saving is one reduction out of two; its speed is the kernels chapter's."
    ),
    verdict="holds under conditions",
    kind="derivation",
    decide=lambda n: {
        # The library's RMSNorm, in float64, against cos θ·LN(x) + sin θ·1 and 2 sin(θ/2): rounding only.
        "identity": n["identity_err"] < 1e-12,
        "gap_closed_form": abs(n["gap_small"] - n["closed_small"]) < 1e-12
        and abs(n["gap_large"] - n["closed_large"]) < 1e-12,
        "ln_recentring_invariant": n["ln_shift_change"] < 1e-12,
        # 0.1 in outputs of unit scale: a change a reader would see.
        "rms_not_invariant": n["rms_shift_change"] > 0.1,
    },
    # A world where removing the mean changes nothing at all: RMSNorm's output is LayerNorm's for any mean,
    # shift invariance included.
    null=lambda n: {**n, "gap_small": 0.0, "gap_large": 0.0, "rms_shift_change": n["ln_shift_change"]},
    answer_zh=(
        "有条件成立：精确地有 RMSNorm(x) = cos θ·LN(x) + sin θ·1，两者输出的均方根差为 2 sin(θ/2)——均值为标准差十分之一时"
        "为 {gap_small:.3f}，均值等于标准差时为 {gap_large:.3f}；RMSNorm 失去了平移不变性（输入整体加 3，输出变化达 "
        "{rms_shift_change:.2f}），所以差别只在输入接近中心化或前一层能学会中心化时可以忽略，“实践中可忽略”是 Zhang 与 "
        "Sennrich 的实验结论，本章并未测量。"
    ),
)
def w07() -> dict:
    """The evidence for W07. See book/04_why.ipynb, section "RMSNorm: what removing the mean changes"."""
    small, large = rms_ln_relation(0.1), rms_ln_relation(1.0)
    return {"identity_err": max(small["identity_err"], large["identity_err"]),
            "gap_small": small["rms_gap"], "gap_large": large["rms_gap"],
            "closed_small": small["closed_gap"], "closed_large": large["closed_gap"],
            "rms_shift_change": large["rms_shift_change"], "ln_shift_change": large["ln_shift_change"]}


# ----------------------------------------------------------------------------- FP16


def smallest_fp16_square_overflow() -> float:
    """The smallest positive float16 x whose float16 square x·x is inf (scans every finite float16)."""
    bits = torch.arange(0x7C00, dtype=torch.int16)  # every finite non-negative float16 bit pattern
    x = bits.view(torch.float16)
    return float(x[torch.isinf(x * x)].min())


def fp16_sum_of_squares(mean: float, n: int = 4096, seed: int = 70) -> dict[str, float]:
    """A float16 row of std 1 and the given mean: Σ(x−μ)² (LayerNorm) and Σx² (RMSNorm) summed in float16.

    Also the largest error of the library's LayerNorm and RMSNorm (float32 statistics) on that row
    against float64.
    """
    z = randn(n, seed=seed)
    x = ((z - z.mean()) / z.std(correction=0) + mean).to(torch.float16)  # (n,)
    xc = x - x.float().mean().to(torch.float16)
    x64 = x.to(F64)
    err_ln = max_abs(norms.layer_norm(x, (n,)).to(F64), norms.layer_norm(x64, (n,)))
    err_rms = max_abs(norms.rms_norm(x, (n,), eps=1e-6).to(F64), norms.rms_norm(x64, (n,), eps=1e-6))
    return {"ln_sum": float(tree_sum(xc * xc)), "rms_sum": float(tree_sum(x * x)), "err_ln": err_ln, "err_rms": err_rms}


STREAM = {"depth": 48, "d": 64}


@functools.cache
def stream_max(placement: str, depth: int = STREAM["depth"], d: int = STREAM["d"], seed: int = 71) -> list[float]:
    """Largest |value| of the residual stream after each block of a random stack (library Blocks, float64)."""
    with one_thread():
        torch.manual_seed(seed)
        blocks = [Block(d, placement).double() for _ in range(depth)]
        h, out = randn(16, d, seed=seed), []
        with torch.no_grad():
            for b in blocks:
                h = b(h)
                out.append(float(h.abs().max()))
    return out


@claim(
    "W08",
    anchors=(('003', '为什么不用Instance Norm、Group Norm？', '把Pre-Norm写成了Post-Norm'),
             ('003', '为什么不用Instance Norm、Group Norm？', 'Post-Norm中间很容易溢出'),
             ('003', '为什么不用Instance Norm、Group Norm？', '改成Pre-Norm或者RMSNorm，问题立马解决'),
             ('003', '为什么不用Instance Norm、Group Norm？', '更是为了在低精度训练')),
    claim="Post-Norm trained in FP16 gives NaN losses because FP16's small range overflows inside Post-Norm; "
    "switching to Pre-Norm or RMSNorm fixes it. LayerNorm is there not only for convergence but to keep "
    "low-precision training (FP16, BF16, FP8) from overflowing",
    statement=(
        "Does not hold as a mechanism. Inside a norm, float16 overflows in the squares: the smallest float16 "
        "whose square is inf is {square_limit:g}, and a float16 sum of squares overflows long before. RMSNorm "
        "makes that worse, not better: it sums x², never less than LayerNorm's Σ(x−μ)²; on a width-4096 row of "
        "mean 4 and std 1 the float16 sums are {rms_sum} for RMSNorm and {ln_sum:.0f} for LayerNorm. Post-Norm "
        "makes the residual stream safer, not less safe: renormalized after every block, its entries stay below "
        "√(d−1) = {bound:.2f} (largest: {post_max:.2f}), while a Pre-Norm stream, a sum of all branches, grows "
        "({pre_growth:.2f}× over the same stack). What keeps a norm finite is float32 statistics, which PyTorch "
        "and this book's kernels use, accurate on the same row to within float16's rounding of the output. "
        "Post-Norm's real trouble is its training dynamics: chapter 5 (R22) finds it needing warm-up, or failing "
        "with or without it, at learning rates where Pre-Norm still learns."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # The exhaustive scan against the closed form: the smallest float16 at or above √65504, whose
        # neighbour below (float16 spacing 2⁻³ in [128, 256)) lies under it.
        "square_limit_closed_form": n["square_limit"] - 2**-3 < n["sqrt_fp16_max"] <= n["square_limit"],
        "rms_overflows": n["rms_sum"] == "inf", "ln_finite": n["ln_sum"] < n["fp16_max"],
        # |x̂_i| ≤ √(d−1) for any row (equality for a one-hot row); γ = 1, β = 0 at initialization.
        "post_bounded": n["post_max"] <= n["bound"],
        # 1.3: growth well beyond the scatter of one random stack's largest entry.
        "pre_grows": n["pre_growth"] > 1.3,
        # Outputs of size ≤ √(d−1) ≈ 64 rounded to float16: half an ulp at 64 is 2⁻⁵.
        "fp32_stats_accurate": n["err_fp32_stats"] < 2**-5,
    },
    # The source's world: RMSNorm's float16 sum of squares stays finite where LayerNorm's does, and Post-Norm's
    # stream grows like Pre-Norm's, past the bound of a normalized row.
    null=lambda n: {**n, "rms_sum": str(n["ln_sum"]), "post_max": n["bound"] * n["pre_growth"]},
    answer_zh=(
        "不成立：作为机制不成立——float16 溢出发生在范数内部的平方上（平方为 inf 的最小 float16 是 {square_limit:g}），"
        "RMSNorm 的 Σx² 从不小于 LayerNorm 的 Σ(x−μ)²（宽 4096、均值 4 的行上 float16 求和分别为 {rms_sum} 与 {ln_sum:.0f}），"
        "而 Post-Norm 每层重新归一化，使残差流保持在 √(d−1) = {bound:.2f} 以下（实测最大 {post_max:.2f}），Pre-Norm 的残差流"
        "反而增长（{pre_growth:.2f} 倍）；真正让范数不溢出的是 float32 统计量。"
    ),
)
def w08() -> dict:
    """The evidence for W08. See book/04_why.ipynb, section "Pre-Norm, Post-Norm and FP16"."""
    sums = fp16_sum_of_squares(4.0)
    post, pre = stream_max("post"), stream_max("pre")
    d = STREAM["d"]
    return {"square_limit": smallest_fp16_square_overflow(), "sqrt_fp16_max": math.sqrt(FP16_MAX),
            "fp16_max": FP16_MAX, "rms_sum": str(sums["rms_sum"]), "ln_sum": sums["ln_sum"],
            "bound": math.sqrt(d - 1), "depth": STREAM["depth"], "post_max": max(post), "pre_growth": pre[-1] / pre[0],
            "err_fp32_stats": max(sums["err_ln"], sums["err_rms"])}


# ----------------------------------------------------------------------------- Pre-Norm's gradient path


@functools.cache
def stream_gradients(placement: str, depth: int = 24, d: int = 32, zero_branches: bool = False,
                     seed: int = 80) -> list[float]:
    """‖∂L/∂x_l‖ for the stream x_0 … x_depth of a random stack, L = Σ c ⊙ x_depth (float64)."""
    with one_thread():
        torch.manual_seed(seed)
        blocks = [Block(d, placement).double() for _ in range(depth)]
        if zero_branches:
            for b in blocks:
                zero_branches_(b)
        h = ln(randn(16, d, seed=seed), eps=0.0).requires_grad_(True)  # a normalized input: no scale at the start
        stream = [h]
        for b in blocks:
            h = b(h)
            h.retain_grad()
            stream.append(h)
        (randn(16, d, seed=seed + 1) * h).sum().backward()
    return [float(s.grad.norm()) for s in stream]


@claim(
    "W09",
    anchors=(("004", "5.3.1 残差路径的本质恒等映射", "无损地直达网络底层"),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '但是它太难训练了'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', 'Post-Norm会导致梯度在反向传播时'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '主干通路（Highway）是纯净的'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '梯度可以毫无阻碍地从最后一层直接流到第一层'),
             ('003', 'Pre-Norm vs Post-Norm 是一场血的教训', '这使得Pre-Norm的模型极其稳定')),
    claim="Post-Norm is too hard to train: in deep networks its backpropagated gradients are not just vanishing but "
    "extremely unstable. Pre-Norm keeps the residual path clean (x + …), so gradients flow unimpeded from the last "
    "layer to the first, which makes Pre-Norm models extremely stable, converging at a higher learning rate even "
    "without elaborate warm-up",
    statement=(
        "Holds under conditions: for the path, with a caveat for 'unimpeded'. Exactly: in a Pre-Norm stack the gradient at the "
        "input is the output gradient plus what the branches add; with the branches switched off it arrives "
        "unchanged (relative change {pre_zero_change:.1g}), while a Post-Norm stack projects it at every "
        "LayerNorm (relative change {post_zero_change:.3f} with the branches off). At initialization over "
        "{depth} blocks the gradient norm at the first layer is {pre_ratio:.2f}× the last layer's in Pre-Norm "
        "and {post_ratio:.2f}× in Post-Norm: neither vanishes at this size, and Pre-Norm's grows as branches "
        "add to it: nothing here is 'extremely unstable' at initialization. Training stability and warm-up, the "
        "source's real point, are measured in chapter 5 (R22)."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # Exactly the identity when the branches are off: float64 autograd, rounding only.
        "pre_identity_path": n["pre_zero_change"] < 1e-12,
        # Projecting out 1 and x̂ from a random 32-wide gradient removes about 2/32 of its energy.
        "post_projects": n["post_zero_change"] > 0.01,
        "pre_not_attenuated": n["pre_ratio"] >= 1,
        "pre_above_post": n["pre_ratio"] > n["post_ratio"],
    },
    # A world where Pre-Norm's residual path is no cleaner than Post-Norm's: it projects the gradient at
    # every block and passes what Post-Norm passes.
    null=lambda n: {**n, "pre_zero_change": n["post_zero_change"], "pre_ratio": n["post_ratio"]},
    answer_zh=(
        "有条件成立：对梯度通路成立——Pre-Norm 堆叠在分支关闭时梯度原样到达输入（相对变化 {pre_zero_change:.1g}），而 "
        "Post-Norm 在每个 LayerNorm 处投影梯度（{post_zero_change:.3f}）；初始化时 {depth} 个块后首层梯度范数是末层的 "
        "{pre_ratio:.2f} 倍（Pre-Norm）与 {post_ratio:.2f} 倍（Post-Norm），两者都没有消失，训练稳定性与预热由第 5 章测量。"
    ),
)
def w09() -> dict:
    """The evidence for W09. See book/04_why.ipynb, section "Pre-Norm, Post-Norm and FP16"."""
    change = lambda g: abs(g[0] / g[-1] - 1)
    pre, post = stream_gradients("pre"), stream_gradients("post")
    return {"depth": len(pre) - 1, "pre_ratio": pre[0] / pre[-1], "post_ratio": post[0] / post[-1],
            "pre_zero_change": change(stream_gradients("pre", zero_branches=True)),
            "post_zero_change": change(stream_gradients("post", zero_branches=True))}


# ----------------------------------------------------------------------------- why not InstanceNorm or GroupNorm


def instance_norm_effects(c: int = 8, t: int = 16, seed: int = 90) -> dict[str, float]:
    """What InstanceNorm removes from a sentence laid out as (1, C features, T positions), and what LayerNorm does.

    ``style_err``: IN(a_c·x + b_c) against IN(x) for a per-feature scale a_c > 0 and shift b_c (the per-sample
    channel statistics, what style transfer calls style); ``sentence_diff_in``/``_ln``: two sentences that differ
    by such a per-feature scale and shift, after IN and after LayerNorm of each token; ``token_err_ln``: LayerNorm
    of each token scaled and shifted by its own a_t, b_t, against LayerNorm of the token (what LN removes)."""
    x = randn(1, c, t, seed=seed)  # (1, C, T)
    a, b = randn(1, c, 1, seed=seed + 1).abs() + 0.5, randn(1, c, 1, seed=seed + 2)  # per feature
    y = a * x + b
    inorm = lambda v: norms.instance_norm(v, eps=0.0)  # per feature over the T positions
    tok = lambda v: ln(v.transpose(1, 2), eps=0.0)  # (1, T, C): per token over its C features
    at, bt = randn(1, 1, t, seed=seed + 3).abs() + 0.5, randn(1, 1, t, seed=seed + 4)  # per token
    return {"style_err": max_abs(inorm(y), inorm(x)), "sentence_diff_in": max_abs(inorm(y), inorm(x)),
            "sentence_diff_ln": max_abs(tok(y), tok(x)), "token_err_ln": max_abs(tok(at * x + bt), tok(x))}


@claim(
    "W14",
    anchors=(("003", "为什么不用Instance Norm、Group Norm？", "因为它把图像的内容和风格剥离了"), ("003", "为什么不用Instance Norm、Group Norm？", "我们需要Token的全部信息")),
    claim="InstanceNorm is used mainly in style transfer because it separates an image's content from its style; "
    "in NLP we need all of a token's information and have no style to strip, so it does not fit.",
    statement=(
        "Holds under conditions: InstanceNorm does strip what style transfer calls style, each sample's per-channel "
        "mean and scale: scaling and shifting every channel of an input leaves its output unchanged (difference "
        "{style_err:.1g}). Applied to a sentence (features as channels, positions as the spatial axis) it erases the "
        "same thing: two sentences that differ by a per-feature scale and shift come out identical "
        "({sentence_diff_in:.1g}), where LayerNorm keeps them apart ({sentence_diff_ln:.2f}). But LayerNorm does not "
        "keep 'all of a token's information' either: it erases each token's own mean and scale (a token scaled and "
        "shifted comes out unchanged, {token_err_ln:.1g}). The two norms drop different statistics, and which ones a "
        "model can spare is the real question, not whether one of them keeps everything."
    ),
    verdict="holds under conditions",
    kind="derivation",
    decide=lambda n: {
        # Exact invariances at ε = 0: float64 rounding only.
        "in_strips_channel_stats": n["style_err"] < 1e-12 and n["sentence_diff_in"] < 1e-12,
        "ln_erases_token_stats": n["token_err_ln"] < 1e-12,
        # 0.1 in outputs of unit scale: a difference a reader would see.
        "ln_keeps_sentence_stats": n["sentence_diff_ln"] > 0.1,
    },
    # A world where InstanceNorm kept each sample's per-channel statistics (no style stripped).
    null=lambda n: {**n, "style_err": n["sentence_diff_ln"], "sentence_diff_in": n["sentence_diff_ln"]},
    answer_zh=(
        "有条件成立：InstanceNorm 确实剥离了风格迁移所说的“风格”，即每个样本逐通道的均值和尺度（逐通道缩放平移后输出不变，差 "
        "{style_err:.1g}），用在句子上会把相差一个逐特征缩放平移的两句话变成同一个输出，而 LayerNorm 能区分它们（差 "
        "{sentence_diff_ln:.2f}）；但 LayerNorm 也并不保留 token 的“全部信息”，它抹掉了每个 token 自身的均值和尺度（差 "
        "{token_err_ln:.1g}）。"
    ),
)
def w14() -> dict:
    """The evidence for W14. See book/04_why.ipynb, section "Why not InstanceNorm or GroupNorm?"."""
    return instance_norm_effects()


def group_norm_place(n: int = 8, c: int = 16, hw: int = 4, groups: int = 4, seed: int = 91) -> dict[str, float]:
    """Where GroupNorm sits among the norms, on (N, C, H, W) (ε = 0): its ends, its batch dependence, its middle."""
    x = randn(n, c, hw, hw, seed=seed)
    other = torch.cat([x[:1], randn(n - 1, c, hw, hw, seed=seed + 1)])  # sample 0 with new companions
    gn = lambda v, g: norms.group_norm(v, g, eps=0.0)
    bn = lambda v: norms.batch_norm(v, None, None, training=True, eps=0.0)
    ln_chw = norms.layer_norm(x, x.shape[1:], eps=0.0)  # each sample over (C, H, W)
    in_ = norms.instance_norm(x, eps=0.0)
    return {"groups": groups, "channels": c, "gn1_vs_ln": max_abs(gn(x, 1), ln_chw), "gnc_vs_in": max_abs(gn(x, c), in_),
            "gn_batch_change": max_abs(gn(other, groups)[0], gn(x, groups)[0]),
            "bn_batch_change": max_abs(bn(other)[0], bn(x)[0]),
            "gn_vs_ln": max_abs(gn(x, groups), ln_chw), "gn_vs_in": max_abs(gn(x, groups), in_),
            "valid_groups": sum(c % g == 0 for g in range(1, c + 1))}


@claim(
    "W15",
    anchors=(("003", "为什么不用Instance Norm、Group Norm？", "GN是BN和LN的折中"), ("003", "为什么不用Instance Norm、Group Norm？", "GN引入了额外的超参数（Group的数量）")),
    claim="GroupNorm is a compromise between BatchNorm and LayerNorm; it adds a hyperparameter, the number of groups, "
    "which makes it troublesome to tune in NLP Transformers.",
    statement=(
        "Does not hold as a compromise with BatchNorm: GroupNorm never looks across the batch (changing a sample's "
        "companions leaves its output unchanged, and moves BatchNorm's by {bn_batch_change:.2f}). It is the "
        "compromise between LayerNorm and InstanceNorm (Wu & He 2018): with one group it is LayerNorm over (C, H, W), "
        "with one channel per group InstanceNorm (both to rounding), and with {groups} groups of its {channels} "
        "channels it differs from both ({gn_vs_ln:.2f} and {gn_vs_in:.2f}). The extra hyperparameter is real: the "
        "number of groups, any divisor of C; that tuning it is too troublesome is a judgement the book does not test."
    ),
    verdict="does not hold",
    kind="derivation",
    decide=lambda n: {
        # Exact identities at ε = 0: float64 rounding only.
        "gn_batch_independent": n["gn_batch_change"] < 1e-12,
        "gn_ends_are_ln_and_in": n["gn1_vs_ln"] < 1e-12 and n["gnc_vs_in"] < 1e-12,
        # 0.1 in outputs of unit scale: a difference a reader would see.
        "bn_batch_dependent": n["bn_batch_change"] > 0.1,
        "gn_in_between": n["gn_vs_ln"] > 0.1 and n["gn_vs_in"] > 0.1,
        "groups_is_a_choice": n["valid_groups"] > 2,
    },
    # The source's world: GroupNorm shares BatchNorm's statistics across the batch, so a sample's companions move
    # its output as they move BatchNorm's.
    null=lambda n: {**n, "gn_batch_change": n["bn_batch_change"]},
    answer_zh=(
        "不成立：GroupNorm 并不是 BatchNorm 与 LayerNorm 的折中——它从不跨批量取统计量（换掉同批其他样本，输出不变，"
        "BatchNorm 的输出则变化 {bn_batch_change:.2f}），而是 LayerNorm（一组）与 InstanceNorm（每组一个通道）之间的折中"
        "（{groups} 组时与两者分别相差 {gn_vs_ln:.2f} 与 {gn_vs_in:.2f}）；组数确实是额外的超参数，可取 C 的任一约数。"
    ),
)
def w15() -> dict:
    """The evidence for W15. See book/04_why.ipynb, section "Why not InstanceNorm or GroupNorm?"."""
    return group_norm_place()


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float]:
    """The chapter's exercise answers, computed (tests/test_why.py checks them against closed forms)."""
    # 1. A feature with mean 2, variance 1 over 105 real tokens, padded with 95 zeros.
    z = randn(105, seed=100)
    real = (z - z.mean()) / z.std(correction=0) + 2.0
    padded = torch.cat([real, torch.zeros(95, dtype=F64)])
    # 2. The row (2, 0): μ = σ = 1.
    x = torch.tensor([2.0, 0.0], dtype=F64)
    rms, y_ln = norms.rms_norm(x, (2,), eps=0.0), ln(x, eps=0.0)
    # 3. After LN (d = 64), one key aligned with the query and 15 orthogonal to it, W_q = W_k = I.
    d, t = 64, 16
    basis, _ = torch.linalg.qr(torch.cat([torch.ones(d, 1, dtype=F64), randn(d, t, seed=101)], 1))
    keys = ln(basis[:, 1:].T, eps=0.0)  # (t, d): zero-mean, mutually orthogonal, each of norm √d after LN
    p = torch.softmax(keys @ keys[0] / math.sqrt(d), dim=0)
    return {"padded_mean": float(padded.mean()), "padded_var": float(padded.var(correction=0)),
            "rms_ln_gap": float((rms - y_ln).pow(2).mean().sqrt()), "rms_first": float(rms[0]),
            "max_score": float(keys[0] @ keys[0] / math.sqrt(d)), "aligned_share": float(p[0])}
