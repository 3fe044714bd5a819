"""Chapter 4 (seed 003), book/04_why: why Transformers use LayerNorm, claims W01, W02 and W13.

Section of the chapter: "Is it internal covariate shift?" (W01, W02, W13; its subsection "The
landscape"). BatchNorm in Transformers and gain control (W03–W05, W12) are
:mod:`lnbook.experiments.why_batchnorm`; the rest of the chapter (the published models, RMSNorm,
Pre-Norm, Post-Norm and FP16) is :mod:`lnbook.experiments.why_models`.

Every experiment is seeded and small. The training runs (W01, W02) run on one thread: their tensors
are tiny, and on a busy 2-core machine handing them between threads costs far more than the
arithmetic. Functions named after a quantity return data (for figures and the prose); the functions
decorated with :func:`lnbook.claims.claim` return one claim's numbers, which its ``decide`` turns into checks.
"""

from __future__ import annotations

import functools
import math
import statistics

import torch

from lnbook import args, norms
from lnbook.claims import claim
from lnbook.experiments.common import F64, ln, max_abs, one_thread, over_seeds, randn, seeded_start
from lnbook.experiments.toys import LANDSCAPE_RUN, landscape, probe_summary, teacher_data
from lnbook.models import TransformerBlock, relu_mlp

CHAPTER = "book/04_why"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- part 1: ICS


class NoisyBatchNorm(torch.nn.Module):
    """BatchNorm on (B, d) with batch statistics, then, in training, noise that moves its output distribution.

    Santurkar et al. (2018, §2.1) perturb each activation of each sample with i.i.d. noise from a
    distribution of non-zero mean and non-unit variance that changes at every step. Our reading: at
    every call each unit j draws a noise mean m_j ~ U(−shift, shift) and a noise standard deviation
    s_j ~ U(0, spread), and every activation of every sample gets y = BN(x) + m_j + s_j·N(0, 1), drawn
    afresh per sample. The next layer's input distribution therefore moves at every step (internal
    covariate shift, made larger on purpose); on average it is BatchNorm's own output. In evaluation
    mode the noise is off.
    """

    def __init__(self, d: int, shift: float = 0.0, spread: float = 0.0, seed: int = 0):
        super().__init__()
        op = "NoisyBatchNorm"
        args.check_number(op, "d", d, lambda v: v > 0, "an int > 0", integral=True)
        args.check_number(op, "shift", shift, lambda v: v >= 0, "a number >= 0")
        args.check_number(op, "spread", spread, lambda v: v >= 0, "a number >= 0")
        self.shift, self.spread = shift, spread
        self.gen = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.ones(d, dtype=F64))
        self.bias = torch.nn.Parameter(torch.zeros(d, dtype=F64))

    def forward(self, x):
        y = norms.batch_norm(x, None, None, self.weight, self.bias, training=True)
        if not self.training or not (self.shift or self.spread):
            return y
        u = torch.rand(2, y.shape[1], generator=self.gen, dtype=y.dtype)  # (2, d): this step's distribution
        mean, std = self.shift * (2 * u[0] - 1), self.spread * u[1]
        return y + mean + std * torch.randn(y.shape, generator=self.gen, dtype=y.dtype)  # per sample and unit


# Strong enough to move every unit's mean by up to half a standard deviation at every step and to add
# per-sample noise of up to half their size.
NOISE = {"shift": 0.5, "spread": 0.5}
ICS_RUN = {"depth": 8, "width": 32, "lr": 0.2, "batch": 32, "steps": 200, "probe": 64}
ICS_SEEDS = (0, 1, 2, 3, 4)
# A learning rate at which the network without normalization does not train at all (it stays at a constant
# guess on every seed) while BatchNorm's does: only there can the experiment say whether the added shift
# takes away what normalization gives.
ICS_FAST_LR = 1.0
ICS_KINDS = ("none", "bn", "noisy")


