"""Chapter 4 (seed 003), book/04_why: BatchNorm in Transformers and LayerNorm as gain control, claims
W03–W05 and W12.

Sections of the chapter: "Why BatchNorm does not fit Transformers" (W03, W04, W12) and "What LayerNorm
does instead: gain control" (W05). The chapter's first section, "Is it internal covariate shift?"
(W01, W02, W13), is :mod:`lnbook.experiments.why`; the published models, RMSNorm, Pre-Norm, Post-Norm
and FP16 are :mod:`lnbook.experiments.why_models`.

Every experiment is seeded and small. Functions named after a quantity return data (for figures and
the prose); the functions decorated with :func:`lnbook.claims.claim` return one claim's numbers, which
its ``decide`` turns into checks.
"""

from __future__ import annotations

import functools
import math

import torch

from lnbook import args, norms
from lnbook.claims import claim
from lnbook.experiments.common import F64, ln, max_abs, one_thread, randn
from lnbook.experiments.toys import padded_batch

CHAPTER = "book/04_why"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- part 2: BN in Transformers


def padding_dilution(feature_mean: float) -> dict[str, float]:
    """The source's batch (100 and 5 tokens, padded to 100): BN statistics with padding, against closed forms.

    With a share p of real positions, a per-feature mean m and variance v over the real tokens, the
    statistics over all positions are exactly p·m and p·v + p(1 − p)·m².
    """
    x, mask = padded_batch(feature_mean=feature_mean)  # (B, T, H), (B, T)
    real, flat = x[mask], x.reshape(-1, x.shape[-1])  # (tokens, H), (positions, H)
    p = float(mask.double().mean())
    m, v = real.mean(0), real.var(0, correction=0)
    pad_m, pad_v = flat.mean(0), flat.var(0, correction=0)
    bn = norms.batch_norm(x.transpose(1, 2), None, None, training=True).transpose(1, 2)[mask]  # (tokens, H)
    return {"share_real": p,
            "mean_ratio": float((pad_m / m).mean()), "var_ratio": float((pad_v / v).mean()),
            "closed_form_err": max(max_abs(pad_m, p * m), max_abs(pad_v, p * v + p * (1 - p) * m * m)),
            "bn_out_mean": float(bn.mean(0).mean()), "bn_out_std": float(bn.std(0, correction=0).mean()),
            "m2_over_v": float((m * m / v).mean()),
            "ln_pad_diff": max_abs(ln(x, eps=1e-5)[mask], ln(real, eps=1e-5))}


def _decide_w03(n: dict) -> dict[str, bool]:
    p = n["share_real"]
    return {
        # The closed forms are algebraic identities: float64 rounding is all that separates them from the
        # statistics computed over the padded positions.
        "closed_forms": n["closed_form_err"] < 1e-12,
        "share_is_105_of_200": p == 105 / 200,
        "mean_scaled_by_p": abs(n["mean_ratio"] - p) < 1e-12,
        "var_diluted_when_p_m2_small": n["var_ratio_centered"] < 1 and p * n["m2_over_v_centered"] < 1,
        "var_inflated_when_p_m2_large": n["var_ratio_shifted"] > 1 and p * n["m2_over_v_shifted"] > 1,
        # A standardized output has mean 0; 0.3 is far beyond what 105 tokens' own sampling moves it.
        "bn_output_off": abs(n["bn_out_mean"]) > 0.3,
        # 1/√p from the closed form; ε = 1e-5 and the sample's own spread move it by well under 1 %.
        "centered_std_is_inv_sqrt_p": abs(n["bn_out_std_centered"] * math.sqrt(p) - 1) < 0.01,
        "ln_unaffected": n["ln_pad_diff"] < 1e-12,
    }


