"""Chapter 3 (seed 002), book/03_transformer: LayerNorm inside the Transformer, claims T01–T05, T09–T11.

Sections of the chapter: "The formula on a batch of sequences" (T01, T02), "What range do normalized
values take?" (T03), "Where the norm sits" (T04, T11), "Numerical care: ε and the variance" (T05),
"Inference" (T09), "A pitfall the source does not mention: the unbiased standard deviation" (T10), and
the exercises. "What it costs" (T06) is :mod:`lnbook.experiments.transformer_cost`, "What it does for
training" (T07, T08) :mod:`lnbook.experiments.transformer_training`.

Shapes are the Transformer's: x is (B, L, d), batch × sequence positions × model width, and
LayerNorm's statistics are taken over d for every (batch, position) pair. Everything is seeded and
small.
"""

from __future__ import annotations

import math
import statistics

import torch

from lnbook import norms, variance
from lnbook.claims import claim
from lnbook.experiments.common import F64, flops_per_token, ln, max_abs, over_seeds, randn
from lnbook.models import LayerNorm, RMSNorm, TransformerBlock

CHAPTER = "book/03_transformer"  # the chapter that shows this module's claims
SHAPE = (4, 6, 16)  # (B, L, d): small enough to loop over every position in T01


# ----------------------------------------------------------------------------- the formula on (B, L, d)