def norm_mlp(kind: str, seed: int = 0) -> torch.nn.Module:
    """The library's ReLU MLP (:func:`lnbook.models.relu_mlp`, He init) with, before each ReLU, nothing,
    BatchNorm, or noisy BatchNorm."""
    if kind not in ICS_KINDS:
        raise args.arg_error(ValueError, "norm_mlp", "kind", f"one of {ICS_KINDS}", repr(kind))
    noise = NOISE if kind == "noisy" else {}
    positions = iter(range(1, 3 * ICS_RUN["depth"], 3))  # the norm's index in (linear, norm, ReLU)*: its seed
    make = lambda width: NoisyBatchNorm(width, **noise, seed=seed * 100 + next(positions))
    return relu_mlp(ICS_RUN["depth"], ICS_RUN["width"], "none" if kind == "none" else make, seed=seed)


def _relu_input_moments(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per hidden layer and unit, the mean and std of what enters each ReLU: (layers, 2, width)."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _, inp: seen.append(inp[0]))
             for m in model if isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return torch.stack([torch.stack([a.mean(0), a.std(0, correction=0)]) for a in seen])


@functools.cache
def ics_run(kind: str, seed: int = 0, lr: float = ICS_RUN["lr"]) -> dict:
    """Minibatch SGD on chapter 1's teacher problem; records losses and the per-step distribution shift.

    ``shift[t]`` is the mean over layers and units of |Δmean| + |Δstd| of the ReLU inputs (on a fixed
    probe of the first ``ICS_RUN["probe"]`` training samples, noise on) between steps t and t+1,
    divided by the mean std: a scale-free measure of how far every layer's input distribution moves
    per step. ``final_loss`` and ``final_acc`` are on
    the whole training set in evaluation mode (batch statistics of the whole set, noise off).
    """
    x, y = teacher_data()
    with one_thread():
        model = seeded_start(norm_mlp(kind, seed))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(1000 + seed)
        probe = x[: ICS_RUN["probe"]]
        losses, moments = [], [_relu_input_moments(model, probe)]
        for _ in range(ICS_RUN["steps"]):
            idx = torch.randint(len(x), (ICS_RUN["batch"],), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            moments.append(_relu_input_moments(model, probe))
        model.eval()
        with torch.no_grad():
            logits = model(x)
    shift = [float((b - a).abs().sum(1).mean() / b[:, 1].mean()) for a, b in zip(moments, moments[1:])]
    return {"losses": losses, "shift": shift,
            "final_loss": float(torch.nn.functional.cross_entropy(logits, y)),
            "final_acc": float((logits.argmax(1) == y).double().mean())}


def ics_summary(lr: float = ICS_RUN["lr"]) -> dict[str, dict[str, float]]:
    """Per kind at learning rate ``lr``, over :data:`ICS_SEEDS`: mean and smallest final loss, smallest final
    accuracy, and mean distribution shift."""
    out = {}
    for kind in ICS_KINDS:
        runs = [ics_run(kind, s, lr) for s in ICS_SEEDS]
        losses = [r["final_loss"] for r in runs]
        out[kind] = {"final_loss": statistics.fmean(losses), "min_loss": min(losses),
                     "min_acc": min(r["final_acc"] for r in runs),
                     "shift": statistics.fmean(statistics.fmean(r["shift"]) for r in runs)}
    return out


def paired(kind: str, other: str, key: str = "final_loss", lr: float = ICS_RUN["lr"]):
    """Per seed, ``key`` of ``kind`` minus that of ``other`` (same seed: same data order, same init)."""
    return over_seeds(ics_run(kind, s, lr)[key] - ics_run(other, s, lr)[key] for s in ICS_SEEDS)


def trailing_mean(values, k: int = 10) -> list[float]:
    """The mean of each value and the up to ``k − 1`` before it: a noisy loss curve, smoothed for a figure."""
    args.check_number("trailing_mean", "k", k, lambda v: v >= 1, "an int >= 1", integral=True)
    values = list(values)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1): i + 1]  # the last k values up to i (fewer at the start)
        out.append(sum(window) / len(window))
    return out