@claim(
    "W03",
    anchors=(('003', '第二、 为什么BN在Transformer里水土不服？', '剩下的95个位置全是0'),
             ('003', '第二、 为什么BN在Transformer里水土不服？', '这些0全被算进去了'),
             ('003', '第二、 为什么BN在Transformer里水土不服？', '均值和方差被严重稀释')),
    claim="Padding a batch with a 100-token and a 5-token sentence puts 95 zeros into BatchNorm's statistics "
    "and severely dilutes its mean and variance, so they no longer represent the real data; LayerNorm is unaffected.",
    statement=(
        "Holds under conditions: always for the mean, for the variance only under a condition. With a share "
        "p = {share_real:.3f} of real positions (105 of 200), BatchNorm's mean is exactly p times the real one; "
        "its variance is p·v + p(1 − p)·m², which is diluted only when p·m² < v: for zero-mean features it "
        "shrinks to {var_ratio_centered:.3f} of the real one, for features with mean 2 and variance 1 it grows "
        "to {var_ratio_shifted:.2f} of it. Either way the real tokens no longer come out standardized: with "
        "mean-2 features their BatchNorm outputs have mean {bn_out_mean:.2f} instead of 0, with zero-mean "
        "features standard deviation {bn_out_std_centered:.2f} (1/√p) instead of 1. LayerNorm of the real "
        "tokens is unchanged by the padding."
    ),
    verdict="holds under conditions",
    kind="derivation",
    decide=_decide_w03,
    # A world where the padded positions are masked out of BatchNorm's sums: its statistics are the real
    # tokens' own (ratios 1) and the real tokens come out standardized.
    null=lambda n: {**n, "mean_ratio": 1.0, "var_ratio_centered": 1.0, "var_ratio_shifted": 1.0,
                    "bn_out_mean": 0.0, "bn_out_std": 1.0, "bn_out_std_centered": 1.0},
    answer_zh=(
        "有条件成立：均值总被按真实位置占比 p = {share_real:.3f} 精确地缩小，方差只有在 p·m² < v 时才被稀释（零均值特征"
        "缩小到 {var_ratio_centered:.3f} 倍，均值为 2 的特征反而放大到 {var_ratio_shifted:.2f} 倍）；两种情况下真实 token 的 "
        "BatchNorm 输出都不再是标准化的，而 LayerNorm 完全不受填充影响。"
    ),
)
def w03() -> dict:
    """The evidence for W03. See book/04_why.ipynb, section "Why BatchNorm does not fit Transformers"."""
    centered, shifted = padding_dilution(0.0), padding_dilution(2.0)
    return {"share_real": shifted["share_real"], "mean_ratio": shifted["mean_ratio"],
            "var_ratio_centered": centered["var_ratio"], "var_ratio_shifted": shifted["var_ratio"],
            "bn_out_mean": shifted["bn_out_mean"], "bn_out_std": shifted["bn_out_std"],
            "bn_out_std_centered": centered["bn_out_std"],
            "ln_pad_diff": max(centered["ln_pad_diff"], shifted["ln_pad_diff"]),
            "closed_form_err": max(centered["closed_form_err"], shifted["closed_form_err"]),
            "m2_over_v_centered": centered["m2_over_v"], "m2_over_v_shifted": shifted["m2_over_v"]}


def _sequence_bn(x: torch.Tensor, **kw) -> torch.Tensor:
    """BatchNorm of token sequences (B, T, H): statistics per feature over all B·T positions."""
    return norms.batch_norm(x.transpose(1, 2), **kw).transpose(1, 2)


