"""Chapter 4 (seed 003), book/04_why: why Transformers use LayerNorm, claims W01–W05, W12 and W13.

Sections of the chapter: "Is it internal covariate shift?" (W01, W02, W13), "Why BatchNorm does not fit
Transformers" (W03, W04, W12) and "What LayerNorm does instead: gain control" (W05). The rest of the
chapter (the published models, RMSNorm, Pre-Norm, Post-Norm and FP16) is
:mod:`lnbook.experiments.why_models`.

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

from lnbook import norms
from lnbook.claims import claim
from lnbook.experiments.common import F64, ln, max_abs, one_thread, over_seeds, randn, seeded_start
from lnbook.experiments.toys import LANDSCAPE_RUN, landscape, padded_batch, teacher_data
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
        norms.check_number(op, "d", d, lambda v: v > 0, "an int > 0", integral=True)
        norms.check_number(op, "shift", shift, lambda v: v >= 0, "a number >= 0")
        norms.check_number(op, "spread", spread, lambda v: v >= 0, "a number >= 0")
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
        raise norms.arg_error(ValueError, "norm_mlp", "kind", f"one of {ICS_KINDS}", repr(kind))
    noise = NOISE if kind == "noisy" else {}
    positions = iter(range(1, 3 * ICS_RUN["depth"], 3))  # the norm's index in (linear, norm, ReLU)*: its seed
    make = lambda width: NoisyBatchNorm(width, **noise, seed=seed * 100 + next(positions))  # noqa: E731
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


@functools.lru_cache(maxsize=None)
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


def kept_share(lr: float = ICS_FAST_LR) -> list[float]:
    """Per seed, the share of BatchNorm's loss reduction against no norm that noisy BatchNorm keeps."""
    loss = lambda kind, s: ics_run(kind, s, lr)["final_loss"]  # noqa: E731
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
    anchors=(("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "你要是照着Google那篇BN的论文背"), ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "这玩意儿在学术界早就被扒皮了"),
             ("003", "为什么必须要有Norm？真的是为了解决ICS吗？", "哪怕你把ICS加剧，只要有Norm"),),
    claim="The explanation from Google's BatchNorm paper (each layer's input distribution keeps moving, so later "
    "layers keep adapting, hence pull it back to mean 0 and variance 1) is outdated: several MIT papers showed "
    "that even with ICS made worse, a network with normalization still converges well.",
    statement=(
        "Holds under conditions: where normalization is what makes the network train. Santurkar et al. (2018) "
        "inject noise whose mean and variance change at every step after each BatchNorm of a VGG network and "
        "report that it trains nearly as well as with plain BatchNorm. In our small MLP at learning rate "
        "{lr_fast:g}, the network without normalization stays at chance on every seed; with noise of that kind, "
        "which makes each layer's input move {fast_shift_ratio:.0f}× as much per step as BatchNorm alone, it "
        "trains to a mean loss of {fast_loss_noisy:.2f} nats against plain BatchNorm's {fast_loss_bn:.2f}, "
        "keeping most of BatchNorm's gain on every seed. At "
        "learning rate {lr:g}, where the plain network trains too, the same noise costs BatchNorm's whole edge "
        "(final loss {gap_bn:+.2f} ± {gap_bn_se:.2f} against BatchNorm, no better than without a norm)."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=_decide_w01,
    # The world where the added shift takes away what normalization gives (ICS would be why it works): at the
    # fast rate noisy BatchNorm ends where the un-normalized network does, at a constant guess.
    null=lambda n: {**n, "fast_loss_noisy": n["fast_loss_none_min"], "fast_kept_min": 0.0},
    answer_zh=(
        "有条件成立：在“没有归一化就训练不起来”的情形下成立——学习率 {lr_fast:g} 时无归一化的小网络停在随机猜测，"
        "而注入噪声使各层输入每步的漂移达到纯 BatchNorm 的 {fast_shift_ratio:.0f} 倍后，网络仍训练到平均损失 "
        "{fast_loss_noisy:.2f}（纯 BatchNorm 为 {fast_loss_bn:.2f}）；但在学习率 {lr:g}、无归一化也能训练时，同样的噪声"
        "抹掉了 BatchNorm 的全部优势（相对 BatchNorm 的损失差 {gap_bn:+.2f} ± {gap_bn_se:.2f}）。"
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


@functools.lru_cache(maxsize=None)
def smoothness(seed: int) -> dict[str, dict[str, float]]:
    """Per network ("none", "ln"): mean loss range along the gradient, largest β, first and last loss."""
    runs = {key: landscape(**SMOOTH_RUN, use_ln=key == "ln", seed=seed) for key in ("none", "ln")}
    return {key: {"loss_range": sum(p["loss_max"] - p["loss_min"] for p in r) / len(r),
                  "beta": max(p["beta"] for p in r), "first": r[0]["loss"], "last": r[-1]["loss"]}
            for key, r in runs.items()}


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
        "Holds under conditions, and the Lipschitz step is mis-stated. At chapter 1's "
        "learning rate of 0.1 the plain network "
        "need not train (over {seeds} runs its loss ends at {lr01_none_best:.2f} to {lr01_none_worst:.2f} times "
        "its initial value). With the same "
        "probe at learning rate {lr}, where the plain 12-layer network does train (its loss falls to at most "
        "{none_last_over_first:.2f} of its "
        "initial value in every one of {seeds} runs), the loss along the gradient varies a median "
        "{loss_range_ratio:.2f}× as much without LayerNorm as with it, while the gradient's change per unit "
        "step (β) is not smaller with LayerNorm (median ratio {beta_ratio:.2f}). The exact part of the "
        "argument is the gradient through the norm (F11); the network-wide smoothing is a modest effect here. "
        "A norm after a linear layer does not bound the weight matrix's Lipschitz constant (its largest singular "
        "value): scaling W by {lam_lo:g} to {lam_hi:g} moves it from {sigma_w_lo:.2f} to {sigma_w_hi:.1f} while "
        "LN(Wx) stays the same (difference {ln_out_change:.1g}). What the norm fixes is the gain of the map through "
        "it, 1/s of its input's spread s (exact to {gain_closed_err:.1g}), the same for every scale of W (spread "
        "{gain_w_spread:.1g}): a bound relative to the input's size, not an absolute one, since an input 1000× "
        "smaller has a {gain_small_ratio:.0f}× larger gain, up to ‖P₁W‖/√ε = {eps_cap:.0f} at ε = 1e-5."
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
        "梯度变化率 β 却不更小（比值 {beta_ratio:.2f}）；而且归一化并不限制权重矩阵的 Lipschitz 常数（W 缩放后最大奇异值从 "
        "{sigma_w_lo:.2f} 变到 {sigma_w_hi:.1f}，LN(Wx) 不变），它固定的是经过它的映射的增益 1/s，这只是相对输入大小的界："
        "输入缩小 1000 倍增益就变大 {gain_small_ratio:.0f} 倍，ε = 1e-5 时上限为 {eps_cap:.0f}。"
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


@functools.lru_cache(maxsize=None)
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
        "PyTorch's initialization, {seeds} seeds), after two layers the residual stream's norm is "
        "{fwd2_min:.2f}–{fwd2_max:.2f}× the input's and still points along it (cosine at least {cos2_min:.2f}), and "
        "the gradient two layers below the output is {back2_min:.2f}–{back2_max:.2f}× the output's: nothing dies. "
        "What a deep stack without a norm does is drift: after {depth} layers the stream is "
        "{fwd_deep_min:.1f}–{fwd_deep_max:.1f}× larger, its cosine with the input down to {cos_deep_max:.2f} at most, "
        "and the gradient at the input {back_deep_min:.1f}–{back_deep_max:.1f}× the output's: growth, not death, and "
        "the residual path is what carries the signal."
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
        "不成立：初始化时没有任何归一化的 Transformer 堆叠中，两层之后残差流的范数是输入的 {fwd2_min:.2f}–{fwd2_max:.2f} 倍、"
        "与输入的余弦至少 {cos2_min:.2f}，输出下两层的梯度是输出处的 {back2_min:.2f}–{back2_max:.2f} 倍，信号并没有“挂掉”；"
        "无归一化的深层堆叠真正的问题是漂移：{depth} 层后残差流放大到 {fwd_deep_min:.1f}–{fwd_deep_max:.1f} 倍。"
    ),
)
def w13() -> dict:
    """The evidence for W13. See book/04_why.ipynb, section "The landscape"."""
    runs = [no_norm_signal(s) for s in NO_NORM_SEEDS]
    pick = lambda key, i: [r[key][i] for r in runs]  # noqa: E731
    return {"seeds": len(runs), "depth": len(runs[0]["forward"]) - 1,
            "fwd2_min": min(pick("forward", 2)), "fwd2_max": max(pick("forward", 2)), "cos2_min": min(pick("cos", 2)),
            "back2_min": min(pick("backward", -3)), "back2_max": max(pick("backward", -3)),
            "fwd_deep_min": min(pick("forward", -1)), "fwd_deep_max": max(pick("forward", -1)),
            "cos_deep_max": max(pick("cos", -1)),
            "back_deep_min": min(pick("backward", 0)), "back_deep_max": max(pick("backward", 0))}


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
        "Holds under conditions: always for the mean, for the variance only under a condition. With a share p = {share_real:.3f} of "
        "real positions (105 of 200), BatchNorm's mean is exactly p times the real one (measured ratio "
        "{mean_ratio:.3f}); its variance is p·v + p(1 − p)·m², which is diluted only when p·m² < v: for "
        "zero-mean features the ratio is {var_ratio_centered:.3f}, for features with mean 2 and variance 1 it "
        "is {var_ratio_shifted:.2f}, an inflation. Either way the real tokens no longer come out "
        "standardized: with mean-2 features their BatchNorm outputs have mean {bn_out_mean:.2f} and standard "
        "deviation {bn_out_std:.2f}, with zero-mean features standard deviation {bn_out_std_centered:.2f} "
        "(1/√p), instead of 0 and 1. LayerNorm of the "
        "real tokens is unchanged by the padding (difference {ln_pad_diff:.2g})."
    ),
    verdict="holds under conditions",
    kind="derivation",
    decide=_decide_w03,
    # A world where the padded positions are masked out of BatchNorm's sums: its statistics are the real
    # tokens' own (ratios 1) and the real tokens come out standardized.
    null=lambda n: {**n, "mean_ratio": 1.0, "var_ratio_centered": 1.0, "var_ratio_shifted": 1.0,
                    "bn_out_mean": 0.0, "bn_out_std": 1.0, "bn_out_std_centered": 1.0},
    answer_zh=(
        "有条件成立：均值总被按真实位置占比 p = {share_real:.3f} 缩小（实测比值 {mean_ratio:.3f}），方差只有在 p·m² < v "
        "时才被稀释（零均值特征比值 {var_ratio_centered:.3f}，均值为 2 的特征反而放大到 {var_ratio_shifted:.2f}）；两种情况下"
        "真实 token 的 BatchNorm 输出都不再是标准化的，而 LayerNorm 完全不受填充影响（差 {ln_pad_diff:.2g}）。"
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
    anchors=(('003', '第二、 为什么BN在Transformer里水土不服？', 'BN严重依赖Batch Size'),
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
    gap = lambda y: float((y[1] - y[0]).norm() / (y[1].norm() + y[0].norm()))  # noqa: E731
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
    norms.check_number(op, "t", t, lambda v: v >= 2, "an int >= 2", integral=True)
    norms.check_number(op, "d", d, lambda v: v >= 2, "an int >= 2", integral=True)
    norms.check_number(op, "spread", spread, lambda v: v >= 1, "a number >= 1")
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
        raise norms.arg_error(TypeError, "attention_stats", "x", "a torch.Tensor", type(x).__name__)
    if x.dim() != 2 or x.shape[0] < 2:
        raise norms.arg_error(ValueError, "attention_stats", "x", "a (tokens >= 2, d) matrix", tuple(x.shape))
    t, d = x.shape
    w_q, w_k = randn(d, d, seed=seed) / math.sqrt(d), randn(d, d, seed=seed + 1) / math.sqrt(d)
    h = ln(x.to(F64), eps=1e-5) if use_ln else x.to(F64)
    p = torch.softmax((h @ w_q.T) @ (h @ w_k.T).T / math.sqrt(d), dim=-1)  # (t, t), rows sum to 1
    big = int(x.norm(dim=1).argmax())
    return {"entropy": float(-torch.xlogy(p, p).sum(-1).mean()), "uniform_entropy": math.log(t),
            "share_largest": float(p[:, big].mean()), "top_is_largest": float((p.argmax(-1) == big).double().mean()),
            "softmax_grad": float((1 - (p * p).sum(-1)).mean())}


GAIN_SPREADS = (1, 2, 4, 8, 16, 32, 64)


@functools.lru_cache(maxsize=None)
def gain_sweep() -> dict[str, list[dict[str, float]]]:
    """attention_stats over token-norm spreads, without ("none") and with ("ln") LayerNorm."""
    with one_thread():
        return {key: [attention_stats(mixed_norm_tokens(spread=s), use_ln=key == "ln") for s in GAIN_SPREADS]
                for key in ("none", "ln")}


def direction_kept(mean_over_std: float = 1.0, d: int = 64, seed: int = 52) -> dict[str, float]:
    """cos(LN(x), x) and cos(RMSNorm(x), x) for a token whose mean is ``mean_over_std`` standard deviations."""
    z = randn(d, seed=seed)
    x = (z - z.mean()) / z.std(correction=0) + mean_over_std  # mean/std exactly as asked
    cos = lambda a: float(a @ x / (a.norm() * x.norm()))  # noqa: E731
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
        "Holds under conditions. Magnitude: after LayerNorm every token has the same norm, and attention is "
        "exactly independent of the tokens' norms (entropy varies by {ln_entropy_range:.1g} across norm "
        "spreads of 1 to {max_spread}). Without it, {t} tokens whose norms span a factor {max_spread} give "
        "attention of entropy {entropy_none:.2f} against {entropy_ln:.2f} with LayerNorm (uniform: "
        "{uniform_entropy:.2f}), and the softmax Jacobian's trace, which carries the gradient, falls to "
        "{grad_none:.3f} (with LayerNorm {grad_ln:.3f}). But the largest-norm token does not simply dominate: "
        "a large key amplifies its score with either sign, so it is the top key for only {top_none:.0%} of "
        "the queries (share of attention {share_none:.2f}); a score is the product of both norms and a "
        "cosine, so a large query saturates its own softmax as much as a large key does. Direction: "
        "LayerNorm keeps the direction of the centred token, not of the token "
        "(cos(LN(x), x) = {cos_ln:.3f} for a token whose mean equals its standard deviation, closed form "
        "1/√2); RMSNorm keeps it exactly (cos = {cos_rms:.3g})."
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
        "有条件成立：经过 LayerNorm 后注意力与 token 的模长完全无关；没有它时，模长跨 {max_spread} 倍的 {t} 个 token 使注意力"
        "熵降到 {entropy_none:.2f}（有 LayerNorm 为 {entropy_ln:.2f}），携带梯度的 softmax 雅可比迹降到 {grad_none:.3f}；"
        "但模长最大的 token 只是 {top_none:.0%} 的 query 的首选，并非简单“主导”，而且 LayerNorm 保留的是中心化后向量的方向"
        "（cos = {cos_ln:.3f}），RMSNorm 才完全保留方向。"
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