def kept_share(lr: float = ICS_FAST_LR) -> list[float]:
    """Per seed, the share of BatchNorm's loss reduction against no norm that noisy BatchNorm keeps."""
    loss = lambda kind, s: ics_run(kind, s, lr)["final_loss"]
    return [(loss("none", s) - loss("noisy", s)) / (loss("none", s) - loss("bn", s)) for s in ICS_SEEDS]


def _decide_w01(n: dict) -> dict[str, bool]:
    return {
        # The noise must make ICS worse: several times BatchNorm's shift per step, and more than no norm's.
        "noise_increases_ics": n["fast_shift_ratio"] > 5 and n["shift_ratio"] > 5 and n["shift_ratio_none"] > 1,
        # The condition. At the fast rate the un-normalized network stays at a constant guess's loss, log 4 ≈ 1.39
        # (0.9 of it on every seed); at the slow rate it trains (70 % full-set accuracy on every seed against
        # a chance of 25 %: it has learned most of the task).
        "fast_none_fails": n["fast_loss_none_min"] > 0.9 * math.log(4),
        "slow_none_trains": n["acc_none_min"] > 0.7,
        # Where normalization is what makes training work, noisy BatchNorm keeps most of BatchNorm's loss
        # reduction against no norm: more than half of it on every seed.
        "fast_noisy_keeps_most": n["fast_kept_min"] > 0.5,
        # Where the plain network trains anyway, the same noise costs BatchNorm's edge: noisy BatchNorm is worse
        # than BatchNorm beyond 3 standard errors and not better than no norm beyond them.
        "slow_noisy_worse_than_bn": n["gap_bn"] > 3 * n["gap_bn_se"],
        "slow_noisy_not_better_than_none": not n["gap_none"] < -3 * n["gap_none_se"],
    }