def batch_one_effects(t: int = 32, h: int = 16, seed: int = 40) -> dict[str, float | str]:
    """What BatchNorm does at batch size 1 (vectors) and 2, and to a single sentence (1, T, H)."""
    x = randn(2, h, seed=seed)
    try:
        norms.batch_norm(x[:1], None, None, training=True)
        error = "no error"
    except ValueError as e:
        error = type(e).__name__
    pair = norms.batch_norm(x, None, None, training=True, eps=0.0)  # two samples: every entry is ±1
    sentence = randn(1, t, h, seed=seed + 1) + randn(1, 1, h, seed=seed + 2)  # its own per-feature offset
    later = sentence.clone()
    later[0, -1] += 3.0  # change only the last token
    stat = dict(running_mean=None, running_var=None, training=True)
    leak = max_abs(_sequence_bn(later, **stat)[0, 0], _sequence_bn(sentence, **stat)[0, 0])
    ln_leak = max_abs(ln(later, eps=1e-5)[0, 0], ln(sentence, eps=1e-5)[0, 0])
    # Running statistics from 50 other training sentences, each with its own offset, then evaluation.
    rm, rv = torch.zeros(h, dtype=F64), torch.ones(h, dtype=F64)
    for i in range(50):
        other = randn(1, t, h, seed=seed + 10 + 2 * i) + randn(1, 1, h, seed=seed + 11 + 2 * i)
        _sequence_bn(other, running_mean=rm, running_var=rv, training=True)
    train_eval = max_abs(_sequence_bn(sentence, **stat),
                         _sequence_bn(sentence, running_mean=rm, running_var=rv, training=False))
    return {"batch1_error": error, "pair_abs_dev": float((pair.abs() - 1).abs().max()),
            "future_leak": leak, "ln_future_leak": ln_leak, "train_eval_gap": train_eval}


@claim(
    "W04",
    anchors=(("002", "Layer Normalization vs Batch Normalization", "小批次时效果差"),
             ("000", "5. 为什么 NLP/Transformer 偏爱 LayerNorm？", "甚至只有 1 或 2"),
             ('003', '第二、 为什么BN在Transformer里水土不服？', 'BN严重依赖Batch Size'),
             ('003', '第二、 为什么BN在Transformer里水土不服？', 'Batch Size为1的时候，BN直接就废了'),
             ('003', '第二、 为什么BN在Transformer里水土不服？', 'LayerNorm是独立于Batch Size的'),
             ('003', '第二、 为什么BN在Transformer里水土不服？', '我不看隔壁那句话'),
             ('003', '为什么不用Instance Norm、Group Norm？', '是从哪来的（Batch无关）'),
             ('003', '为什么不用Instance Norm、Group Norm？', '不假设你的Batch大还是小')),
    claim="BatchNorm depends heavily on the batch size (small batches give noisy statistics); at batch size 1 it "
    "fails (running statistics do not help in training). LayerNorm is independent of the batch: it uses only the "
    "current sample's features ('only my own sentence's word vectors', which for a Transformer we read as: only "
    "each token's own features, the reading the check tests)",
    statement=(
        "Holds under conditions. For one vector per sample it holds outright: a training batch of one cannot be "
        "normalized ({batch1_error}), and a batch of two keeps only the sign of each feature's difference "
        "(every output is ±1, largest deviation {pair_abs_dev:.2g}). In a Transformer BatchNorm would pool "
        "the B·T positions, so one sentence still gives statistics, but they are that sentence's: changing "
        "its last token changes the first token's output by {future_leak:.3f} (LayerNorm: {ln_future_leak:.1g}), "
        "which in a causal model leaks the future into the past, and the same sentence comes out up to "
        "{train_eval_gap:.2f} apart in training and evaluation mode (running statistics). How the noise of batch "
        "statistics falls with the batch size (as B^(-1/2)) is chapter 2's M03."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        "batch1_refused": n["batch1_error"] == "ValueError",
        # ε = 0: (a − b)/|a − b| is ±1 up to float64 rounding.
        "pair_is_sign": n["pair_abs_dev"] < 1e-12,
        # 0.01 against LayerNorm's exact 0: a change of the last token visible in the first token's output.
        "bn_leaks_future": n["future_leak"] > 0.01, "ln_no_leak": n["ln_future_leak"] == 0.0,
        # 0.1 in outputs of unit scale: a difference a reader would see, far above rounding.
        "train_eval_differ": n["train_eval_gap"] > 0.1,
    },
    # A world where BatchNorm took its statistics within each token, as LayerNorm does: a batch of one is
    # fine, no token sees another, and training and evaluation agree.
    null=lambda n: {**n, "batch1_error": "no error", "pair_abs_dev": 1.0, "future_leak": n["ln_future_leak"],
                    "train_eval_gap": 0.0},
    answer_zh=(
        "有条件成立：对每个样本一个向量的情形完全成立——批量为 1 无法归一化（{batch1_error}），批量为 2 只剩正负号；在 "
        "Transformer 中 BatchNorm 会汇总 B·T 个位置，单句也有统计量，但改动最后一个 token 会使第一个 token 的输出变化 "
        "{future_leak:.3f}（LayerNorm 为 {ln_future_leak:.1g}），同一句在训练与推理模式下相差可达 {train_eval_gap:.2f}。"
    ),
)
def w04() -> dict:
    """The evidence for W04. See book/04_why.ipynb, section "Why BatchNorm does not fit Transformers"."""
    return batch_one_effects()


