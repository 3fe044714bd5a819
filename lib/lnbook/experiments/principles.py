"""Chapter 2 (seed 001), book/02_principles: the computations behind claims M01–M03 and M09–M11.

Sections of the chapter: "One sample under a magnifying glass" (M01, M11), "The normalization zoo" (M02),
"Going it alone" (M03), "A symphony of features" (M09) and "Shift invariance, exactly and in floating
point" (M10), and the exercises; "When the volume is turned up" (M04, M12, M05) is
:mod:`lnbook.experiments.principles_stream`, "γ and β" (M06–M08) :mod:`lnbook.experiments.principles_affine`.

Principles and mechanisms: one sparse sample normalized by hand, what LayerNorm does to one loud feature,
the normalization zoo on (N, C, H, W) read off each reference's Jacobian, batch independence, a stream
whose volume jumps (and a linear readout learning on it online, five seeds at four learning rates), the
norm of x̂ and the curvature it fixes, how the Jacobian couples features, and shift invariance in floating
point. Everything is seeded and small (these checks take about 4 s of CPU, M12's readouts 2.3 s of it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import sympy as sp
import torch

from lnbook import args, norms, symbolic
from lnbook.claims import claim
from lnbook.experiments.common import F64, ln, ln_grads, loglog_slope, max_abs, randn
from lnbook.experiments.toys import SPARSE, sparse_example

CHAPTER = "book/02_principles"  # the chapter that shows this module's claims
# The headings of seed 001 that this module's claims answer, as the seed writes them.
ONE_SAMPLE, ZOO, ALONE = "用放大镜看单个样本", "归一化动物园：关键在于分组", "单打独斗的力量"
AFFINE, SYMPHONY = "可学习参数的隐藏天才", "特征的交响乐"
# ----------------------------------------------------------------------------- §1: one sample


def _decide_m01(n) -> dict[str, bool]:
    # The computed outputs against the closed forms for k equal loud values among n, x̂ = √((n−k)/k) and
    # −√(k/(n−k)), worked out by hand: float64 rounding only (≈ 1e-16 relative), hence 1e-14.
    close = lambda a, b: abs(a - b) <= 1e-14 * max(1.0, abs(b))
    return {
        "mu": n["mu"] == n["mu_closed"], "sigma": close(n["sigma"], n["sigma_closed"]),
        "big": close(n["big"], n["big_closed"]), "small": close(n["small"], n["small_closed"]),
        "source_rounding": (round(n["sigma"], 3), round(n["big"], 2), round(n["small"], 2)) == (2.165, 1.73, -0.58),
        # Closer together: the range shrinks, by exactly 1/σ (rounding only).
        "closer": n["range_out"] < n["range_in"] and close(n["range_ratio"], 1 / n["sigma"]),
        # A mean of 8 values of size ≤ 2 and a std: float64 rounding, ≈ 1e-16.
        "dense": n["zeros_out"] == 0, "mean_zero": abs(n["out_mean"]) < 1e-15, "std_one": n["out_std_err"] < 1e-15,
        "eps_factor": close(n["eps_factor"], n["eps_factor_closed"]),
    }


def _rms_world(n) -> dict:
    """The numbers M01 would show if LayerNorm did not subtract the mean (RMSNorm, ε = 0): each input
    μ + σx̂ is divided by the root mean square √(μ² + σ²)."""
    rms = math.sqrt(n["mu"] ** 2 + n["sigma"] ** 2)
    return {**n, "big": (n["mu"] + n["sigma"] * n["big"]) / rms, "small": (n["mu"] + n["sigma"] * n["small"]) / rms,
            "zeros_out": n["n"] - n["k"], "out_mean": n["mu"] / rms, "out_std_err": abs(n["sigma"] / rms - 1)}


@claim(
    "M01",
    anchors=(("001", ONE_SAMPLE, r"\frac{10}{8} = 1.25"), ("001", ONE_SAMPLE, r"\sigma \approx 2.165"),
             ("001", ONE_SAMPLE, r"2.165 \approx 1.73"), ("001", ONE_SAMPLE, r"2.165 \approx -0.58"),
             ("001", ONE_SAMPLE, "是密集的（没有零值），并且其值彼此更加接近"), ("001", ONE_SAMPLE, "每个值为零的特征现在都被激活"),
             ("001", ONE_SAMPLE, "新标准差恰好为 $1$")),
    claim="For x = (5, 5, 0, 0, 0, 0, 0, 0): μ = 1.25 and σ ≈ 2.165; each 5 becomes ≈ 1.73 and each 0 "
    "≈ −0.58; the output is dense and its values lie closer together than the input's, with mean exactly 0 "
    "and standard deviation exactly 1.",
    statement=(
        "Holds (ε = 0). μ = {mu:.4g} and σ = {sigma:.4f} (= 5√3/4); each 5 becomes {big:.4f} (= √3) and each "
        "0 becomes {small:.4f} (= −1/√3). No output is zero, and their mean and standard deviation are 0 and 1 "
        "to float64 rounding. The values lie closer together (range {range_out:.3f} against 5) only because "
        "this σ exceeds 1: LayerNorm divides every spread by σ, so an input with σ < 1 would be spread apart. "
        "With PyTorch's default ε = 10⁻⁵ every output shrinks by the factor σ/√(σ²+ε), negligibly here, where "
        "σ² is far above ε."
    ),
    verdict="holds",
    kind="derivation",
    decide=_decide_m01,
    # The world without the mean subtraction (RMSNorm): each 5 becomes 2, each 0 stays 0, the mean is 0.5.
    null=_rms_world,
    answer_zh="成立（ε = 0）：μ = {mu:.4g}，σ = {sigma:.4f}（= 5√3/4），每个 5 变为 {big:.4f}（= √3），每个 0 变为 "
    "{small:.4f}（= −1/√3），输出无一为零，均值和标准差在 float64 舍入误差内恰为 0 和 1；数值彼此更接近"
    "（极差 {range_out:.3f}，原为 5）只因这里 σ 大于 1，σ 小于 1 的输入反而会被拉开。",
)
def m01() -> dict:
    """The evidence for M01. See book/02_principles.ipynb, section "One sample under a magnifying glass"."""
    x = sparse_example()
    y, cache = norms.layer_norm_forward(x, x.shape, eps=0.0)
    mu, sigma = float(cache.mean), float(1 / cache.rstd)
    n, k, loud = len(SPARSE), 2, SPARSE[0]  # k loud features of n
    sigma_closed = loud * math.sqrt(k * (n - k)) / n  # 5√3/4: the std of k values a among n − k zeros
    return {
        "n": n, "k": k, "mu": mu, "mu_closed": k * loud / n, "sigma": sigma, "sigma_closed": sigma_closed,
        "big": float(y[0]), "big_closed": math.sqrt((n - k) / k),
        "small": float(y[-1]), "small_closed": -math.sqrt(k / (n - k)),
        "zeros_out": int((y == 0).sum()), "out_mean": float(y.mean()),
        "out_std_err": abs(float(y.std(correction=0)) - 1), "eps_factor": float(ln(x, eps=1e-5)[0] / y[0]),
        "eps_factor_closed": sigma_closed / math.sqrt(sigma_closed**2 + 1e-5),
        "range_in": float(x.max() - x.min()), "range_out": float(y.max() - y.min()),
        "range_ratio": float((y.max() - y.min()) / (x.max() - x.min())),
    }


GAIN_WIDTHS = (8, 64, 512, 4096)


def one_loud(d: int, loud: float = 5.0) -> torch.Tensor:
    """One feature at ``loud``, the other d − 1 silent: the input where one feature shouts loudest."""
    x = torch.zeros(d, dtype=F64)  # (d,)
    x[0] = loud
    return x


def energy_shares(v: torch.Tensor) -> torch.Tensor:
    """Each feature's share of Σ (vᵢ − v̄)², the energy of the vector's deviations from its mean."""
    dev = v - v.mean(-1, keepdim=True)
    return dev.square() / dev.square().sum(-1, keepdim=True)


def _decide_m11(n) -> dict[str, bool]:
    return {
        # LayerNorm is affine within a sample, so every share of the centred energy passes through unchanged:
        # float64 rounding only.
        "shares_preserved": n["share_change"] < 1e-12,
        # The loud feature keeps (d − 1)/d of the output's energy and reaches √(d − 1), the largest |x̂ᵢ| any
        # input allows (Samuelson's bound): rounding only.
        "loud_share_closed_form": all(abs(n[f"share_{d}"] - (d - 1) / d) < 1e-12 for d in GAIN_WIDTHS),
        "loud_value_at_bound": all(abs(n[f"loud_{d}"] / math.sqrt(d - 1) - 1) < 1e-12 for d in GAIN_WIDTHS),
        # It drowns the others: over 99 % of the output's energy at d = 512, against a fair share of 1/d.
        "loud_drowns_others": n["share_512"] > 0.99,
        "example_kept": abs(n["example_loud_share"] - 0.75) < 1e-12,  # two features of 3 in x̂² = 8: 6/8
        "total_gain_fixed": n["total_energy_dev"] < 1e-12,
    }


@claim(
    "M11",
    anchors=(("001", ONE_SAMPLE, "就像一个强大的增益控制器"), ("001", ONE_SAMPLE, "没有单个特征能够“喊”得太大声"),),
    claim="LayerNorm acts as a strong gain control that ensures no single feature can shout loudly enough to "
    "drown out all the others.",
    statement=(
        "Does not hold for single features; it holds for the vector as a whole. LayerNorm fixes the total: "
        "‖x̂‖² = d, to float64 rounding. But within a sample it only subtracts μ and divides by σ, so every "
        "feature's share of the centred energy Σ(xᵢ − μ)² passes through unchanged (to rounding, over {rows} "
        "random vectors): a feature that dominates the input dominates the output. One loud feature among d "
        "becomes √(d − 1), the largest value LayerNorm can produce, and keeps (d − 1)/d of the energy: {share_8:.1%} at d = 8, {share_512:.2%} at d = 512, the others each "
        "−1/√(d − 1). In the source's own example the two loud features keep {example_loud_share:.0%} of the "
        "energy, as they had before."
    ),
    verdict="does not hold",
    kind="derivation",
    decide=_decide_m11,
    # The source's world: a gain control that evens the features out, leaving the loud one its fair share 1/d.
    null=lambda n: {**n, **{f"share_{d}": 1 / d for d in GAIN_WIDTHS}},
    answer_zh="不成立（对单个特征而言；对整个向量成立）：LayerNorm 把总能量固定为 ‖x̂‖² = d，但在样本内只做减 μ、除 σ，"
    "每个特征在中心化能量中的占比原样保留（只差舍入误差），所以 d 个特征中唯一响亮的那个变为 √(d − 1)，"
    "仍占 (d − 1)/d 的能量：d = 8 时 {share_8:.1%}，d = 512 时 {share_512:.2%}。",
)
def m11() -> dict:
    """The evidence for M11. See book/02_principles.ipynb, section "One sample under a magnifying glass"."""
    z = randn(64, 16, seed=49) * randn(64, 1, seed=50).exp() + 3  # (64, 16): rows of many scales and offsets
    y = ln(z, 0.0)
    nums = {"rows": z.shape[0], "share_change": max_abs(energy_shares(y), energy_shares(z)),
            "total_energy_dev": float((y.square().sum(-1) / z.shape[1] - 1).abs().max()),
            "example_loud_share": float(energy_shares(ln(sparse_example(), 0.0))[:2].sum())}
    for d in GAIN_WIDTHS:
        out = ln(one_loud(d), 0.0)
        nums[f"loud_{d}"], nums[f"share_{d}"] = float(out[0]), float(out[0] ** 2 / out.square().sum())
    return nums


# ----------------------------------------------------------------------------- §2: the zoo

ZOO_SHAPE = (3, 6, 2, 2)  # (N, C, H, W): small enough to draw every value
ZOO_GROUPS = 3  # GroupNorm's number of groups in the zoo


def zoo_input(shape=ZOO_SHAPE, seed: int = 30) -> torch.Tensor:
    return randn(*shape, seed=seed) * 2 + 0.5  # (N, C, H, W)


def zoo_references(groups: int = ZOO_GROUPS) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The four normalizations of lnbook.norms on (N, C, H, W), without affine, PyTorch's ε."""
    return {
        "BatchNorm": lambda x: norms.batch_norm(x, None, None, training=True),
        "LayerNorm": lambda x: norms.layer_norm(x, x.shape[1:]),
        "InstanceNorm": lambda x: norms.instance_norm(x),
        "GroupNorm": lambda x: norms.group_norm(x, groups),
    }