@claim(
    "W01",
    anchors=(("002", "解决方案：归一化", "减少内部协变量偏移："),
             ("000", "1. 为什么需要归一化？（背景）", "这导致下一层网络必须不断适应新的输入分布"),
             ("004", "2. 核心组件与关键技术原理", "有效缓解了内部协变量偏移问题"),
             ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "你要是照着Google那篇BN的论文背"), ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "这玩意儿在学术界早就被扒皮了"),
             ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "哪怕你把ICS加剧，只要有Norm"),),
    claim="The explanation from Google's BatchNorm paper (each layer's input distribution keeps moving, so later "
    "layers keep adapting, hence pull it back to mean 0 and variance 1) is outdated: several MIT papers showed "
    "that even with ICS made worse, a network with normalization still converges well.",
    statement=(
        "Holds under conditions: where normalization is what makes the network train. Santurkar et al. (2018) "
        "add noise whose mean and variance change at every step after each BatchNorm of a VGG network, and it "
        "trains nearly as well as with plain BatchNorm. In our small MLP at learning rate {lr_fast:g}, where "
        "the network without normalization stays at chance on every seed, such noise makes each layer's input "
        "move {fast_shift_ratio:.0f}× as far per step as with BatchNorm alone, and the network still keeps at "
        "least {fast_kept_min:.0%} of BatchNorm's loss reduction on every seed. At learning rate {lr:g}, where "
        "the plain network trains too, the same noise costs BatchNorm's whole edge: the final loss ends "
        "{gap_bn:.2f} ± {gap_bn_se:.2f} nats above BatchNorm's, no better than without a norm."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=_decide_w01,
    # The world where the added shift takes away what normalization gives (ICS would be why it works): at the
    # fast rate noisy BatchNorm ends where the un-normalized network does, at a constant guess.
    null=lambda n: {**n, "fast_loss_noisy": n["fast_loss_none_min"], "fast_kept_min": 0.0},
    answer_zh=(
        "有条件成立：在“没有归一化就训练不起来”的情形下成立——学习率 {lr_fast:g} 时无归一化的小网络停在随机猜测，"
        "注入噪声使各层输入每步的漂移达到纯 BatchNorm 的 {fast_shift_ratio:.0f} 倍后，网络在每个种子上仍保留 BatchNorm "
        "带来的损失降幅的至少 {fast_kept_min:.0%}；但在学习率 {lr:g}、无归一化也能训练时，同样的噪声抹掉了 BatchNorm 的全部"
        "优势（最终损失比 BatchNorm 高 {gap_bn:.2f} ± {gap_bn_se:.2f} nat）。"
    ),
    outcomes=("shift_ratio", "shift_ratio_none", "loss_none", "loss_bn", "acc_none_min", "gap_bn", "gap_bn_se",
              "gap_none", "gap_none_se", "fast_shift_ratio", "fast_loss_none_min", "fast_loss_bn", "fast_loss_noisy",
              "fast_kept_min"),
)
def w01() -> dict:
    """The evidence for W01. See book/04_why.ipynb, section "Is it internal covariate shift?"."""
    slow, fast = ics_summary(), ics_summary(ICS_FAST_LR)
    gap_bn, gap_none = paired("noisy", "bn"), paired("noisy", "none")
    return {"depth": ICS_RUN["depth"], "seeds": len(ICS_SEEDS), "lr": ICS_RUN["lr"], "lr_fast": ICS_FAST_LR,
            # the slow rate (the figure's): every network trains
            "shift_ratio": slow["noisy"]["shift"] / slow["bn"]["shift"],
            "shift_ratio_none": slow["noisy"]["shift"] / slow["none"]["shift"],
            "loss_none": slow["none"]["final_loss"], "loss_bn": slow["bn"]["final_loss"],
            "acc_none_min": slow["none"]["min_acc"], "gap_bn": gap_bn.mean, "gap_bn_se": gap_bn.se,
            "gap_none": gap_none.mean, "gap_none_se": gap_none.se,
            # the fast rate: only the normalized networks train
            "fast_shift_ratio": fast["noisy"]["shift"] / fast["bn"]["shift"],
            "fast_loss_none_min": fast["none"]["min_loss"],
            "fast_loss_bn": fast["bn"]["final_loss"], "fast_loss_noisy": fast["noisy"]["final_loss"],
            "fast_kept_min": min(kept_share())}


# ----------------------------------------------------------------------------- part 1: landscape

# Chapter 1's landscape probe at half its learning rate: at 0.1 the plain network's loss ends above where
# it started in some runs, and a smoothness comparison against a baseline that does not train means little.
SMOOTH_RUN = {"depth": LANDSCAPE_RUN["depth"], "lr": 0.05}
SMOOTH_SEEDS = (0, 1, 2, 3)


@functools.cache
def smoothness(seed: int) -> dict[str, dict[str, float]]:
    """Per network ("none", "ln"): mean loss range along the gradient, largest β, first and last loss."""
    return {key: probe_summary(landscape(**SMOOTH_RUN, use_ln=key == "ln", seed=seed)) for key in ("none", "ln")}