# ----------------------------------------------------------------------------- tokens: relative sizes


def token_magnitudes(seed: int = 90) -> dict[str, float]:
    """Two tokens in the same direction, one 3× the other: what LayerNorm and BatchNorm keep of their sizes."""
    base = randn(1, 8, seed=seed)
    tokens = torch.cat([base, 3 * base, randn(6, 8, seed=seed + 1)])  # (8 tokens, 8 features)
    y_ln = ln(tokens, eps=0.0)
    bn = norms.batch_norm(tokens, None, None, training=True, eps=0.0)  # per feature, across the tokens
    gap = lambda y: float((y[1] - y[0]).norm() / (y[1].norm() + y[0].norm()))
    # BatchNorm is an increasing affine map per feature: differences between tokens keep their ratios.
    dx, dy = tokens[1:] - tokens[:-1], bn[1:] - bn[:-1]
    ratio = (dy / dx)  # per feature the same factor 1/σ_j for every pair of tokens
    return {"ln_gap": gap(y_ln), "bn_gap": gap(bn), "raw_gap": gap(tokens),
            "bn_ratio_spread": float((ratio.max(0).values - ratio.min(0).values).abs().max())}


@claim(
    "W12",
    anchors=(('003', '第二、 为什么BN在Transformer里水土不服？', 'BN强行把所有Token在同一个特征维度上拉齐'),
             ('003', '第二、 为什么BN在Transformer里水土不服？', '这保留了Token之间的相对大小关系')),
    claim="BatchNorm forces all tokens into line on each feature and destroys subtle differences between "
    "tokens; LayerNorm works inside each token and so keeps the relative sizes of tokens.",
    statement=(
        "Does not hold: it is the other way round. LayerNorm erases a token's size: a token and the same "
        "token scaled by 3 come out identical (relative gap {ln_gap:.1g}, against {raw_gap:.2f} before). "
        "BatchNorm is an increasing affine map of each feature across tokens, so it keeps every ordering "
        "and every ratio of differences between tokens (per-feature factor constant to {bn_ratio_spread:.1g}); "
        "the two tokens stay {bn_gap:.2f} apart. What LayerNorm keeps is the pattern within a token; this is "
        "the gain control of W05, and the source's own later section says so."
    ),
    verdict="does not hold",
    kind="derivation",
    decide=lambda n: {
        # LN(3x) = LN(x) exactly at ε = 0: float64 rounding only.
        "ln_erases_size": n["ln_gap"] < 1e-12,
        # 0.1: a gap between the two tokens a reader would see (before any norm it is raw_gap).
        "bn_keeps_gap": n["bn_gap"] > 0.1,
        # float64 differences of O(1) values: rounding only.
        "bn_affine_per_feature": n["bn_ratio_spread"] < 1e-9,
    },
    # The source's world: LayerNorm keeps the two tokens' relative size (their gap is the raw one) and
    # BatchNorm forces them into line (no gap, and no common factor per feature).
    null=lambda n: {**n, "ln_gap": n["raw_gap"], "bn_gap": 0.0, "bn_ratio_spread": 1.0},
    answer_zh=(
        "不成立：恰恰相反——LayerNorm 抹掉了 token 的大小（一个 token 与其 3 倍版本输出相同，相对差 {ln_gap:.1g}），而 "
        "BatchNorm 在每个特征上对所有 token 做同一个递增仿射变换，保留了 token 之间的顺序与差值比例（两者仍相差 {bn_gap:.2f}）。"
    ),
)
def w12() -> dict:
    """The evidence for W12. See book/04_why.ipynb, section "Why BatchNorm does not fit Transformers"."""
    return token_magnitudes()


