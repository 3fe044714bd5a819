"""Chapter 5 (seed 004), book/05_residual: the landscape's isotropy, perturbations, highway gates and a
code example, claims R40–R43.

Sections of the chapter, one for each claim: "Training: warm-up and speed" (R40), "LayerNorm's
backward, ε and precision" (R41), "The residual Jacobian" (R42) and "The formula, the shapes and the
labels" (R43). The rest of the chapter is :mod:`lnbook.experiments.residual`,
:mod:`lnbook.experiments.residual_depth`, :mod:`lnbook.experiments.residual_training` and
:mod:`lnbook.experiments.residual_practice`.

Every experiment is seeded, small and in float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lnbook import norms
from lnbook.claims import claim
from lnbook.experiments.common import F64, max_abs, randn

CHAPTER = "book/05_residual"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- the landscape, perturbations, highways

LANDSCAPE = {"d_in": 6, "d_out": 8, "samples": 64, "scale_spread": 1.5, "seeds": (0, 1, 2, 3, 4)}


def hessian_spectrum(use_ln: bool, seed: int) -> dict[str, float]:
    """The Hessian of a mean-squared error with respect to W, for h = Wx (or LN(Wx), ε = 0) against random
    targets, at a random W: its exactly flat directions, its negative curvatures, the spread |λ|max/|λ|min of
    its other eigenvalues, and how far H·W + ∇L (zero for a loss invariant to W's scale) is from zero. The
    samples' scales differ (log-normal, σ = ``scale_spread``): the differences the source says LN removes."""
    L = LANDSCAPE
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(L["samples"], L["d_in"], generator=gen, dtype=F64)
    x = x * torch.exp(L["scale_spread"] * torch.randn(L["samples"], 1, generator=gen, dtype=F64))  # (n, d_in)
    w = (torch.randn(L["d_out"], L["d_in"], generator=gen, dtype=F64) / math.sqrt(L["d_in"])).flatten()
    target = torch.randn(L["samples"], L["d_out"], generator=gen, dtype=F64)

    def loss(v):
        h = x @ v.reshape(L["d_out"], L["d_in"]).T  # (n, d_out)
        return ((norms.layer_norm(h, (L["d_out"],), eps=0.0) if use_ln else h) - target).pow(2).mean()

    hess = torch.autograd.functional.hessian(loss, w)  # (d_out·d_in, d_out·d_in)
    grad = torch.autograd.functional.jacobian(loss, w)
    ev = torch.linalg.eigvalsh(hess)
    size = ev.abs()
    flat = size <= 1e-9 * size.max()  # float64 eigenvalues of an exact zero: ~1e-15 of the largest
    return {"flat": int(flat.sum()), "negative": int((ev < -1e-9 * size.max()).sum()),
            "spread": float(size[~flat].max() / size[~flat].min()),
            "euler": float((hess @ w + grad).abs().max() / grad.abs().max())}


@claim(
    "R40",
    anchors=(("004", "损失函数的等值面形状", "损失曲面更加平滑且各向同性"),),
    claim=("Because LayerNorm normalizes each sample on its own, it removes the differences in feature scale between "
           "samples, so the loss surface the optimizer faces is smoother and isotropic, which allows larger learning "
           "rates. The card tests the isotropy (equal curvature in every direction); smoothness and learning rates "
           "are F11's, W02's and T07's."),
    statement=(
        "Does not hold: LayerNorm makes the curvature less even, not more. For a linear map fitted by squared error "
        "on samples whose scales differ, the Hessian in W without LayerNorm has no flat direction and no negative "
        "curvature, and its eigenvalues spread by a factor {spread_plain:.0f} (median over {seeds} seeds). With "
        "LayerNorm it has exactly {flat_ln} flat directions in every seed (adding the same vector to every row of W "
        "changes nothing, exactly), {negative_ln:.0f} of {params} directions of negative curvature on average, and "
        "its other eigenvalues spread by {spread_ln:.0f}."
    ),
    verdict="does not hold",
    kind="measurement",
    answer_zh=("不成立：LayerNorm 让曲率更不均匀而不是更各向同性：在样本尺度各不相同的线性拟合上，不加 LayerNorm 时 Hessian 没有"
               "平坦方向也没有负曲率，特征值相差 {spread_plain:.0f} 倍（{seeds} 个种子的中位数）；加上 LayerNorm 后每个种子都有"
               "恰好 {flat_ln} 个平坦方向、平均 {params} 个方向中有 {negative_ln:.0f} 个负曲率方向，其余特征值相差 {spread_ln:.0f} 倍。"),
    decide=lambda n: {
        # Adding 1·vᵀ to W shifts every feature of Wx by v·x, which LN's mean removes: d_in exact zeros.
        "flat_directions_every_seed": n["flat_ln_min"] == n["d_in"] and n["flat_plain_max"] == 0,
        "negative_curvature_every_seed": n["negative_ln_min"] > 0 and n["negative_plain_max"] == 0,
        "spread_not_smaller": n["spread_ln"] > n["spread_plain"],
        # Euler's theorem for a loss of degree 0 in W, in float64: exact up to rounding.
        "scale_invariance_exact": n["euler_ln"] < 1e-10},
    # An isotropic world: every curvature equal and positive with LayerNorm.
    null=lambda n: {**n, "flat_ln_min": 0, "negative_ln_min": 0, "spread_ln": 1.0},
)
def r40() -> dict:
    """The evidence for R40. See book/05_residual.ipynb, section "Training: warm-up and speed"."""
    runs = {ln: [hessian_spectrum(ln, s) for s in LANDSCAPE["seeds"]] for ln in (False, True)}
    median = lambda key, ln: float(torch.tensor([r[key] for r in runs[ln]]).median())
    return {"d_in": LANDSCAPE["d_in"], "d_out": LANDSCAPE["d_out"], "scale_spread": LANDSCAPE["scale_spread"],
            "seeds": len(LANDSCAPE["seeds"]), "params": LANDSCAPE["d_in"] * LANDSCAPE["d_out"],
            "spread_plain": median("spread", False), "spread_ln": median("spread", True),
            "flat_ln": runs[True][0]["flat"], "flat_ln_min": min(r["flat"] for r in runs[True]),
            "flat_plain_max": max(r["flat"] for r in runs[False]),
            "negative_ln": sum(r["negative"] for r in runs[True]) / len(runs[True]),
            "negative_ln_min": min(r["negative"] for r in runs[True]),
            "negative_plain_max": max(r["negative"] for r in runs[False]),
            "euler_ln": max(r["euler"] for r in runs[True])}


PERTURB = {"d": 64, "rows": 128, "size": 1e-2, "seeds": (0, 1, 2, 3, 4)}


def perturbation_response(seed: int) -> dict[str, float]:
    """Relative change of Wx and of LN(Wx) when W is perturbed by a relative ``size``: in a random direction,
    and along W itself (a perturbation that only scales the output up)."""
    P = PERTURB
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(P["rows"], P["d"], generator=gen, dtype=F64)
    w = torch.randn(P["d"], P["d"], generator=gen, dtype=F64) / math.sqrt(P["d"])
    ln = lambda v: norms.layer_norm(x @ v.T, (P["d"],), eps=1e-5)
    plain = lambda v: x @ v.T
    out = {}
    for name, direction in (("random", torch.randn(P["d"], P["d"], generator=gen, dtype=F64)), ("scale", w)):
        dw = P["size"] * w.norm() / direction.norm() * direction
        for key, f in (("plain", plain), ("ln", ln)):
            out[f"{name}_{key}"] = float((f(w + dw) - f(w)).norm() / f(w).norm())
    return out


@claim(
    "R41",
    anchors=(("004", "对参数扰动的鲁棒性", "将这种放大效应抵消"),),
    claim=("If a small perturbation of some weights makes a layer's output larger, LayerNorm immediately cancels the "
           "amplification by normalizing; this negative feedback makes the Transformer structurally robust to "
           "parameter perturbations."),
    statement=(
        "Holds under conditions: only for the part of a perturbation that rescales (or uniformly shifts) the "
        "pre-norm vector. Perturbing W of a {d}-wide linear layer by {size:.0%} of its norm along W itself (the "
        "output only grows) changes LN(Wx) by {scale_ln:.1e}: cancelled. A random perturbation of the same size "
        "changes Wx by {random_plain:.2%} and LN(Wx) by {random_ln:.2%} (means over seeds): LayerNorm passes it "
        "through at the same relative size, since it removes only two of {d} directions of change."
    ),
    verdict="holds under conditions",
    kind="measurement",
    answer_zh=("有条件成立：只对让输出整体放大（或整体平移）的那部分扰动成立：沿 W 本身把宽 {d} 的线性层的权重扰动 {size:.0%}，"
               "LN(Wx) 只变化 {scale_ln:.1e}，被抵消；同样大小的随机扰动让 Wx 变化 {random_plain:.2%}，LN(Wx) 变化 "
               "{random_ln:.2%}，LayerNorm 并没有削弱它。"),
    decide=lambda n: {
        # Along W the normalized output changes only through ε: Var grows by 2 %, ε/Var ~ 1e-5 of that.
        "scaling_cancelled": n["scale_ln"] < 1e-4 * n["scale_plain"],
        # A random direction: LN's Jacobian is (1/s)(I − 11ᵀ/d − x̂x̂ᵀ/d), so it keeps all but ~2/d of the change;
        # within 10 % of the plain layer's relative change, over seeds.
        "random_passes_through": abs(n["random_ln"] / n["random_plain"] - 1) < 0.1},
    # The source's world: LayerNorm damps any perturbation, random ones too (here: by half).
    null=lambda n: {**n, "random_ln": 0.5 * n["random_plain"]},
)
def r41() -> dict:
    """The evidence for R41. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    runs = [perturbation_response(s) for s in PERTURB["seeds"]]
    mean = lambda k: sum(r[k] for r in runs) / len(runs)
    return {"d": PERTURB["d"], "size": PERTURB["size"], "seeds": len(runs),
            **{k: mean(k) for k in ("random_plain", "random_ln", "scale_plain", "scale_ln")}}


HIGHWAY = {"d": 64, "depths": (10, 50), "gate_biases": (-1.0, -3.0), "seeds": (0, 1, 2)}


def stack_input_gradient(kind: str, depth: int, seed: int, gate_bias: float = -2.0) -> float:
    """‖∂⟨g, h_L⟩/∂h_0‖ / ‖g‖ at initialization for a stack of ``depth`` layers f(h) = tanh(Linear(h)), joined
    as a highway layer T·f(h) + (1 − T)·h with T = σ(Linear(h)) and its bias ``gate_bias`` (Srivastava et
    al. 2015 start it at −1 to −3), or as a residual layer h + f(h). Batch of 16, float64."""
    d = HIGHWAY["d"]
    torch.manual_seed(seed)
    branch = [nn.Linear(d, d).double() for _ in range(depth)]
    gate = [nn.Linear(d, d).double() for _ in range(depth)]
    for g in gate:
        nn.init.constant_(g.bias, gate_bias)
    h0 = randn(16, d, seed=100 + seed).requires_grad_()
    h = h0
    for f, g in zip(branch, gate):
        if kind == "highway":
            t = torch.sigmoid(g(h))
            h = t * torch.tanh(f(h)) + (1 - t) * h
        else:
            h = h + torch.tanh(f(h))
    upstream = randn(*h.shape, seed=200 + seed)
    (h * upstream).sum().backward()
    return float(h0.grad.norm() / upstream.norm())


def layer_parameters(kind: str, d: int) -> int:
    """Parameters a highway or residual connection adds to a layer f = Linear(d, d): the gate's, or none."""
    return d * d + d if kind == "highway" else 0


@claim(
    "R42",
    anchors=(("004", "⚖️ 8.2 残差连接的前世今生：为何是ResNet胜出？", "门控机制本身也面临着梯度消失的风险"),
             ("004", "⚖️ 8.2 残差连接的前世今生：为何是ResNet胜出？", "残差连接没有引入任何额外的参数")),
    claim=("Highway networks' gates are themselves at risk of vanishing gradients in very deep networks and add "
           "parameters and computation; the residual connection adds no parameters and, through the identity, lets "
           "the gradient flow back to shallow layers."),
    statement=(
        "Holds under conditions: the parameters always, the gradient at the gate biases Highway Networks start "
        "from. A highway connection around a linear layer f of width {d} adds the gate's {highway_params} parameters, "
        "as many as f has; a residual one adds none. At initialization the input gradient of a {deep}-layer highway "
        "stack (tanh layers) is {highway_deep_b1:.1e} of the output gradient with gate bias −1 and "
        "{highway_deep_b3:.2f} with gate bias −3, against {residual_deep:.1f} for the residual stack (means over "
        "seeds): the carry path multiplies the gradient by 1 − T < 1 at every layer, the identity by 1. Srivastava "
        "et al. (2015) nonetheless trained highway networks 100 layers deep with negative gate biases; the risk "
        "grows with depth and with less negative biases."
    ),
    verdict="holds under conditions",
    kind="measurement",
    answer_zh=("有条件成立：参数一定成立，梯度取决于门的初始偏置：围绕宽 {d} 的线性层的 highway 连接要多出门的 "
               "{highway_params} 个参数，残差连接不增加参数；初始化时 {deep} 层 highway 堆叠（门偏置 −1）输入端"
               "的梯度只有输出端的 {highway_deep_b1:.1e}，偏置 −3 时为 {highway_deep_b3:.2f}，而残差堆叠为 {residual_deep:.1f}。"),
    decide=lambda n: {
        "gate_doubles_parameters": n["highway_params"] == n["d"] ** 2 + n["d"] and n["residual_params"] == 0,
        # Vanishing: the deep highway stack's gradient shrinks by 100× at bias −1, and at each bias it is smaller at
        # depth 50 than at 10; the residual stack's does not shrink below the output's (its identity term).
        "highway_vanishes_with_depth": (n["highway_deep_b1"] < 0.01
                                        and n["highway_deep_b1"] < n["highway_shallow_b1"]
                                        and n["highway_deep_b3"] < n["highway_shallow_b3"]),
        "residual_does_not_vanish": n["residual_deep"] >= 1},
    # A world where gates carry the gradient as the identity does.
    null=lambda n: {**n, "highway_deep_b1": n["residual_deep"], "highway_deep_b3": n["residual_deep"]},
)
def r42() -> dict:
    """The evidence for R42. See book/05_residual.ipynb, section "The residual Jacobian"."""
    H = HIGHWAY
    shallow, deep = H["depths"]
    mean = lambda *a, **k: sum(stack_input_gradient(*a, s, **k) for s in H["seeds"]) / len(H["seeds"])
    out = {"d": H["d"], "shallow": shallow, "deep": deep, "seeds": len(H["seeds"]),
           "highway_params": layer_parameters("highway", H["d"]), "residual_params": layer_parameters("residual", H["d"]),
           "residual_deep": mean("residual", deep)}
    for b, key in zip(H["gate_biases"], ("b1", "b3")):
        out[f"highway_shallow_{key}"] = mean("highway", shallow, gate_bias=b)
        out[f"highway_deep_{key}"] = mean("highway", deep, gate_bias=b)
    return out


def snippet_residual(x: torch.Tensor) -> dict[str, float]:
    """What the source's one-liner ``x = x + F.layer_norm(x)`` does: whether it runs as written, and, given the
    width it lacks, how far its result is from a Pre-LN and a Post-LN block around a linear sublayer."""
    d = x.shape[-1]
    try:
        torch.nn.functional.layer_norm(x)  # as the source writes it
        runs = 1
    except TypeError:
        runs = 0
    torch.manual_seed(13)
    sub = nn.Linear(d, d).double()
    ln = lambda v: torch.nn.functional.layer_norm(v, (d,))
    with torch.no_grad():
        y, pre, post = x + ln(x), x + sub(ln(x)), ln(x + sub(x))
    return {"runs": runs, "vs_pre_ln": max_abs(y, pre), "vs_post_ln": max_abs(y, post)}


@claim(
    "R43",
    anchors=(("004", "10. 实践应用：应用场景与案例", "x = x + F.layer_norm(x)"),),
    claim=("The code of the two techniques is very short, for example x = x + F.layer_norm(x) in PyTorch."),
    statement=(
        "Does not hold: the example is neither technique as used. As written it does not run: "
        "torch.nn.functional.layer_norm requires the normalized shape (calls that run: {runs} of 1). With the width supplied it "
        "computes x + LN(x), with no sublayer: it differs from a Pre-LN block x + f(LN(x)) by up to {vs_pre_ln:.2f} "
        "and from a Post-LN block LN(x + f(x)) by up to {vs_post_ln:.2f} for a linear f on a (4, 16) input. The "
        "short correct forms are x = x + f(F.layer_norm(x, x.shape[-1:])) and "
        "x = F.layer_norm(x + f(x), x.shape[-1:])."
    ),
    verdict="does not hold",
    kind="derivation",
    answer_zh=("不成立：这个例子本身不能运行（F.layer_norm 缺少 normalized_shape 参数，1 次调用中成功 {runs} 次），补上宽度后它算的是 "
               "x + LN(x)，没有子层，与 Pre-LN 块 x + f(LN(x)) 最多相差 {vs_pre_ln:.2f}，与 Post-LN 块 LN(x + f(x)) 最多相差 "
               "{vs_post_ln:.2f}。"),
    decide=lambda n: {
        "fails_as_written": n["runs"] == 0,
        # Outputs of size O(1): a difference above 0.1 is a different function, not rounding.
        "not_a_residual_block": min(n["vs_pre_ln"], n["vs_post_ln"]) > 0.1},
    # The source's world: the snippet runs and is a residual block with LayerNorm.
    null=lambda n: {**n, "runs": 1, "vs_pre_ln": 0.0},
)
def r43() -> dict:
    """The evidence for R43. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    return snippet_residual(randn(4, 16, seed=14))