def per_position_loop(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The source's formula applied literally: one (b, l) at a time, μ and σ² over the d features."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for pos in range(x.shape[1]):
            v = x[b, pos]  # (d,)
            mu = v.sum() / len(v)
            var = ((v - mu) ** 2).sum() / len(v)
            out[b, pos] = (v - mu) / torch.sqrt(var + eps)
    return out


@claim(
    "T01",
    anchors=(
        ("002", "什么是层归一化？", "对每个样本的特征维度进行归一化"),
        ("002", "核心思想", "对特征维度（feature dimension）进行归一化"),
        ("002", "计算均值和方差", "对于每个样本的每个位置"),
        ("002", "缩放和平移（可学习参数）", "\\gamma \\odot \\hat{x} + \\beta"),
        ("002", "完整公式", "\\gamma \\odot \\frac{x - \\mu}"),
        ("002", "直观理解", "对单个样本的所有特征维度进行归一化"),
        ("002", "为什么需要可学习参数？", "强制特征均值为0、方差为1"),
        ("002", "对Transformer的特殊意义", "每个位置独立归一化"),
        ("002", "对Transformer的特殊意义", "不受序列长度影响"),
        ("002", "在Transformer中的选择", "LayerNorm对每个位置独立归一化"),
        ("002", "在Transformer中的选择", "每个样本独立计算，易于并行化"),
        ("002", "Layer Normalization vs Batch Normalization", "特征维度（feature dim）"),
        ("002", "总结", "独立处理每个样本和位置"),
    ),
    claim=(
        "For x ∈ R^(B×L×d), LayerNorm takes μ and σ² (dividing by d) over the d features of every sample and "
        "position, so that without γ and β every position comes out with mean 0 and variance 1, whatever the other "
        "positions and the sequence's length; γ ⊙ x̂ + β then scales and shifts it. The source draws from the "
        "independence that the computation is easy to parallelize; the book checks the fact it rests on: any "
        "split of the positions gives the same result."
    ),
    statement=(
        "Holds. In float64 the reference LayerNorm with normalized_shape = (d,) equals the formula applied one "
        "position at a time to {loop_diff:.2g} (also with random γ and β) and torch's layer_norm to {torch_diff:.2g}, "
        "and every position comes out with mean 0 and variance 1, up to what ε takes off. A position's output depends "
        "on no other position: cutting the sequences to their first 3 positions changes those positions' outputs by "
        "{length_diff:.2g}, normalizing the positions in chunks of 5 gives the same result, and changing the last "
        "position moves the first one's output by {d_leak:.2g}. Normalizing over (L, d) instead is a different "
        "operation in which positions leak into each other: the same change moves the first position's output by "
        "{ld_leak:.2f}."
    ),
    verdict="holds",
    kind="derivation",
    answer_zh=(
        "成立：按特征维度 d 计算的层归一化与逐位置套用公式的结果相差 {loop_diff:.2g}，与 torch 的 layer_norm 相差 "
        "{torch_diff:.2g}，每个位置的输出均值为 0、方差为 1（偏差只来自 ε）；它与其他位置无关：把序列截短后输出只变化 "
        "{length_diff:.2g}，改动最后一个位置使第一个位置的输出变化 {d_leak:.2g}；而在 (L, d) 上归一化时，同样的改动使第一个"
        "位置的输出变化 {ld_leak:.2f}。"
    ),
    # float64 throughout: differing summation orders leave ~1e-15; 1e-12 separates that from a real change.
    decide=lambda n: {
        "equals_loop": n["loop_diff"] < 1e-12, "equals_torch": n["torch_diff"] < 1e-12,
        "affine_formula": n["affine_diff"] < 1e-12,
        "centred_per_position": n["out_mean"] < 1e-12,
        # The output variance is σ²/(σ² + ε) exactly: 1 less ε/(σ² + ε), below ε/σ² (plus rounding).
        "unit_variance_per_position": n["out_var_err"] <= n["eps_bound"] + 1e-12,
        "over_ld_differs": n["ld_diff"] > 0.1,
        "over_ld_couples_positions": n["ld_leak"] > 0.01, "over_d_independent": n["d_leak"] == 0.0,
        "length_independent": n["length_diff"] < 1e-12, "split_independent": n["split_diff"] < 1e-12,
    },
    # A world where the library took its statistics over (L, d): it differs from the per-position loop by what
    # normalizing over (L, d) changes, positions leak into each other and the sequence's length matters as they
    # do there, and a single position's variance is no longer 1.
    null=lambda n: {**n, "loop_diff": n["ld_diff"], "torch_diff": n["ld_diff"], "d_leak": n["ld_leak"],
                    "length_diff": n["ld_length_diff"], "split_diff": n["ld_length_diff"],
                    "out_var_err": n["ld_var_err"]},
)
def t01() -> dict:
    """The evidence for T01. See book/03_transformer.ipynb, section "The formula on a batch of sequences"."""
    x = randn(*SHAPE, seed=30) * 2 + 0.5
    d = x.shape[-1]
    eps = 1e-5
    ours = norms.layer_norm(x, (d,), eps=eps)
    over_ld = norms.layer_norm(x, x.shape[1:], eps=eps)
    x2 = x.clone()
    x2[:, -1] += 5.0  # perturb only the last position of every sequence
    leak = lambda shape: max_abs(norms.layer_norm(x2, shape)[:, 0], norms.layer_norm(x, shape)[:, 0])
    gamma, beta = randn(d, seed=301), randn(d, seed=302)
    rows = x.reshape(-1, d)  # (B·L, d): every position a row
    chunks = torch.cat([norms.layer_norm(r, (d,), eps=eps) for r in rows.split(5)]).reshape(x.shape)
    short = x[:, :3]  # (B, 3, d): the same sequences cut to their first 3 positions
    nums = {
        "batch": SHAPE[0], "length": SHAPE[1], "width": SHAPE[2], "positions": SHAPE[0] * SHAPE[1],
        "loop_diff": max_abs(ours, per_position_loop(x, eps)),
        "torch_diff": max_abs(ours, torch.nn.functional.layer_norm(x, (d,), eps=eps)),
        "affine_diff": max_abs(norms.layer_norm(x, (d,), gamma, beta, eps=eps), gamma * per_position_loop(x, eps) + beta),
        "out_mean": float(ours.mean(-1).abs().max()),
        "out_var_err": float((ours.var(-1, correction=0) - 1).abs().max()),
        "eps_bound": float((eps / x.var(-1, correction=0)).max()),
        "length_diff": max_abs(norms.layer_norm(short, (d,), eps=eps), ours[:, :3]),
        "split_diff": max_abs(chunks, ours),
        "ld_diff": max_abs(ours, over_ld), "ld_leak": leak(x.shape[1:]), "d_leak": leak((d,)),
        "ld_length_diff": max_abs(norms.layer_norm(short, short.shape[1:], eps=eps), over_ld[:, :3]),
        "ld_var_err": float((over_ld.var(-1, correction=0) - 1).abs().max()),
    }
    return nums


@claim(
    "T02",
    anchors=(
        ("002", "缩放和平移（可学习参数）", "可学习的缩放参数（scale），初始化为全1"),
        ("002", "缩放和平移（可学习参数）", "可学习的平移参数（shift），初始化为全0"),
        ("002", "2. 归一化", "通常为 $10^{-5}$"),
        ("002", "$\\gamma$（缩放参数）", "初始值：全1向量"),
        ("002", "$\\beta$（平移参数）", "初始值：全0向量"),
    ),
    claim=(
        "γ is initialized to ones and β to zeros, and ε is usually 1e-5; the book reads 'usually' as PyTorch's "
        "default, the one it can check."
    ),
    statement=(
        "Holds for torch.nn.LayerNorm and for the book's LayerNorm and RMSNorm modules (RMSNorm has no β): "
        "γ = 1 and β = 0 in all {params} entries checked, ε = {torch_eps:.5f} by default, so at "
        "initialization the layer outputs x̂ itself (largest difference {init_diff:.2g})."
    ),
    verdict="holds",
    answer_zh=(
        "成立：torch.nn.LayerNorm 以及本书的 LayerNorm、RMSNorm 模块中检查的全部 {params} 个参数都是 γ = 1、β = 0，"
        "ε 默认为 {torch_eps:.5f}，因此初始化时层的输出就是 x̂ 本身（最大差 {init_diff:.2g}）。"
    ),
    decide=lambda n: {
        "gamma_ones": n["gamma_dev"] == 0.0, "beta_zeros": n["betas"] == 2 and n["beta_dev"] == 0.0,
        "eps_1e_5": n["torch_eps"] == 1e-5 and n["book_eps"] == 1e-5,
        # The module runs PyTorch's fused op, the reference ln() its own: float64 rounding only.
        "identity_affine": n["init_diff"] < 1e-14,
    },
    # A world where γ starts at zero (the zero-init some codebases use for a residual branch's last norm):
    # γ is 1 away from ones and the layer outputs β = 0, as far from x̂ as x̂'s largest entry.
    null=lambda n: {**n, "gamma_dev": 1.0, "init_diff": n["xhat_max"]},
)
def t02() -> dict:
    """The evidence for T02. See book/03_transformer.ipynb, section "The formula on a batch of sequences"."""
    d = SHAPE[-1]
    mods = [torch.nn.LayerNorm(d), LayerNorm(d), RMSNorm(d)]
    weights = [m.weight for m in mods]
    biases = [m.bias for m in mods if getattr(m, "bias", None) is not None]
    x = randn(*SHAPE, seed=31)
    with torch.no_grad():
        init_diff = max_abs(LayerNorm(d).double()(x), ln(x, eps=1e-5))
    return {"params": sum(t.numel() for t in weights + biases), "betas": len(biases),
            "gamma_dev": max(float((w.detach() - 1).abs().max()) for w in weights),
            "beta_dev": max(float(b.detach().abs().max()) for b in biases), "torch_eps": torch.nn.LayerNorm(d).eps,
            "book_eps": LayerNorm(d).eps, "init_diff": init_diff, "xhat_max": float(ln(x, eps=1e-5).abs().max())}


# ----------------------------------------------------------------------------- T03: the range of x̂


def one_hot(d: int) -> torch.Tensor:
    """e₁ of width d, float64: (d,)."""
    x = torch.zeros(d, dtype=F64)
    x[0] = 1.0
    return x


def one_hot_max(d: int) -> float:
    """Largest entry of LN(e₁) at width d (ε = 0): the extreme case of the bound √(d−1)."""
    return float(ln(one_hot(d), eps=0.0).max())


def gaussian_xhat(rows: int = 2048, d: int = 512, seed: int = 32) -> torch.Tensor:
    """x̂ of i.i.d. N(0, 1) rows (ε = 0): (rows, d)."""
    return ln(randn(rows, d, seed=seed), eps=0.0)


def outlier_xhat(d: int = 768, outlier: float = 50.0, seed: int = 33) -> float:
    """x̂ of one feature that is ``outlier`` standard deviations out, in an otherwise N(0, 1) row."""
    x = randn(d, seed=seed)
    x[0] = outlier
    return float(ln(x, eps=0.0)[0])


@claim(
    "T03",
    anchors=(("002", "解决方案：归一化", "将特征值缩放到合理范围"),),
    claim=(
        "Normalizing brings feature values into a reasonable range, usually around [−2, 2]. The book reads "
        "'usually' as 'for typical inputs' and asks for which inputs it holds and whether anything bounds it."
    ),
    statement=(
        "Holds under conditions: for Gaussian-like features, not as a bound. For i.i.d. Gaussian inputs {inside:.2%} of x̂ lies "
        "in [−2, 2] (erf(√2) = {closed_inside:.2%}). The only bound is |x̂ᵢ| ≤ √(d−1) (at ε = 0), attained by "
        "a one-hot input: {onehot_768:.2f} at d = 768 (√767 = {sqrt_767:.2f}). One outlier feature 50 standard "
        "deviations out in a row of 768 normalizes to {outlier:.1f}."
    ),
    verdict="holds under conditions",
    answer_zh=(
        "有条件成立：对近似高斯的特征而言，独立高斯输入的 x̂ 有 {inside:.2%} 落在 [−2, 2] 内（erf(√2) = "
        "{closed_inside:.2%}），但这不是界：唯一的界是 |x̂ᵢ| ≤ √(d−1)，独热输入在 d = 768 时达到 {onehot_768:.2f}，"
        "一个偏离 50 个标准差的离群特征归一化后仍为 {outlier:.1f}。"
    ),
    decide=lambda n: {
        # 2048·512 ≈ 1e6 values: binomial standard error ≈ 2e-4; finite d = 512 shifts the fraction by
        # O(1/d) ≈ 2e-3 at most. 3e-3 covers both.
        "gaussian_fraction": abs(n["inside"] - n["closed_inside"]) < 3e-3,
        # float64 against the closed form √(d−1) at every width tried: rounding only.
        "onehot_attains_bound": n["onehot_bound_err"] < 1e-12,
        "bound_holds": n["max_gaussian"] <= n["bound_512"],
        "outlier_far_outside": n["outlier"] > 10,
    },
    # A world where [−2, 2] were a bound, the reading that needs no condition: the one-hot row and the
    # outlier normalize to 2 at most.
    null=lambda n: {**n, "onehot_768": 2.0, "onehot_bound_err": n["sqrt_767"] - 2.0, "outlier": 2.0},
)
def t03() -> dict:
    """The evidence for T03. See book/03_transformer.ipynb, section "What range do normalized values take?"."""
    xhat = gaussian_xhat()
    inside = float((xhat.abs() <= 2).double().mean())
    closed = math.erf(2 / math.sqrt(2))
    widths = (2, 4, 16, 64, 768)
    onehot = {d: one_hot_max(d) for d in widths}
    return {"inside": inside, "closed_inside": closed, "onehot_768": onehot[768], "sqrt_767": math.sqrt(767),
            "onehot_bound_err": max(abs(onehot[d] - math.sqrt(d - 1)) for d in widths),
            "outlier": outlier_xhat(), "max_gaussian": float(xhat.abs().max()), "bound_512": math.sqrt(511)}


# ----------------------------------------------------------------------------- T04: Post-LN and Pre-LN


def attention_by_hand(attn, x: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ/√d_h + causal mask) V with the module's weights, written out: (B, L, d)."""
    b, l, d = x.shape
    h = attn.heads
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(d, dim=-1)
    heads = lambda t: t.reshape(b, l, h, d // h).transpose(1, 2)  # (B, h, L, d/h)
    scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(d // h)  # (B, h, L, L)
    scores = scores.masked_fill(torch.ones(l, l, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(b, l, d)
    return y @ attn.proj.weight.T + attn.proj.bias


def block_by_hand(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """The source's two formulas, with torch's layer_norm and the block's own parameters."""
    for sub in block:
        norm = lambda t, sub=sub: torch.nn.functional.layer_norm(t, t.shape[-1:], sub.norm.weight, sub.norm.bias, sub.norm.eps)
        f = (lambda t, sub=sub: attention_by_hand(sub.sublayer, t)) if hasattr(sub.sublayer, "heads") else sub.sublayer
        x = norm(x + f(x)) if sub.placement == "post" else x + f(norm(x))
    return x


@claim(
    "T04",
    anchors=(
        ("002", "Transformer中的层归一化位置", "LayerNorm(x + Sublayer(x))"),
        ("002", "编码器层中的使用", "x = x + self_attention(x)"),
        ("002", "编码器层中的使用", "x = x + feed_forward(x)"),
        ("002", "Pre-LN vs Post-LN", "x = LayerNorm(x + Sublayer(x))"),
        ("002", "Pre-LN vs Post-LN", "x = x + Sublayer(LayerNorm(x))"),
        ("002", "对Transformer的特殊意义", "Transformer使用残差连接"),
    ),
    claim=(
        "Post-LN computes x = LN(x + Sublayer(x)) (the original Transformer's placement), Pre-LN "
        "x = x + Sublayer(LN(x)); the source's encoder-layer code (x = x + self_attention(x); x = layer_norm(x); "
        "then the same with feed_forward) is Post-LN. The code writes one name, layer_norm, for both norms; the "
        "book reads it as each sublayer's own LayerNorm, as in the original Transformer, and measures what "
        "sharing one would change."
    ),
    statement=(
        "Holds: the library's Transformer blocks (causal self-attention and MLP, each in a residual branch) "
        "compute exactly these formulas: written out by hand with torch's layer_norm and an explicit "
        "softmax attention they agree to {post_diff:.2g} (Post-LN) and {pre_diff:.2g} (Pre-LN). The Post-LN "
        "output has variance 1 at every position, up to what ε takes off; the Pre-LN output does not (variances from "
        "{pre_var_min:.2f} to {pre_var_max:.2f}). Attention is causal: changing the last token leaves the earlier "
        "positions unchanged. The source's four lines of encoder code, run with the block's attention, MLP and two "
        "LayerNorms, give the Post-LN block's output to {snippet_diff:.2g}; with one LayerNorm shared by both "
        "sublayers they would differ from it by {snippet_shared_diff:.2f} once the two norms' γ and β have moved "
        "apart (here by a random 0.2 each)."
    ),
    verdict="holds",
    answer_zh=(
        "成立：本书的 Transformer 块正是按这两个公式计算的，与手写的公式相差 {post_diff:.2g}（Post-LN）和 "
        "{pre_diff:.2g}（Pre-LN）；Post-LN 的输出在每个位置上方差为 1（偏差只来自 ε），Pre-LN 的输出则不然（方差从 "
        "{pre_var_min:.2f} 到 {pre_var_max:.2f}）；原文编码器层的四行代码即 Post-LN 块（相差 {snippet_diff:.2g}），"
        "若两个子层共用一个层归一化，输出则相差 {snippet_shared_diff:.2f}。"
    ),
    kind="derivation",
    decide=lambda n: {
        # float64, two implementations of the same arithmetic (fused attention vs explicit): rounding only.
        "post_formula": n["post_diff"] < 1e-12, "pre_formula": n["pre_diff"] < 1e-12,
        # σ² of the residual sum is O(1) here, so ε = 1e-5 lowers the output variance by at most ~1e-4.
        "post_normalized": n["post_var_err"] < 1e-3,
        "pre_not_normalized": abs(n["pre_var_min"] - 1) > 0.1 or abs(n["pre_var_max"] - 1) > 0.1,
        "causal": n["causal_leak"] < 1e-12,
        # The seed's code against the library's Post-LN block, float64: rounding only.
        "snippet_is_post_ln": n["snippet_diff"] < 1e-12,
        # One shared norm is a different network once the norms' parameters differ by O(0.2).
        "shared_norm_differs": n["snippet_shared_diff"] > 0.01,
    },
    # A world where the library's placements were swapped: each block is as far from its formula as the two
    # placements' outputs are from each other, and the "Pre-LN" output is normalized.
    null=lambda n: {**n, "post_diff": n["placement_diff"], "pre_diff": n["placement_diff"],
                    "pre_var_min": 1 - n["post_var_err"], "pre_var_max": 1 + n["post_var_err"],
                    "snippet_diff": n["placement_diff"]},
)
def t04() -> dict:
    """The evidence for T04. See book/03_transformer.ipynb, section "Where the norm sits: Post-LN and Pre-LN"."""
    torch.manual_seed(34)
    blocks = {p: TransformerBlock(32, heads=4, placement=p).double() for p in ("post", "pre")}
    x = randn(3, 10, 32, seed=35) * 2 + 1
    x2 = x.clone()
    x2[:, -1] = randn(3, 32, seed=36)
    with torch.no_grad():
        y = {p: b(x) for p, b in blocks.items()}
        diff = {p: max_abs(y[p], block_by_hand(b, x)) for p, b in blocks.items()}
        leak = max(max_abs(b(x2)[:, :-1], y[p][:, :-1]) for p, b in blocks.items())
    post_var = y["post"].var(-1, correction=0)
    pre_var = y["pre"].var(-1, correction=0)
    snippet = encoder_snippet_diffs(x)
    return {**snippet, "post_diff": diff["post"], "pre_diff": diff["pre"], "post_var_err": float((post_var - 1).abs().max()),
            "pre_var_min": float(pre_var.min()), "pre_var_max": float(pre_var.max()), "causal_leak": leak,
            "placement_diff": max_abs(y["post"], y["pre"])}


def seed_encoder_layer(x, self_attention, feed_forward, norm1, norm2):
    """The source's encoder-layer code, line for line (its one ``layer_norm`` read as each sublayer's own)."""
    x = x + self_attention(x)
    x = norm1(x)
    x = x + feed_forward(x)
    x = norm2(x)
    return x


def encoder_snippet_diffs(x: torch.Tensor) -> dict[str, float]:
    """A Post-LN block whose two norms have their own γ and β (moved off their start by a seeded 0.2·N(0, 1)):
    the source's code with its own norms against the block, and with the first norm shared by both."""
    torch.manual_seed(39)
    block = TransformerBlock(32, heads=4, placement="post").double()
    attn, mlp = block
    with torch.no_grad():
        for k, sub in enumerate(block):
            sub.norm.weight.add_(0.2 * randn(32, seed=390 + 2 * k))
            sub.norm.bias.add_(0.2 * randn(32, seed=391 + 2 * k))
        y = block(x)
        own = seed_encoder_layer(x, attn.sublayer, mlp.sublayer, attn.norm, mlp.norm)
        shared = seed_encoder_layer(x, attn.sublayer, mlp.sublayer, attn.norm, attn.norm)
    return {"snippet_diff": max_abs(own, y), "snippet_shared_diff": max_abs(shared, y)}


def block_diagram():
    """Post-LN and Pre-LN residual blocks side by side (matplotlib boxes and arrows): returns the figure."""
    from lnbook import plots

    fig, axes = plots.figure(ncols=2, width=7.2, height=4.2)
    colors = {"LayerNorm": plots.COLORS["ln"], "Sublayer": "#888888", "+": "#ffffff"}
    layouts = {
        "Post-LN: LN(x + Sublayer(x))": [("x", 0), ("Sublayer", 1), ("+", 2), ("LayerNorm", 3), ("out", 4)],
        "Pre-LN: x + Sublayer(LN(x))": [("x", 0), ("LayerNorm", 1), ("Sublayer", 2), ("+", 3), ("out", 4)],
    }
    for ax, (title, nodes) in zip(axes, layouts.items()):
        ax.set(xlim=(-1.6, 1.6), ylim=(-0.6, 4.6), title=title)
        ax.axis("off")
        for (name, y), (_, y_next) in zip(nodes, nodes[1:] + [(None, None)]):
            style = dict(boxstyle="circle" if name == "+" else "round", fc=colors.get(name, "#f4f4f4"),
                         alpha=0.35 if name in colors and name != "+" else 1.0)
            ax.text(0, y, name, ha="center", va="center", bbox=style)
            if y_next is not None:
                ax.annotate("", (0, y_next - 0.28), (0, y + 0.28), arrowprops=dict(arrowstyle="->"))
        plus = next(y for name, y in nodes if name == "+")
        ax.plot([-0.15, -0.9, -0.9], [0, 0, plus], color="black", lw=1)  # the identity path around the branch
        ax.annotate("", (-0.2, plus), (-0.9, plus), arrowprops=dict(arrowstyle="->"))
        ax.text(-1.0, plus / 2, "residual", rotation=90, ha="right", va="center")
    return fig


# ----------------------------------------------------------------------------- T11: the residual stream's scale


T11_STACK = {"layers": 12, "d": 64, "seeds": (0, 1, 2)}  # 12 Transformer layers: 24 residual sublayers


def residual_stream_rms(placement: str, norm: str, seed: int) -> list[float]:
    """RMS of the residual stream at the input and after each of the stack's 24 sublayers (attention, MLP,
    attention, …) at initialization: a stack of :data:`T11_STACK` Transformer layers, float64, on a seeded
    (4, 8, d) input of unit variance. With Post-LN the stream is the norms' output."""
    torch.manual_seed(seed)
    layers = [TransformerBlock(T11_STACK["d"], heads=4, placement=placement, norm=norm).double()
              for _ in range(T11_STACK["layers"])]
    x = randn(4, 8, T11_STACK["d"], seed=110 + seed)  # (B, L, d)
    rms = [float(x.pow(2).mean().sqrt())]
    with torch.no_grad():
        for sub in (sub for layer in layers for sub in layer):
            x = sub(x)
            rms.append(float(x.pow(2).mean().sqrt()))
    return rms


def post_ln_var_err(seed: int) -> float:
    """Largest |variance − 1| of any position after any sublayer of the Post-LN stack of ``seed``."""
    torch.manual_seed(seed)
    layers = [TransformerBlock(T11_STACK["d"], heads=4, placement="post").double() for _ in range(T11_STACK["layers"])]
    x = randn(4, 8, T11_STACK["d"], seed=110 + seed)
    err = 0.0
    with torch.no_grad():
        for sub in (sub for layer in layers for sub in layer):
            x = sub(x)
            err = max(err, float((x.var(-1, correction=0) - 1).abs().max()))
    return err


def _decide_t11(n) -> dict[str, bool]:
    return {
        # Without a norm the stream grows on every seed: its RMS ends well above where it started (a world
        # without growth ends at 1; the seeds spread by about 0.1 around 2, so 1.5 is far from both) ...
        "plain_grows": n["plain_growth_min"] > 1.5,
        # ... and gradually: no single sublayer multiplies it by more than 1.2 (the mean step is ~1.03).
        "plain_gradual": n["plain_step_max"] < 1.2,
        # Post-LN pulls it back after every sublayer: variance 1 at every position up to ε's share (σ² of the
        # residual sum is O(1), so ε = 1e-5 lowers it by ~1e-5).
        "post_ln_unit_variance": n["post_var_err"] < 1e-3,
        # With Pre-LN the stream still grows (the norm sits on the branch, not on the stream), but less.
        "pre_ln_grows_less": 1.1 < n["pre_growth_max"] < n["plain_growth_min"],
    }


@claim(
    "T11",
    anchors=(
        ("002", "对Transformer的特殊意义", "残差连接可能导致数值范围逐渐增大"),
        ("002", "对Transformer的特殊意义", "层归一化将数值范围拉回合理区间"),
        ("002", "解决方案：归一化", "稳定每层的输入分布"),
        ("002", "总结", "将每层的输入标准化到相似分布"),
    ),
    claim=(
        "Residual connections x + Sublayer(x) can make the range of values grow gradually from layer to layer; "
        "LayerNorm after the residual connection (the section's heading: Post-LN) pulls it back into a "
        "reasonable range, so that every layer's input has a stable distribution."
    ),
    statement=(
        "Holds, for LayerNorm after the residual sum as the source places it. In a stack of {layers} Transformer "
        "layers at PyTorch's default initialization without normalization, the residual stream's RMS grows "
        "gradually, by at most {plain_step_max:.3f}× per sublayer, to {plain_growth_mean:.2f} ± "
        "{plain_growth_sd:.2f} times its start (mean ± standard deviation over seeds). With Post-LN every "
        "position comes back to variance 1 after every sublayer, up to what ε takes off. With Pre-LN the norm sits on "
        "the branch, not on the stream, and the stream still grows, though less: to at most {pre_growth_max:.2f} "
        "times its start."
    ),
    verdict="holds",
    answer_zh=(
        "成立（指原文所说的残差相加之后的层归一化）：{layers} 层无归一化的 Transformer 在 PyTorch 默认初始化下，残差流的"
        "均方根逐渐增长（每个子层至多乘以 {plain_step_max:.3f}），到初始的 {plain_growth_mean:.2f} ± {plain_growth_sd:.2f} "
        "倍（各种子的均值 ± 标准差）；Post-LN 在每个子层之后把每个位置的方差拉回 1（偏差只来自 ε），而 Pre-LN 的残差流"
        "仍会增长，但较少，最多到初始的 {pre_growth_max:.2f} 倍。"
    ),
    decide=_decide_t11,
    # A world where residual sums do not grow the stream: the plain stack ends where it began, at every rate 1,
    # so nothing needs pulling back.
    null=lambda n: {**n, "plain_growth_min": 1.0, "plain_growth_mean": 1.0, "plain_rate": 1.0,
                    "plain_step_max": 1.0, "pre_growth_max": 1.0},
    outcomes=("plain_growth_mean", "plain_growth_sd", "post_var_err", "pre_growth_max"),
)
def t11() -> dict:
    """The evidence for T11. See book/03_transformer.ipynb, section "Where the norm sits: Post-LN and Pre-LN"."""
    seeds = T11_STACK["seeds"]
    plain = [residual_stream_rms("pre", "none", s) for s in seeds]
    pre = [residual_stream_rms("pre", "layer", s) for s in seeds]
    growth = over_seeds(r[-1] / r[0] for r in plain)
    return {"layers": T11_STACK["layers"], "sublayers": 2 * T11_STACK["layers"], "d": T11_STACK["d"],
            "seeds": len(seeds), "plain_growth_mean": growth.mean, "plain_growth_sd": growth.sd,
            "plain_growth_min": min(growth.values),
            "plain_rate": statistics.fmean(g ** (1 / (len(plain[0]) - 1)) for g in growth.values),
            "plain_step_max": max(b / a for r in plain for a, b in zip(r, r[1:])), "pre_growth_max": max(r[-1] / r[0] for r in pre),
            "post_var_err": max(post_ln_var_err(s) for s in seeds)}


# ----------------------------------------------------------------------------- T05: ε and the variance

SQRT_1E_5 = math.sqrt(1e-5)  # σ = √ε: where ε halves the variance a row is divided by


def eps_effect(sigmas=(1.0, 1e-2, SQRT_1E_5, 1e-3), d: int = 768, seed: int = 37):
    """For rows with std σ: the output std at ε = 1e-5 and 1e-6, and max |LN_1e-5 − LN_1e-6|."""
    z = randn(d, seed=seed)
    z = (z - z.mean()) / z.std(correction=0)  # exactly unit spread
    out = []
    for s in sigmas:
        y5, y6 = ln(s * z, eps=1e-5), ln(s * z, eps=1e-6)
        out.append({"sigma": s, "std_1e5": float(y5.std(correction=0)), "std_1e6": float(y6.std(correction=0)),
                    "diff": max_abs(y5, y6)})
    return out


T05_ROWS = {"rows": 32, "d": 1024, "seed": 38}  # the float32 rows of T05 and of the chapter's figure


@claim(
    "T05",
    anchors=(
        ("002", "2. 归一化", "用于防止除以零"),
        ("002", "防止除零错误", "在计算方差时，添加小常数"),
        ("002", "防止除零错误", "10^{-5}$ 或 $10^{-6}$"),
        ("002", "数值精度", "使用稳定的方差计算方式"),
        ("002", "数值精度", "使用双精度进行中间计算（如果需要）"),
    ),
    claim=(
        "A small ε added to the variance prevents division by zero; ε is usually 1e-5 or 1e-6 (the book tests "
        "what choosing between the two changes; PyTorch's default, 1e-5, is T02's); the variance should be "
        "computed stably, with double precision for the intermediate steps if needed."
    ),
    statement=(
        "Holds, with the choice of ε mattering only when σ² is not large against it. At σ = 1 the outputs with "
        "ε = 10⁻⁵ and 10⁻⁶ differ by {diff_sigma1:.6f}; at σ² = ε = 10⁻⁵ the output's standard deviation is "
        "{std_at_eps:.3f} (1/√2), against 1/√1.1 with ε = 10⁻⁶; on a constant row (σ² = 0) ε keeps every output "
        "finite, where ε = 0 makes every one 0/0. The variance algorithm matters far more: on float32 rows with "
        "mean 10⁴ and standard deviation 1, the relative error of σ² against float64 is {naive_err:,.0%} for "
        "E[x²] − E[x]², {welford_err:.2%} for Welford's single pass and {two_pass_err:.5%} for two passes. A "
        "stable algorithm in float32 is enough here; double precision is not needed."
    ),
    verdict="holds",
    answer_zh=(
        "成立：ε 只在 σ² 不远大于它时才要紧：σ = 1 时 ε 取 10⁻⁵ 与 10⁻⁶ 的输出仅差 {diff_sigma1:.6f}，σ² = ε = 10⁻⁵ "
        "时输出标准差为 {std_at_eps:.3f}（1/√2），常数行上 ε 使每个输出都保持有限；方差算法的影响大得多：在均值 10⁴、"
        "标准差 1 的 float32 行上，σ² 的相对误差在 E[x²] − E[x]² 为 {naive_err:,.0%}，Welford 单遍法为 {welford_err:.2%}，"
        "两遍法为 {two_pass_err:.5%}，float32 中的稳定算法已够用，无需双精度。"
    ),
    decide=lambda n: {
        # |x̂|·(ε₁ − ε₂)/(2σ²) with |x̂| ≤ 4 in this row: below 1e-4 at σ = 1.
        "eps_irrelevant_at_unit_sigma": n["diff_sigma1"] < 1e-4,
        # float64 against the closed forms 1/√2 and 1/√1.1: rounding only.
        "std_closed_form": abs(n["std_at_eps"] - 1 / math.sqrt(2)) < 1e-12,
        "std_closed_form_1e6": abs(n["std_at_eps_1e6"] - 1 / math.sqrt(1.1)) < 1e-12,
        "naive_cancels": n["naive_err"] > 0.1,
        # float32: u ≈ 6e-8; two passes lose a few u·d^(1/2), Welford's running mean about u·|mean|/σ ≈ 6e-4.
        "two_pass_accurate": n["two_pass_err"] < 1e-5, "welford_accurate": n["welford_err"] < 1e-2,
        # Counts: ε keeps every element of a constant row finite, ε = 0 makes every one 0/0.
        "eps_prevents_nan": n["const_nans_eps"] == 0, "no_eps_nan": n["const_nans_eps0"] == n["const_width"],
    },
    # A world where the algorithm does not matter and float32 needs double precision: the stable algorithms
    # are as far off as the naive one; and one where ε does not keep a constant row finite.
    null=lambda n: {**n, "welford_err": n["naive_err"], "two_pass_err": n["naive_err"],
                    "const_nans_eps": n["const_nans_eps0"]},
)
def t05() -> dict:
    r"""The evidence for T05. See book/03_transformer.ipynb, section "Numerical care: $\epsilon$ and the variance"."""
    eff = {round(e["sigma"] ** 2, 12): e for e in eps_effect()}
    err = variance.relative_errors(1e4, torch.float32, **T05_ROWS)
    const = torch.full((T05_ROWS["d"],), 3.0, dtype=F64)  # σ² = 0 exactly
    nans = lambda eps: int(torch.isnan(ln(const, eps=eps)).sum())
    return {"const_width": T05_ROWS["d"], "const_nans_eps": nans(1e-5), "const_nans_eps0": nans(0.0),"diff_sigma1": eff[1.0]["diff"], "std_at_eps": eff[1e-5]["std_1e5"],
            "std_at_eps_1e6": eff[1e-5]["std_1e6"], "naive_err": err["naive"], "welford_err": err["welford"],
            "two_pass_err": err["two_pass"]}


# ----------------------------------------------------------------------------- T09: inference


def batchnorm_block_diffs(x: torch.Tensor) -> dict[str, float]:
    """T09's null world, measured: the same block with BatchNorm over the features (statistics over the
    batch and positions) in place of each LayerNorm, one batch-1 and one train/eval difference."""
    torch.manual_seed(41)
    block = TransformerBlock(x.shape[-1]).double()
    for sub in block:
        sub.norm = _FeatureBatchNorm(x.shape[-1]).double()
    with torch.no_grad():
        batch1 = max_abs(block.train()(x)[:1], block.train()(x[:1]))
        modes = max_abs(block.train()(x), block.eval()(x))
    return {"bn_batch1_diff": batch1, "bn_train_eval_diff": modes}


class _FeatureBatchNorm(torch.nn.BatchNorm1d):
    """BatchNorm1d on (B, L, d): statistics per feature over the batch and the positions."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


@claim(
    "T09",
    anchors=(
        ("002", "核心思想", "不依赖批次中的其他样本"),
        ("002", "核心思想", "不受批次大小影响"),
        ("002", "对Transformer的特殊意义", "推理时批次大小为1也能正常工作"),
        ("002", "对Transformer的特殊意义", "层归一化不需要"),
        ("002", "Layer Normalization vs Batch Normalization", "独立处理每个样本 | 依赖批次中的其他样本"),
        ("002", "Layer Normalization vs Batch Normalization", "无需额外统计 | 需要运行统计"),
        ("002", "Layer Normalization vs Batch Normalization", "每个样本独立计算 | 跨样本计算"),
        ("002", "在Transformer中的选择", "推理时批次大小可能为1"),
    ),
    claim=(
        "LayerNorm normalizes each sample on its own, independently of the other samples and of the batch size: "
        "it works with a batch of 1 at inference and needs no running statistics, which BatchNorm needs."
    ),
    statement=(
        "Holds. nn.LayerNorm keeps {ln_buffers} buffers (BatchNorm1d keeps {bn_buffers}: running mean, "
        "variance and a counter). A Pre-LN Transformer block gives a sequence the same output alone "
        "(batch of 1) as inside a batch of 8 (difference {batch1_diff:.2g}) and the same in training and "
        "evaluation mode (difference {train_eval_diff:.2g})."
    ),
    verdict="holds",
    answer_zh=(
        "成立：nn.LayerNorm 不保存缓冲量（BatchNorm1d 保存 {bn_buffers} 个：运行均值、方差和计数器），Pre-LN Transformer "
        "块对一条序列单独（批量为 1）与放在 8 条的批次中的输出相差 {batch1_diff:.2g}，训练与评估模式下相差 "
        "{train_eval_diff:.2g}。"
    ),
    # float64; batched and single-sample matmuls may differ in summation order, hence 1e-12 rather than 0.
    decide=lambda n: {"no_running_stats": n["ln_buffers"] == 0 and n["bn_buffers"] == 3,
                      "batch1_same": n["batch1_diff"] < 1e-12, "modes_same": n["train_eval_diff"] == 0.0},
    # A world where the block's norm were BatchNorm: running statistics kept, and a sequence's output depends
    # on its batch and on the mode (measured with a BatchNorm1d in the block's place).
    null=lambda n: {**n, "ln_buffers": n["bn_buffers"], "batch1_diff": n["bn_batch1_diff"],
                    "train_eval_diff": n["bn_train_eval_diff"]},
)
def t09() -> dict:
    """The evidence for T09. See book/03_transformer.ipynb, section "Inference"."""
    torch.manual_seed(41)
    block = TransformerBlock(32).double()
    x = randn(8, 12, 32, seed=42)
    with torch.no_grad():
        alone = block(x[:1])
        diff = max_abs(block(x)[:1], alone)
        train_eval = max_abs(block.train()(x), block.eval()(x))
    return {"ln_buffers": len(list(torch.nn.LayerNorm(8).buffers())),
            "bn_buffers": len(list(torch.nn.BatchNorm1d(8).buffers())), "batch1_diff": diff,
            "train_eval_diff": train_eval, **batchnorm_block_diffs(x)}


# ----------------------------------------------------------------------------- T10: the unbiased-std pitfall


def ln_unbiased(x: torch.Tensor) -> torch.Tensor:
    """The pitfall: LayerNorm written with torch.std's default, the unbiased (n − 1) estimator."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)


def ln_fixed(x: torch.Tensor) -> torch.Tensor:
    """The fix: correction=0 (unbiased=False in older code), the n in σ² = Σ(x − μ)²/n."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)


def unbiased_gap(widths=(2, 4, 8, 16, 64, 256, 768, 4096), seed: int = 43) -> list[dict[str, float]]:
    """Per width d, on a random row: the elementwise ratio of the buggy version to PyTorch's own layer_norm
    (its fused kernel, ε = 0: a route independent of ``ln_fixed``), its smallest and largest element, and
    the closed form √((d−1)/d). The claim is about every element, so the extremes decide."""
    out = []
    for d in widths:
        x = randn(d, seed=seed + d)
        ratio = ln_unbiased(x) / torch.nn.functional.layer_norm(x, (d,), eps=0.0)  # (d,)
        out.append({"d": d, "min": float(ratio.min()), "max": float(ratio.max()), "closed": math.sqrt((d - 1) / d)})
    return out


@claim(
    "T10",
    anchors=(("002", "1. 计算均值和方差", "\\sigma^2 = \\frac{1}{d} \\sum"),),
    claim=(
        "The source's variance divides by d (the population variance). Beyond the source, a common pitfall: a "
        "LayerNorm written with the unbiased standard deviation (torch.std's default, dividing by d − 1) is a "
        "different function."
    ),
    statement=(
        "Holds. On x = (1, 0, 0, 0) the unbiased version gives {buggy_max:.4g} where LayerNorm gives "
        "{correct_max:.4g} (√3); torch.std(correction=0) fixes it (difference from torch's layer_norm "
        "{fixed_vs_torch:.2g}). The two differ by the constant factor √((d−1)/d) for every input: on random rows "
        "from d = 2 to 4096, every element of the unbiased version divided by torch's own layer_norm is within "
        "{ratio_err:.2g} of the closed form. The gap is {gap_4:.1%} at d = 4, {gap_768:.3%} at d = 768. A learned "
        "γ can absorb the factor, so training does not notice; loading weights trained with the other "
        "convention does."
    ),
    verdict="holds",
    kind="derivation",
    answer_zh=(
        "成立：在 x = (1, 0, 0, 0) 上用无偏标准差写的版本给出 {buggy_max:.4g}，而层归一化给出 {correct_max:.4g}（√3）；"
        "两者对任意输入都相差常数因子 √((d−1)/d)（与闭式相差不超过 {ratio_err:.2g}），d = 4 时差 {gap_4:.1%}，d = 768 时差 "
        "{gap_768:.3%}，torch.std(correction=0) 可修正（与 torch 的 layer_norm 相差 {fixed_vs_torch:.2g}）。"
    ),
    decide=lambda n: {
        # Hand arithmetic (tests/test_transformer.py): deviations (3/4, −1/4, −1/4, −1/4), sample std 1/2, population √3/4.
        "buggy_is_1_5": abs(n["buggy_max"] - 1.5) < 1e-12,
        "correct_is_sqrt3": abs(n["correct_max"] - math.sqrt(3)) < 1e-12,
        # float64, two implementations of the population formula: rounding only.
        "fix_matches_torch": n["fixed_vs_torch"] < 1e-12,
        # The buggy version against PyTorch's kernel, element by element, at every width: rounding only.
        "constant_factor": n["ratio_err"] < 1e-12,
    },
    # A world without the pitfall, where torch.std defaulted to the population estimator: the hand-written
    # version is LayerNorm itself, so its ratio to torch's layer_norm is 1, off the closed form by the gap at d = 2.
    null=lambda n: {**n, "buggy_max": n["correct_max"], "ratio_err": n["gap_2"]},
)
def t10() -> dict:
    """The evidence for T10. See book/03_transformer.ipynb, section "A pitfall the source does not mention: the unbiased standard deviation"."""
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)
    gaps = unbiased_gap()
    ratio_err = max(max(g["max"] - g["closed"], g["closed"] - g["min"]) for g in gaps)
    rows = randn(16, 64, seed=44)
    gap = {g["d"]: 1 - g["closed"] for g in gaps}
    return {"buggy_max": float(ln_unbiased(x).max()), "correct_max": float(ln_fixed(x).max()),
            "fixed_vs_torch": max_abs(ln_fixed(rows), torch.nn.functional.layer_norm(rows, (64,), eps=0.0)),
            "ratio_err": ratio_err, "gap_2": gap[2], "gap_4": gap[4], "gap_768": gap[768]}


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float | int]:
    """The chapter's exercise answers, computed (tests/test_transformer.py checks them by hand)."""
    x32 = torch.tensor(1e8, dtype=torch.float32)
    d = 2
    while 1 - float(ln_unbiased(one_hot(d))[0] / ln_fixed(one_hot(d))[0]) >= 1e-3:  # search, not the closed form
        d += 1
    f = flops_per_token(768, 512)
    return {
        "onehot_768": one_hot_max(768),
        "unbiased_gap_below_0_1pct_at": d,
        "float32_spacing_at_1e8": float(torch.nextafter(x32, torch.tensor(float("inf"))) - x32),
        "ln_flop_share_768_512": f["layernorm"] / (f["matmul"] + f["attention"]),
    }