# ----------------------------------------------------------------------------- why LN wins: gain control


def mixed_norm_tokens(t: int = 16, d: int = 64, spread: float = 32.0, seed: int = 50) -> torch.Tensor:
    """t random-direction tokens (t, d) whose norms rise geometrically from √d to spread·√d (the last is largest)."""
    op = "mixed_norm_tokens"
    args.check_number(op, "t", t, lambda v: v >= 2, "an int >= 2", integral=True)
    args.check_number(op, "d", d, lambda v: v >= 2, "an int >= 2", integral=True)
    args.check_number(op, "spread", spread, lambda v: v >= 1, "a number >= 1")
    z = randn(t, d, seed=seed)
    scale = spread ** torch.linspace(0, 1, t, dtype=F64)  # (t,)
    return z / z.norm(dim=1, keepdim=True) * math.sqrt(d) * scale[:, None]


def attention_stats(x: torch.Tensor, use_ln: bool, seed: int = 51) -> dict[str, float]:
    """Softmax(q·k/√d) self-attention over tokens x (t, d) with random W_q, W_k (entries N(0, 1/d)).

    Returns the mean entropy of a query's attention (log t = uniform), the mean share of attention
    given to the largest-norm token, the fraction of queries whose top key it is, and the mean trace
    of the softmax Jacobian, 1 − Σp² (0 for one-hot attention: no gradient flows into the scores).
    """
    if not isinstance(x, torch.Tensor):
        raise args.arg_error(TypeError, "attention_stats", "x", "a torch.Tensor", type(x).__name__)
    if x.dim() != 2 or x.shape[0] < 2:
        raise args.arg_error(ValueError, "attention_stats", "x", "a (tokens >= 2, d) matrix", tuple(x.shape))
    t, d = x.shape
    w_q, w_k = randn(d, d, seed=seed) / math.sqrt(d), randn(d, d, seed=seed + 1) / math.sqrt(d)
    h = ln(x.to(F64), eps=1e-5) if use_ln else x.to(F64)
    p = torch.softmax((h @ w_q.T) @ (h @ w_k.T).T / math.sqrt(d), dim=-1)  # (t, t), rows sum to 1
    big = int(x.norm(dim=1).argmax())
    return {"entropy": float(-torch.xlogy(p, p).sum(-1).mean()), "uniform_entropy": math.log(t),
            "share_largest": float(p[:, big].mean()), "top_is_largest": float((p.argmax(-1) == big).double().mean()),
            "softmax_grad": float((1 - (p * p).sum(-1)).mean())}


GAIN_SPREADS = (1, 2, 4, 8, 16, 32, 64)


@functools.cache
def gain_sweep() -> dict[str, list[dict[str, float]]]:
    """attention_stats over token-norm spreads, without ("none") and with ("ln") LayerNorm."""
    with one_thread():
        return {key: [attention_stats(mixed_norm_tokens(spread=s), use_ln=key == "ln") for s in GAIN_SPREADS]
                for key in ("none", "ln")}


def direction_kept(mean_over_std: float = 1.0, d: int = 64, seed: int = 52) -> dict[str, float]:
    """cos(LN(x), x) and cos(RMSNorm(x), x) for a token whose mean is ``mean_over_std`` standard deviations."""
    z = randn(d, seed=seed)
    x = (z - z.mean()) / z.std(correction=0) + mean_over_std  # mean/std exactly as asked
    cos = lambda a: float(a @ x / (a.norm() * x.norm()))
    return {"cos_ln": cos(ln(x, eps=0.0)), "cos_rms": cos(norms.rms_norm(x, (d,), eps=0.0)),
            "closed_form": 1 / math.sqrt(1 + mean_over_std**2)}