def lipschitz_through_ln(n: int = 32, seed: int = 22) -> dict[str, float]:
    """What LayerNorm after a linear layer, y = LN(λWx), does to Lipschitz constants (float64, ε = 0 unless said).

    W's Lipschitz constant is its largest singular value, λ·σ_max(W): the norm after it cannot change it. What
    the norm fixes is the gain of the composite map, the spectral norm of its Jacobian (1/s)·P·λW with s the
    standard deviation of λWx and P a projection: the same for every λ (the 1/s cancels λ), but 1/s of the
    input's own spread, so it grows without bound as the input shrinks, and with ε > 0 it is capped at
    ‖P₁W‖/√ε (P₁ removes the mean), a cap that depends on W.
    """
    w = randn(n, n, seed=seed) / math.sqrt(n)  # (n, n): σ_max about 2
    x = randn(n, seed=seed + 1)  # (n,)

    def gain(lam: float, t: float = 1.0, eps: float = 0.0) -> float:
        jac = torch.autograd.functional.jacobian(lambda v: ln(lam * w @ v, eps=eps), t * x)  # (n, n)
        return float(torch.linalg.matrix_norm(jac, 2))

    lams = (0.1, 1.0, 10.0)
    gains = [gain(lam) for lam in lams]
    z = w @ x
    jac_ln = torch.autograd.functional.jacobian(lambda v: ln(v, eps=0.0), z)  # (n, n): LayerNorm alone
    cap = float(torch.linalg.matrix_norm(w - w.mean(0, keepdim=True), 2)) / math.sqrt(1e-5)
    return {"sigma_w_lo": float(torch.linalg.matrix_norm(lams[0] * w, 2)),
            "sigma_w_hi": float(torch.linalg.matrix_norm(lams[-1] * w, 2)), "lam_lo": lams[0], "lam_hi": lams[-1],
            "ln_out_change": max(max_abs(ln(lam * z, eps=0.0), ln(z, eps=0.0)) for lam in lams),
            "gain_w_spread": max(gains) / min(gains) - 1,
            "gain_closed_err": abs(float(torch.linalg.matrix_norm(jac_ln, 2)) * float(z.std(correction=0)) - 1),
            "gain_small_ratio": gain(1.0, 1e-3) / gains[1], "eps_cap": cap,
            "eps_cap_err": abs(gain(1.0, 1e-8, 1e-5) / cap - 1)}


def _decide_w02(n: dict) -> dict[str, bool]:
    return {
        # 0.9: the plain baseline must lose at least a tenth of its loss in every run to count as training.
        "baseline_trains": n["none_last_over_first"] < 0.9,
        # Some run at learning rate 0.1 ends above its initial loss: there the baseline does not train.
        "lr01_baseline_fails": n["lr01_none_worst"] > 1,
        "loss_smoother_with_ln": n["loss_range_ratio"] > 1,
        # β ratios of single runs scatter by about ±40 % here; above 1.5 would be a real smoothing of β.
        "beta_not_smoother": n["beta_ratio"] < 1.5,
        # The Lipschitz step, exact in float64 (rounding only, 1e-9 and 1e-12): W's constant scales with W while
        # LN(λWx) stays the same; the map's gain is 1/s whatever λ is, and 1000× when the input is 1000× smaller.
        "w_lipschitz_unbounded": abs(n["sigma_w_hi"] / n["sigma_w_lo"] / (n["lam_hi"] / n["lam_lo"]) - 1) < 1e-9
        and n["ln_out_change"] < 1e-12,
        "gain_is_one_over_s": n["gain_closed_err"] < 1e-12 and n["gain_w_spread"] < 1e-12,
        "gain_relative_not_absolute": abs(n["gain_small_ratio"] / 1000 - 1) < 1e-9,
        # At an input 1e-8 the size of x, s² = ε + O(1e-16) and x̂ = O(1e-8/√ε): the cap to 1e-4.
        "eps_caps_gain": n["eps_cap_err"] < 1e-4,
    }