def zoo_torch_modules(shape=ZOO_SHAPE, groups: int = ZOO_GROUPS) -> dict[str, torch.nn.Module]:
    c = shape[1]
    mods = {"BatchNorm": torch.nn.BatchNorm2d(c), "LayerNorm": torch.nn.LayerNorm(shape[1:]),
            "InstanceNorm": torch.nn.InstanceNorm2d(c), "GroupNorm": torch.nn.GroupNorm(groups, c)}
    return {k: m.double().train() for k, m in mods.items()}


def coupling_groups(norm: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Which values ``norm`` normalizes together, read off its Jacobian: an integer label per element of x.

    Two elements share a label when each one's output depends on the other's input. Labels are
    numbered 0, 1, … in order of first appearance (x flattened). Raises ``ValueError`` when the
    dependencies do not split x into disjoint groups (then "normalized together" has no meaning).
    """
    args.check_float_tensor("coupling_groups", "x", x)
    n = x.numel()
    jac = torch.autograd.functional.jacobian(norm, x.to(F64)).reshape(n, n)
    # Within a group entries are O(1/σ); an entry is exactly 0 only for x̂_i x̂_j = −1 (M09), which
    # random data hits with probability 0. Across groups they are exact zeros.
    linked = jac.abs() > 1e-12
    first = linked.int().argmax(1)  # (n,) first element each one is linked to
    labels = torch.unique(first, return_inverse=True)[1]  # 0 .. G−1 in order of first appearance
    if not torch.equal(linked, labels[:, None] == labels[None, :]):
        raise args.arg_error(ValueError, "coupling_groups", "norm", "a map whose Jacobian is block diagonal",
                              "couplings that overlap")
    return labels.reshape(x.shape)


def group_sizes(labels: torch.Tensor) -> list[int]:
    return torch.bincount(labels.flatten()).tolist()


def draw_groups(ax, labels: torch.Tensor, title: str) -> None:
    """One panel of the zoo figure: rows are samples, each channel a block of its H·W values, one colour per group."""
    import matplotlib.pyplot as plt

    n, c = labels.shape[:2]
    hw = labels[0, 0].numel()
    grid = labels.reshape(n, c * hw)  # (N, C·H·W)
    cmap = plt.get_cmap("tab20", 20)
    ax.imshow(grid % 20, cmap=cmap, vmin=0, vmax=19, aspect="auto", interpolation="nearest")
    for k in range(1, c):
        ax.axvline(k * hw - 0.5, color="white", lw=2.5)
    for k in range(1, n):
        ax.axhline(k - 0.5, color="white", lw=2.5)
    ax.set_xticks([k * hw + (hw - 1) / 2 for k in range(c)], [f"c{k}" for k in range(c)])
    ax.set_yticks(range(n), [f"n{k}" for k in range(n)])
    ax.grid(False)
    ax.set_title(f"{title}: {int(labels.max()) + 1} groups of {group_sizes(labels)[0]}")


ZOO_KEYS = (("bn", "BatchNorm"), ("ln", "LayerNorm"), ("in", "InstanceNorm"), ("gn", "GroupNorm"))


def _decide_m02(n) -> dict[str, bool]:
    c, hw = n["C"], n["H"] * n["W"]
    # The definitions: reduce over (N, H, W), (C, H, W), (H, W), (C/G, H, W): (number of groups, size).
    expected = {"bn": (c, n["N"] * hw), "ln": (n["N"], c * hw), "in": (n["N"] * c, hw),
                "gn": (n["N"] * n["G"], c // n["G"] * hw)}
    return {
        # float64 throughout; the references and torch reduce in a different order, nothing else.
        "match_torch": n["max_torch_diff"] < 1e-12, "gn1_is_ln": n["gn1_vs_ln"] < 1e-12, "gnc_is_in": n["gnc_vs_in"] < 1e-12,
        "groups_as_defined": all((n[f"{k}_groups"], n[f"{k}_size"]) == expected[k] for k in expected),
        "affine_differs": (n["gn_params"], n["ln_params"]) == (2 * c, 2 * c * hw),
    }


@claim(
    "M02",
    anchors=(("002", "直观理解", "对批次中所有样本的同一特征维度进行归一化"),
             ("001", ZOO, "我们正在对哪一组数字一起进行归一化"), ("001", ZOO, "我们选取一个单一通道，比如通道 #3"),
             ("001", ZOO, "我们只取一张图像，比如图像 #1"), ("001", ZOO, "如果将组的大小设为仅一个通道"),
             ("001", ZOO, "如果将组设置为包含所有通道")),
    claim="On (N, C, H, W), BatchNorm, LayerNorm, InstanceNorm and GroupNorm differ only in which values are "
    "normalized together; GroupNorm with one group is LayerNorm, with one channel per group InstanceNorm.",
    statement=(
        "Holds. Read off each reference's Jacobian on a batch of shape (N, C, H, W) = {shape}, the values "
        "normalized together are the sets the definitions name, in number and in size: one channel across the "
        "batch for BatchNorm (N·H·W values), one sample for LayerNorm (C·H·W), one channel of one sample for "
        "InstanceNorm (H·W) and C/G channels of one sample for GroupNorm with G = {G} groups; each reference "
        "matches torch's module (BatchNorm2d, LayerNorm, InstanceNorm2d, GroupNorm) to float64 rounding. "
        "GroupNorm with one group equals LayerNorm over (C, H, W), and with C groups InstanceNorm, to rounding. "
        "The equality is of the normalization only: GroupNorm learns {gn_params} affine parameters (per "
        "channel), nn.LayerNorm((C, H, W)) {ln_params} (per value)."
    ),
    verdict="holds",
    kind="derivation",
    decide=_decide_m02,
    # The world where LayerNorm's reference normalized each channel of a sample on its own, as InstanceNorm does.
    null=lambda n: {**n, "ln_groups": n["in_groups"], "ln_size": n["in_size"]},
    answer_zh="成立：从各参考实现的雅可比矩阵读出，形状 {shape} 上一起归一化的值正是定义所说的集合：BatchNorm 是跨整个批次的"
    "一个通道，LayerNorm 是一个样本，InstanceNorm 是一个样本的一个通道，{G} 组的 GroupNorm 是一个样本内的 C/G 个通道；"
    "GroupNorm 取一组即 LayerNorm，取 C 组即 InstanceNorm，但相等的只是归一化本身，两者的可学习仿射参数个数不同"
    "（{gn_params} 对 {ln_params}）。",
)
def m02() -> dict:
    """The evidence for M02. See book/02_principles.ipynb, section "The normalization zoo: it is all about the grouping"."""
    x = zoo_input()
    n, c, h, w = x.shape
    refs, mods = zoo_references(), zoo_torch_modules()
    with torch.no_grad():
        torch_diff = max(max_abs(refs[k](x), mods[k](x)) for k in refs)
    count = lambda m: sum(p.numel() for p in m.parameters())
    nums = {"shape": str(tuple(x.shape)), "N": n, "C": c, "H": h, "W": w, "G": ZOO_GROUPS, "max_torch_diff": torch_diff,
            "gn1_vs_ln": max_abs(norms.group_norm(x, 1), refs["LayerNorm"](x)),
            "gnc_vs_in": max_abs(norms.group_norm(x, c), refs["InstanceNorm"](x)),
            "gn_params": count(torch.nn.GroupNorm(1, c)), "ln_params": count(torch.nn.LayerNorm((c, h, w)))}
    for key, name in ZOO_KEYS:
        sizes = group_sizes(coupling_groups(refs[name], x))
        # The smallest group: with the count, it equals the definition's only when every group does
        # (the sizes add up to N·C·H·W).
        nums[f"{key}_groups"], nums[f"{key}_size"] = len(sizes), min(sizes)
    return nums


# ----------------------------------------------------------------------------- §3: batch independence


JITTER_DRAWS = 400  # random batches per batch size: each std to a few percent


def bn_output_jitter(batch_sizes=(2, 4, 8, 16, 32, 64, 128), draws: int = JITTER_DRAWS, width: int = 16,
                     seed: int = 31):
    """Std, over ``draws`` random batches, of one fixed sample's BatchNorm output (ε = 0), mean over features.

    The sample is the first row of every batch; its B − 1 companions are redrawn. The draws are laid
    side by side as channels, so one batch_norm call normalizes all of them. Returns {B: std}.
    """
    x0 = randn(1, 1, width, seed=seed)
    comp = randn(max(batch_sizes) - 1, draws, width, seed=seed + 1)
    out = {}
    for b in batch_sizes:
        batch = torch.cat([x0.expand(1, draws, width), comp[: b - 1]]).reshape(b, draws * width)  # (B, draws·width)
        y0 = norms.batch_norm(batch, None, None, training=True, eps=0.0)[0].reshape(draws, width)
        out[b] = float(y0.std(0).mean())
    return out


@claim(
    "M03",
    anchors=(("001", ONE_SAMPLE, "且独立于任何其他样本"), ("001", ZOO, "依赖于批量中的其他所有图像"),
             ("001", ALONE, "它独立于批量大小"), ("001", ALONE, "Batch Norm 在小批量下会遇到困难")),
    claim="LayerNorm is independent of the batch size, down to a batch of one (online learning); "
    "BatchNorm's statistics become noisy in small batches.",
    statement=(
        "Holds. Normalized one at a time, as in online learning, {stream} samples get the outputs they get as "
        "one batch, to rounding. BatchNorm's output for a fixed "
        "sample moves with its companions: over {draws} random batches its standard deviation is "
        "{jitter_b4:.2f} at B = 4 and {jitter_b128:.3f} at B = 128, falling as $B^{{{jitter_slope:.2f}}}$ "
        "(sampling theory: $B^{{-1/2}}$). At B = 2 with ε = 0 every output is ±1, to rounding: only the sign of "
        "the sample's difference from its one companion survives. And at N = 1 a convolutional BatchNorm2d "
        "does not fail: in training it becomes InstanceNorm, to rounding."
    ),
    verdict="holds",
    decide=lambda n: {
        # Rows are reduced independently; only a differently vectorized reduction could differ (≤ 1e-15).
        "ln_batch_of_one": n["ln_stream_diff"] < 1e-15,
        # 400 draws per size: each std is known to a few percent, the slope over B = 8..128 to about ±0.03.
        "bn_jitter_falls": n["jitter_b4"] > n["jitter_b128"], "bn_jitter_rate": abs(n["jitter_slope"] + 0.5) < 0.1,
        # float64 rounding of a two-value mean and std.
        "bn_b2_is_sign": n["b2_dev"] < 1e-12, "bn2d_n1_is_in": n["bn2d_n1_vs_in"] < 1e-12,
    },
    # The world where BatchNorm's statistics did not depend on the batch size: its jitter flat in B.
    null=lambda n: {**n, "jitter_b128": n["jitter_b4"], "jitter_slope": 0.0},
    answer_zh="成立：{stream} 个样本逐个归一化（批量为 1，即在线学习）与整批归一化的输出在舍入误差内相同，"
    "而 BatchNorm 对同一样本的输出随同批样本变动，{draws} 次随机抽批的标准差在 B = 4 时为 {jitter_b4:.2f}，B = 128 时为 "
    "{jitter_b128:.3f}，按 $B^{{{jitter_slope:.2f}}}$ 下降。",
)
def m03() -> dict:
    """The evidence for M03. See book/02_principles.ipynb, section "Going it alone"."""
    x = randn(32, 16, seed=33)
    alone = torch.cat([ln(row[None], eps=1e-5) for row in x])
    jitter = bn_output_jitter()
    big = [b for b in jitter if b >= 8]  # the 1/√B law is asymptotic; B = 2, 4 sit off it
    b2 = norms.batch_norm(randn(2, 64, seed=34), None, None, training=True, eps=0.0)
    img = zoo_input()[:1]  # (1, C, H, W)
    return {
        "stream": x.shape[0], "ln_stream_diff": max_abs(alone, ln(x, eps=1e-5)), "draws": JITTER_DRAWS,
        "jitter_b4": jitter[4], "jitter_b128": jitter[128], "jitter_slope": loglog_slope(big, [jitter[b] for b in big]),
        "b2_dev": float((b2.abs() - 1).abs().max()),
        "bn2d_n1_vs_in": max_abs(norms.batch_norm(img, None, None, training=True), norms.instance_norm(img)),
    }


# ----------------------------------------------------------------------------- §5: coupling


def ln_jacobian(x: torch.Tensor, eps: float) -> torch.Tensor:
    """∂LN(x)/∂x by autograd, (d, d): entry [j, i] is ∂ŷ_j/∂x_i."""
    return torch.autograd.functional.jacobian(lambda v: ln(v, eps), x)


def offdiag_closed_form(x: torch.Tensor, eps: float) -> torch.Tensor:
    """−(1 + x̂_i x̂_j)/(n s) for every pair (diagonal included for shape; it is not the diagonal entry)."""
    _, cache = norms.layer_norm_forward(x, x.shape, eps=eps)
    return -(1 + torch.outer(cache.xhat, cache.xhat)) * cache.rstd / x.numel()


def sympy_offdiag_identity(n: int = 3) -> bool:
    """SymPy: the (0, 1) entry of LN's Jacobian is −(1 + x̂₀x̂₁)/(n s) for symbolic x and ε."""
    fw = symbolic.layer_norm_forward(n, symbolic.EPS)
    entry = symbolic.ln_jacobian(n, symbolic.EPS)[0, 1]
    return sp.simplify(entry + (1 + fw.xhat[0] * fw.xhat[1]) / (n * fw.s)) == 0


def _decide_m09(n) -> dict[str, bool]:
    return {
        "sympy_offdiag": n["sympy_nonzero"] == 0,
        # float64 autograd against a float64 closed form: rounding only.
        "closed_form": n["offdiag_diff"] < 1e-12,
        "generic_all_coupled": n["min_offdiag"] > 1e-6,  # entries are O(1/(n s)) ≈ 0.03; rounding is 1e-17
        # The exception: exactly the 2·k·(n − k) = 24 loud–silent entries vanish (to rounding), no others.
        "sparse_exception": n["zero_entries"] == n["loud_silent_pairs"] and n["max_zero_entry"] < 1e-15,
        "second_order_only": n["nudge"] < 0.1 * n["nudge_silent"],
        # autograd against −ε/(n s³): float64 rounding relative to an entry of size 1e-7.
        "eps_entry_closed_form": abs(n["eps_entry"] / n["eps_entry_closed"] - 1) < 1e-6,
    }


@claim(
    "M09",
    anchors=(("001", SYMPHONY, "迫使一个样本内的每个特征都能感知到其他所有特征"), ("001", SYMPHONY, "改变共享的均值和方差")),
    claim="Changing one input feature changes every output: the features are coupled through the shared mean "
    "and variance.",
    statement=(
        "Holds under conditions: for generic inputs, not for every input. Off the diagonal ∂x̂ⱼ/∂xᵢ = "
        "−(1 + x̂ᵢx̂ⱼ)/(n·s) (SymPy for n = 3 and every ε; autograd agrees to rounding on a wider input), so "
        "output j moves unless x̂ᵢx̂ⱼ = −1; for a Gaussian input every off-diagonal entry is nonzero (smallest "
        "|entry| {min_offdiag:.2g}). The source's own example sits on the exception: at x = (5, 5, 0, …, 0) "
        "with ε = 0, x̂ takes the values √3 and −1/√3, whose product is −1, so {zero_entries} of its "
        "{sparse_pairs} off-diagonal entries are zero, to rounding: nudging a silent feature leaves both loud "
        "outputs unchanged to first order (a finite nudge of 0.1 moves them by {nudge:.2g}, against "
        "{nudge_silent:.2g} for a silent output). With ε = 10⁻⁵ those entries are −ε/(n s³): tiny, not zero."
    ),
    verdict="holds under conditions",
    kind="derivation",
    decide=_decide_m09,
    # The world where the source's example is coupled like any generic input: no zero entries, and a
    # nudge of a silent feature moves the loud outputs as much as the silent ones, to first order.
    null=lambda n: {**n, "zero_entries": 0, "nudge": n["nudge_silent"]},
    answer_zh="有条件成立（对一般输入，而非每个输入）：雅可比矩阵的非对角元为 −(1 + x̂ᵢx̂ⱼ)/(n·s)，高斯输入的非对角元全不为零"
    "（最小 {min_offdiag:.2g}），但原文自己的例子 (5, 5, 0, …, 0) 恰是例外，ε = 0 时其 {sparse_pairs} 个非对角元中有 {zero_entries} 个为零，"
    "轻推一个沉默特征在一阶上不改变两个响亮特征的输出。",
)
def m09() -> dict:
    r"""The evidence for M09. See book/02_principles.ipynb, section "A symphony of features: coupling through $\mu$ and $\sigma$"."""
    n = 16
    z = randn(n, seed=44) * 2 + 1
    off = ~torch.eye(n, dtype=torch.bool)
    jac = ln_jacobian(z, 1e-5)
    sparse = sparse_example()
    off8 = ~torch.eye(8, dtype=torch.bool)
    j0, j_eps = ln_jacobian(sparse, 0.0), ln_jacobian(sparse, 1e-5)
    loud_silent = torch.zeros(8, 8, dtype=torch.bool)
    loud_silent[:2, 2:] = loud_silent[2:, :2] = True  # the pairs with x̂ᵢx̂ⱼ = −1
    nudged = ln(sparse + 0.1 * torch.eye(8, dtype=F64)[2], 0.0) - ln(sparse, 0.0)
    s = math.sqrt(float(sparse.var(correction=0)) + 1e-5)
    return {
        "sympy_nonzero": int(not sympy_offdiag_identity()),  # SymPy entries of J − closed form not simplifying to 0
        "n": n, "pairs": n * (n - 1), "offdiag_diff": max_abs(jac[off], offdiag_closed_form(z, 1e-5)[off]),
        "min_offdiag": float(jac[off].abs().min()), "sparse_pairs": int(off8.sum()),
        "zero_entries": int((j0[off8].abs() < 1e-12).sum()), "loud_silent_pairs": int(loud_silent.sum()),
        "max_zero_entry": float(j0[loud_silent].abs().max()),
        "nudge": float(nudged[:2].abs().max()), "nudge_silent": float(nudged[3:].abs().max()),
        "eps_entry": float(j_eps[0, 2]), "eps_entry_closed": -1e-5 / (8 * s**3),
    }


# ----------------------------------------------------------------------------- §4: shift invariance

SHIFTS = tuple(10.0**k for k in range(0, 7))  # c = 1 .. 1e6


def shift_errors(dtype: torch.dtype, shifts=SHIFTS, seed: int = 45) -> list[float]:
    """max |LN(z + c) − LN(z)| with z + c formed and normalized in ``dtype``, against float64 LN(z), ε = 1e-5."""
    z = randn(64, 64, seed=seed)
    exact = ln(z, 1e-5)
    return [max_abs(ln(z.to(dtype) + c, 1e-5).to(F64), exact) for c in shifts]


@claim(
    "M10",
    anchors=(("001", AFFINE, "这种归一化对某些类型的输入平移是不变的"), ("001", AFFINE, "只关心特征的相对变化")),
    claim="LayerNorm is invariant to some kinds of input shift, because only the features' relative differences "
    "matter, not their absolute level. Read as: adding the same constant to every feature (the kind the "
    "source's argument covers).",
    statement=(
        "Holds in exact arithmetic for every ε (SymPy: J·1 = 0), for a constant shift only: a per-feature "
        "shift is not removed (difference {per_feature_diff:.2f}, the 'dataset re-centering' column of F16). "
        "In floating point the shift costs digits, because z + c is rounded before the mean is subtracted: "
        "in float32 the error grows in proportion to c (log–log slope {f32_slope:.2f}) and reaches "
        "{f32_c1e4:.2g} at c = 10⁴, of the size of the first-order rounding bound (1 + |x̂ᵢ|/2)·ulp(c)/σ = "
        "{f32_bound_c1e4:.2g}, where ulp(c), the unit in the last place, is the spacing of floating-point "
        "numbers at c. In float64 the same shift leaves only float64's own, far smaller, rounding error."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        "sympy_shift_invariance": n["sympy_nonzero"] == 0,
        "constant_only": n["per_feature_diff"] > 0.1,
        # Rounding error proportional to c: slope 1 on log–log (above c = 100, where it dominates float32's own).
        "f32_error_grows_with_c": abs(n["f32_slope"] - 1) < 0.15,
        # Of the first-order bound's size, not far below it (a bound 10× too loose would explain nothing).
        "f32_within_bound": n["f32_bound_c1e4"] / 10 < n["f32_c1e4"] <= n["f32_bound_c1e4"],
        "f64_rounding_only": n["f64_c1e4"] < 1e-10,  # 1e4·2⁻⁵³/σ ≈ 1e-12
    },
    # The world where a shift costs no digits in float32: the error at c = 10⁴ as at c = 1, flat in c.
    null=lambda n: {**n, "f32_c1e4": n["f32_c1"], "f32_slope": 0.0},
    answer_zh="成立：精确算术下对任何 ε 都不受常数平移影响（SymPy：J·1 = 0），但只限常数平移，逐特征平移会改变输出（差 "
    "{per_feature_diff:.2f}）；浮点下平移要付出精度，float32 的误差与 c 成正比（双对数斜率 {f32_slope:.2f}），c = 10⁴ 时达 "
    "{f32_c1e4:.2g}。",
)
def m10() -> dict:
    """The evidence for M10. See book/02_principles.ipynb, section "Shift invariance, exactly and in floating point"."""
    f32, f64 = shift_errors(torch.float32), shift_errors(F64)
    z = randn(64, 64, seed=45)
    i4 = SHIFTS.index(1e4)
    # To first order: each value of z + c is rounded by δᵢ, |δᵢ| ≤ ulp(c)/2, which moves x̂ᵢ by
    # (δᵢ − δ̄)/σ − x̂ᵢ·Δσ/σ with |δᵢ − δ̄| ≤ ulp(c) and |Δσ| ≤ ulp(c)/2: at most (1 + |x̂ᵢ|/2)·ulp(c)/σ.
    ulp32 = 2.0 ** (math.floor(math.log2(1e4)) - 23)
    xhat = ln(z, 0.0)
    bound = float(((1 + xhat.abs() / 2) * ulp32 / z.std(-1, correction=0, keepdim=True)).max())
    shift = next(i for i in symbolic.ln_identities(3) if i.name == "ln.shift_invariance")
    return {
        "sympy_nonzero": sum(e != 0 for e in shift.residual()),  # entries of J·1 that SymPy cannot simplify to 0
        "per_feature_diff": max_abs(ln(z + randn(64, seed=46), 1e-5), ln(z, 1e-5)),
        "f32_c1": f32[0], "f32_c1e4": f32[i4], "f32_slope": loglog_slope(SHIFTS[2:], f32[2:]),
        "f32_bound_c1e4": bound, "f64_c1e4": f64[i4],
    }


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float | int]:
    """The chapter's exercise answers, computed (the suite checks them against closed forms)."""
    onehot = torch.zeros(10, dtype=F64)
    onehot[0] = 7.0
    y = ln(onehot, eps=0.0)
    three_of_ten = torch.tensor([2.0] * 3 + [0.0] * 7, dtype=F64)
    jac = ln_jacobian(three_of_ten, 0.0)
    x = randn(1, 12, seed=47) * 3 - 1
    xhat = ln(x, eps=0.0)
    dx, dg, db = ln_grads(x, 2.0 * xhat, eps=0.0)
    sizes = {k: group_sizes(coupling_groups(f, zoo_input((2, 4, 3, 3), seed=48)))
             for k, f in zoo_references(groups=2).items()}
    return {
        "onehot_big": float(y[0]), "onehot_small": float(y[1]),
        "zero_offdiag_3_of_10": int((jac[~torch.eye(10, dtype=torch.bool)].abs() < 1e-12).sum()),
        "contrast_dgamma_sum": float(dg.sum()), "contrast_dbeta_sum": float(db.sum()),
        "contrast_dx_max": float(dx.abs().max()),
        **{f"group_size_{k.lower()}": v[0] for k, v in sizes.items()},
    }