@claim(
    "W05",
    anchors=(('003', '为什么LN能赢？', '只保留了方向（Direction）'),
             ('003', '为什么LN能赢？', '模长大的Token会主导整个Attention'),
             ('003', '为什么LN能赢？', 'LN强制把所有Token的能量拉到同一个水平线上'),
             ('003', '为什么LN能赢？', '谁跟Query的方向一致，谁的Attention就高'),
             ('003', '为什么LN能赢？', '真正的物理意义：Gain Control')),
    claim="LayerNorm removes a token's magnitude and keeps its direction, putting every token at the same energy so "
    "that attention goes by direction; without it, large-norm tokens dominate the attention scores and the softmax "
    "turns one-hot, so gradients vanish (gain control)",
    statement=(
        "Holds under conditions. Magnitude: after LayerNorm every token has the same norm, and attention does "
        "not depend on the tokens' norms at all (up to ε). Without it, tokens whose norms span a factor "
        "{max_spread} give attention of entropy {entropy_none:.2f} nats against {entropy_ln:.2f} with LayerNorm, "
        "and the softmax Jacobian's trace, which carries the gradient, falls to {grad_none:.3f} (with LayerNorm "
        "{grad_ln:.3f}). But the largest-norm token does not simply dominate: a large key amplifies its score "
        "with either sign, so it is the top key for only {top_none:.0%} of the queries; a score is the product "
        "of both norms and a cosine, so a large query saturates its own softmax as much as a large key does. "
        "Direction: LayerNorm keeps the direction of the centred token, not of the token (for a token whose "
        "mean equals its standard deviation, cos(LN(x), x) = 1/√2, as the closed form says); RMSNorm keeps "
        "it exactly."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # Half: saturation and a starved gradient well beyond the draw-to-draw scatter of random tokens.
        "saturates_without_ln": n["entropy_none"] < 0.5 * n["entropy_ln"],
        "gradient_collapses": n["grad_none"] < 0.5 * n["grad_ln"],
        # The token directions are the same at every spread; only ε = 1e-5 against σ² ≥ 1 differs.
        "ln_ignores_norms": n["ln_entropy_range"] < 1e-4,
        # 0.9: "dominates" would make the largest token the top key for (nearly) every query.
        "largest_not_always_top": n["top_none"] < 0.9,
        # float64 against the closed form 1/√(1 + (μ/σ)²): rounding only.
        "ln_direction_closed_form": abs(n["cos_ln"] - n["cos_closed_form"]) < 1e-12,
        "rms_keeps_direction": abs(n["cos_rms"] - 1) < 1e-12,
    },
    # A world without gain control: attention without LayerNorm is as spread out, and passes as much
    # gradient, as with it.
    null=lambda n: {**n, "entropy_none": n["entropy_ln"], "grad_none": n["grad_ln"]},
    answer_zh=(
        "有条件成立：经过 LayerNorm 后注意力与 token 的模长完全无关；没有它时，模长跨 {max_spread} 倍的 token 使注意力"
        "熵降到 {entropy_none:.2f} nat（有 LayerNorm 为 {entropy_ln:.2f}），携带梯度的 softmax 雅可比迹降到 {grad_none:.3f}"
        "（有 LayerNorm 为 {grad_ln:.3f}）；但模长最大的 token 只是 {top_none:.0%} 的 query 的首选，并非简单“主导”，而且 "
        "LayerNorm 保留的是中心化后向量的方向（均值等于标准差时 cos = 1/√2），RMSNorm 才完全保留方向。"
    ),
)
def w05() -> dict:
    """The evidence for W05. See book/04_why.ipynb, section "What LayerNorm does instead: gain control"."""
    sweep, direction = gain_sweep(), direction_kept()
    none, ln = sweep["none"][-1], sweep["ln"][-1]
    ln_entropies = [s["entropy"] for s in sweep["ln"]]
    return {"t": 16, "max_spread": GAIN_SPREADS[-1], "entropy_none": none["entropy"], "entropy_ln": ln["entropy"],
            "uniform_entropy": ln["uniform_entropy"], "ln_entropy_range": max(ln_entropies) - min(ln_entropies),
            "grad_none": none["softmax_grad"], "grad_ln": ln["softmax_grad"],
            "top_none": none["top_is_largest"], "share_none": none["share_largest"],
            "cos_ln": direction["cos_ln"], "cos_rms": direction["cos_rms"], "cos_closed_form": direction["closed_form"]}