@claim(
    "W02",
    anchors=(("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "Norm真正的作用，是在平滑优化的地形"), ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "这山路极其崎岖"),
             ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "把悬崖削平，把坑填浅"), ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "它限制了权重矩阵的Lipschitz常数"),
             ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "你输入变一点点，输出不会剧烈波动"), ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "你可以放心大胆地开大你的Learning"),
             ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "但原理通用于所有Norm"), ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "有无Norm时损失平面的平滑程度差异")),
    claim="What normalization really does is smooth the optimization landscape (without it the path is cliffs and "
    "pits: a slightly larger learning rate explodes or gets stuck). It bounds the Lipschitz constant of the weight "
    "matrix, which the source glosses as bounding the output's sensitivity to the input (a small change of input, "
    "no violent change of output); so gradients behave and the learning rate can be raised. Santurkar et al.'s "
    "BatchNorm paper shows the smoother loss surface, and its principle holds for every norm.",
    statement=(
        "Holds under conditions, and the Lipschitz step is mis-stated. At learning rate {lr}, half chapter 1's, "
        "where the plain 12-layer network trains in every run (at chapter 1's rate it need not), the loss along "
        "the gradient varies a median {loss_range_ratio:.2f}× as much without LayerNorm as with it, but the "
        "gradient's change per unit step (β) is not smaller with LayerNorm (median ratio {beta_ratio:.2f}): "
        "a modest smoothing; the exact part of the argument is the gradient through the norm (F11). A norm after "
        "a linear layer does not bound the weight matrix's Lipschitz constant (its largest singular value): "
        "scaling W by {lam_lo:g} to {lam_hi:g} scales that constant by the same factor while LN(Wx) stays the "
        "same. What the norm fixes is the gain of the map through it, 1/s for an input of spread s, whatever "
        "the scale of W: a bound relative to the input's size, not an absolute one, since an input 1000× "
        "smaller meets a {gain_small_ratio:.0f}× larger gain (with ε > 0, up to a cap of ‖P₁W‖/√ε)."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=_decide_w02,
    # A world where LayerNorm roughens the landscape instead (the loss along the gradient varies more with it),
    # and where it did bound W's Lipschitz constant and the map's gain outright: σ_max(λW) and the gain would not
    # follow λ or the input's size.
    null=lambda n: {**n, "loss_range_ratio": 1 / n["loss_range_ratio"], "sigma_w_hi": n["sigma_w_lo"],
                    "gain_small_ratio": 1.0},
    answer_zh=(
        "有条件成立：学习率 {lr} 下无 LayerNorm 时沿梯度方向的损失波动中位数是有 LayerNorm 时的 {loss_range_ratio:.2f} 倍，"
        "梯度变化率 β 却不更小（比值 {beta_ratio:.2f}）；而且归一化并不限制权重矩阵的 Lipschitz 常数（W 缩放 {lam_lo:g} 到 "
        "{lam_hi:g} 倍，最大奇异值随之同倍变化，LN(Wx) 不变），它固定的是经过它的映射的增益 1/s，这只是相对输入大小的界："
        "输入缩小 1000 倍，增益就变大 {gain_small_ratio:.0f} 倍。"
    ),
    outcomes=("lr01_none_best", "lr01_none_worst", "none_last_over_first", "loss_range_ratio", "beta_ratio"),
)
def w02() -> dict:
    """The evidence for W02. See book/04_why.ipynb, section "Is it internal covariate shift?"."""
    runs = [smoothness(s) for s in SMOOTH_SEEDS]
    fast = [landscape(**LANDSCAPE_RUN, use_ln=False, seed=s) for s in SMOOTH_SEEDS]  # F11's runs: cached
    ends = [r[-1]["loss"] / r[0]["loss"] for r in fast]
    return {"lr01_none_best": min(ends), "lr01_none_worst": max(ends), "lr": SMOOTH_RUN["lr"],
            "seeds": len(runs),
            "none_last_over_first": max(r["none"]["last"] / r["none"]["first"] for r in runs),
            "loss_range_ratio": statistics.median(r["none"]["loss_range"] / r["ln"]["loss_range"] for r in runs),
            "beta_ratio": statistics.median(r["none"]["beta"] / r["ln"]["beta"] for r in runs),
            **lipschitz_through_ln()}


# ----------------------------------------------------------------------------- part 1: depth without a norm

NO_NORM_SEEDS = (0, 1, 2)


@functools.cache
def no_norm_signal(seed: int, depth: int = 24, d: int = 32) -> dict[str, list[float]]:
    """A Transformer stack without any norm (library TransformerBlocks, PyTorch's initialization, float64).

    Per layer l = 0 … depth of the residual stream h_l: ‖h_l‖/‖h_0‖ (forward signal), cos(h_l, h_0) (how much of
    the input it still carries), and ‖∂L/∂h_l‖/‖∂L/∂h_depth‖ for L = Σ c ⊙ h_depth (backward signal).
    """
    with one_thread():
        torch.manual_seed(seed)
        blocks = [TransformerBlock(d, norm="none").double() for _ in range(depth)]
        h0 = randn(4, 16, d, seed=seed + 500).requires_grad_(True)  # (B, L, d)
        h, stream = h0, [h0]
        for b in blocks:
            h = b(h)
            h.retain_grad()
            stream.append(h)
        (randn(4, 16, d, seed=seed + 501) * h).sum().backward()
    s = [t.detach() for t in stream]
    return {"forward": [float(t.norm() / s[0].norm()) for t in s],
            "cos": [float((t * s[0]).sum() / (t.norm() * s[0].norm())) for t in s],
            "backward": [float(t.grad.norm() / stream[-1].grad.norm()) for t in stream]}


@claim(
    "W13",
    anchors=(("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "没有Norm，信号传不到两层就挂了"),),
    claim="In a model as deep as a Transformer, without a norm the signal dies before it has passed two layers.",
    statement=(
        "Does not hold at initialization. In a Transformer stack without any norm (attention and MLP blocks, "
        "PyTorch's initialization), on every seed the residual stream's norm after two layers is at "
        "least {fwd2_min:.2f}× the input's and the stream still points along it (cosine at least {cos2_min:.2f}), and the "
        "gradient two layers below the output is at least {back2_min:.2f}× the output's: nothing dies. What a "
        "deep stack without a norm does is drift: after {depth} layers the stream is at least {fwd_deep_min:.1f}× "
        "larger and its cosine with the input at most {cos_deep_max:.2f}: growth, not death, and the residual "
        "path is what carries the signal."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # "Dies" would be a norm or gradient near 0 (or blown up); within a factor 2 of 1 is a signal passing.
        "forward_passes_two_layers": 0.5 < n["fwd2_min"] and n["fwd2_max"] < 2,
        "backward_passes_two_layers": 0.5 < n["back2_min"] and n["back2_max"] < 2,
        # 0.5: the stream after two layers is still mostly the input (a random vector in 32·64 dimensions: about 0).
        "input_still_there": n["cos2_min"] > 0.5,
        # Over the whole stack the stream grows (factor 2 beyond any seed's scatter here) and forgets the input.
        "deep_stack_drifts": n["fwd_deep_min"] > 2 and n["cos_deep_max"] < 0.5,
    },
    # The source's world: two layers without a norm and the signal is gone, forward and backward.
    null=lambda n: {**n, "fwd2_min": 0.01, "back2_min": 0.01, "cos2_min": 0.0},
    answer_zh=(
        "不成立：初始化时没有任何归一化的 Transformer 堆叠中，两层之后残差流的范数至少是输入的 {fwd2_min:.2f} 倍、"
        "与输入的余弦至少 {cos2_min:.2f}，输出下两层的梯度至少是输出处的 {back2_min:.2f} 倍，信号并没有“挂掉”；"
        "无归一化的深层堆叠真正的问题是漂移：{depth} 层后残差流至少放大到 {fwd_deep_min:.1f} 倍，与输入的余弦至多 "
        "{cos_deep_max:.2f}。"
    ),
)
def w13() -> dict:
    """The evidence for W13. See book/04_why.ipynb, section "Is it internal covariate shift?"."""
    runs = [no_norm_signal(s) for s in NO_NORM_SEEDS]
    pick = lambda key, i: [r[key][i] for r in runs]
    return {"seeds": len(runs), "depth": len(runs[0]["forward"]) - 1,
            "fwd2_min": min(pick("forward", 2)), "fwd2_max": max(pick("forward", 2)), "cos2_min": min(pick("cos", 2)),
            "back2_min": min(pick("backward", -3)), "back2_max": max(pick("backward", -3)),
            "fwd_deep_min": min(pick("forward", -1)), "fwd_deep_max": max(pick("forward", -1)),
            "cos_deep_max": max(pick("cos", -1)),
            "back_deep_min": min(pick("backward", 0)), "back_deep_max": max(pick("backward", 0))}
