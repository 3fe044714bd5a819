"""Chapter 4 (seed 003), book/04_why: why Transformers use LayerNorm, claims W01–W05 and W12.

Sections of the chapter: "Is it internal covariate shift?" (W01, W02), "Why BatchNorm does not fit
Transformers" (W03, W04, W12) and "What LayerNorm does instead: gain control" (W05). The rest of the
chapter (the published models, RMSNorm, Pre-Norm, Post-Norm and FP16) is
:mod:`lnbook.experiments.why_models`.

Every experiment is seeded and small. The training runs (W01, W02) run on one thread: their tensors
are tiny, and on a busy 2-core machine handing them between threads costs far more than the
arithmetic. Functions named after a quantity return data (for figures and the prose); the functions
decorated with :func:`lnbook.claims.claim` turn that data into evidence.
"""

from __future__ import annotations

import functools
import math
import statistics

import torch

from lnbook import norms
from lnbook.claims import Evidence, claim
from lnbook.experiments.common import F64, ln, max_abs, one_thread, over_seeds, randn, seeded_start
from lnbook.experiments.toys import LANDSCAPE_RUN, landscape, padded_batch, teacher_data
from lnbook.models import relu_mlp

SRC = "seed 003"
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
def ics_run(kind: str, seed: int = 0) -> dict:
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
        opt = torch.optim.SGD(model.parameters(), lr=ICS_RUN["lr"])
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


def ics_summary() -> dict[str, dict[str, float]]:
    """Per kind: final loss and accuracy and mean distribution shift, averaged over :data:`ICS_SEEDS`."""
    out = {}
    for kind in ICS_KINDS:
        runs = [ics_run(kind, s) for s in ICS_SEEDS]
        out[kind] = {key: sum(r[key] for r in runs) / len(runs) for key in ("final_loss", "final_acc")}
        out[kind]["shift"] = sum(sum(r["shift"]) / len(r["shift"]) for r in runs) / len(runs)
    return out


def paired(kind: str, other: str, key: str = "final_loss"):
    """Per seed, ``key`` of ``kind`` minus that of ``other`` (same seed: same data order, same init)."""
    return over_seeds(ics_run(kind, s)[key] - ics_run(other, s)[key] for s in ICS_SEEDS)


@claim(
    "W01",
    source=f"{SRC} part 1",
    claim="Reducing internal covariate shift (ICS) is not why normalization works: papers show that with "
    "ICS made worse, a network with normalization still converges well.",
    statement=(
        "Holds under conditions: for the paper, and only in its weak form at this scale. Santurkar et al. perturb "
        "every activation of every sample after each BatchNorm of a VGG network with noise whose mean and variance "
        "change at every step, and report that it trains nearly as well as with plain BatchNorm. Our "
        "{depth}-layer MLP with noise of that kind (our reading of their recipe: per step and unit a new noise "
        "mean and spread, per sample a new draw) shifts each unit's input distribution {shift_ratio:.0f}× as much "
        "per step as BatchNorm does and {shift_ratio_none:.1f}× as much as no normalization. Over {seeds} seeds "
        "it still trains (every seed above {acc_noisy_min:.0%} full-set accuracy, chance 25 %; mean loss "
        "{loss_noisy:.3f}), so reducing ICS is not necessary for training. But it does not match BatchNorm "
        "(mean loss {loss_bn:.3f}; noisy minus plain BatchNorm {gap_bn:+.3f} ± {gap_bn_se:.3f}, every seed "
        "worse) and ends no better than the un-normalized network ({gap_none:+.3f} ± {gap_none_se:.3f} against "
        "its {loss_none:.3f}): here the added shift does cost accuracy."
    ),
    verdict="holds under conditions",
)
def w01() -> Evidence:
    """The evidence for W01. See book/04_why.ipynb, section "Is it internal covariate shift?"."""
    s = ics_summary()
    bn_gap, none_gap = paired("noisy", "bn"), paired("noisy", "none")
    nums = {"depth": ICS_RUN["depth"], "seeds": len(ICS_SEEDS), "shift_ratio": s["noisy"]["shift"] / s["bn"]["shift"],
            "shift_ratio_none": s["noisy"]["shift"] / s["none"]["shift"],
            "acc_noisy_min": min(ics_run("noisy", seed)["final_acc"] for seed in ICS_SEEDS),
            "loss_noisy": s["noisy"]["final_loss"], "loss_bn": s["bn"]["final_loss"], "loss_none": s["none"]["final_loss"],
            "gap_bn": bn_gap.mean, "gap_bn_se": bn_gap.se, "gap_none": none_gap.mean, "gap_none_se": none_gap.se}
    return Evidence(
        nums,
        {"noise_increases_ics": nums["shift_ratio"] > 5 and nums["shift_ratio_none"] > 1,
         # log 4 ≈ 1.39 is the loss of a constant guess: below half of it, and accuracy above 70 % against a
         # chance of 25 %, on every seed, is a network that has learned most of the task.
         "noisy_still_trains": all(ics_run("noisy", seed)["final_loss"] < 0.7 for seed in ICS_SEEDS)
         and nums["acc_noisy_min"] > 0.7,
         "noisy_worse_than_bn": bn_gap.beyond(0.0) and bn_gap.mean > 0,
         # "No better than none": the mean difference is not below zero beyond the spread.
         "noisy_not_better_than_none": not (none_gap.beyond(0.0) and none_gap.mean < 0)},
    )


# ----------------------------------------------------------------------------- part 1: landscape

# Chapter 1's landscape probe at half its learning rate: at 0.1 the plain network's loss ends above where
# it started in some runs, and a smoothness comparison against a baseline that does not train means little.
SMOOTH_RUN = {"depth": LANDSCAPE_RUN["depth"], "lr": 0.05}
SMOOTH_SEEDS = (0, 1, 2, 3)


@functools.lru_cache(maxsize=None)
def smoothness(seed: int) -> dict[str, dict[str, float]]:
    """Per network ("none", "ln"): mean loss range along the gradient, largest β, first and last loss."""
    with one_thread():
        runs = {key: landscape(**SMOOTH_RUN, use_ln=key == "ln", seed=seed) for key in ("none", "ln")}
    return {key: {"loss_range": sum(p["loss_max"] - p["loss_min"] for p in r) / len(r),
                  "beta": max(p["beta"] for p in r), "first": r[0]["loss"], "last": r[-1]["loss"]}
            for key, r in runs.items()}


@claim(
    "W02",
    source=f"{SRC} part 1",
    claim="Normalization smooths the optimization landscape: it bounds the Lipschitz constant, so the "
    "output is less sensitive to the input and the learning rate can be raised.",
    statement=(
        "Holds under conditions, as in chapter 1 (F11). At chapter 1's learning rate of 0.1 the plain network "
        "need not train (its run 0 ends at {lr01_none_last_over_first:.2f}× its initial loss). With the same "
        "probe at learning rate {lr}, where the plain 12-layer network does train (its loss falls to at most "
        "{none_last_over_first:.2f} of its "
        "initial value in every one of {seeds} runs), the loss along the gradient varies a median "
        "{loss_range_ratio:.2f}× as much without LayerNorm as with it, while the gradient's change per unit "
        "step (β) is not smaller with LayerNorm (median ratio {beta_ratio:.2f}). The exact part of the "
        "argument is the gradient through the norm (F11); the network-wide smoothing is a modest effect here."
    ),
    verdict="holds under conditions",
)
def w02() -> Evidence:
    """The evidence for W02. See book/04_why.ipynb, section "Is it internal covariate shift?"."""
    runs = [smoothness(s) for s in SMOOTH_SEEDS]
    with one_thread():  # chapter 1's figure shows this very run, so it is cached when both are built
        fast = landscape(**LANDSCAPE_RUN, use_ln=False, seed=0)
    nums = {"lr01_none_last_over_first": fast[-1]["loss"] / fast[0]["loss"], "lr": SMOOTH_RUN["lr"],
            "seeds": len(runs),
            "none_last_over_first": max(r["none"]["last"] / r["none"]["first"] for r in runs),
            "loss_range_ratio": statistics.median(r["none"]["loss_range"] / r["ln"]["loss_range"] for r in runs),
            "beta_ratio": statistics.median(r["none"]["beta"] / r["ln"]["beta"] for r in runs)}
    return Evidence(
        nums,
        # 0.9: the plain baseline must lose at least a tenth of its loss in every run to count as training.
        {"baseline_trains": nums["none_last_over_first"] < 0.9,
         "lr01_baseline_fails": nums["lr01_none_last_over_first"] > 1,
         "loss_smoother_with_ln": nums["loss_range_ratio"] > 1,
         # β ratios of single runs scatter by about ±40 % here; above 1.5 would be a real smoothing of β.
         "beta_not_smoother": nums["beta_ratio"] < 1.5},
    )


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


@claim(
    "W03",
    source=f"{SRC} part 2.1",
    claim="Padding a batch with a 100-token and a 5-token sentence puts 95 zeros into BatchNorm's statistics "
    "and severely dilutes its mean and variance; LayerNorm is unaffected.",
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
)
def w03() -> Evidence:
    """The evidence for W03. See book/04_why.ipynb, section "Why BatchNorm does not fit Transformers"."""
    centered, shifted = padding_dilution(0.0), padding_dilution(2.0)
    nums = {"share_real": shifted["share_real"], "mean_ratio": shifted["mean_ratio"],
            "var_ratio_centered": centered["var_ratio"], "var_ratio_shifted": shifted["var_ratio"],
            "bn_out_mean": shifted["bn_out_mean"], "bn_out_std": shifted["bn_out_std"],
            "bn_out_std_centered": centered["bn_out_std"],
            "ln_pad_diff": max(centered["ln_pad_diff"], shifted["ln_pad_diff"])}
    p = nums["share_real"]
    return Evidence(
        nums,
        # The closed forms are algebraic identities: float64 rounding is all that separates them.
        {"closed_forms": max(centered["closed_form_err"], shifted["closed_form_err"]) < 1e-12,
         "share_is_105_of_200": p == 105 / 200,
         "mean_scaled_by_p": abs(nums["mean_ratio"] - p) < 1e-12,
         "var_diluted_when_p_m2_small": centered["var_ratio"] < 1 and p * centered["m2_over_v"] < 1,
         "var_inflated_when_p_m2_large": shifted["var_ratio"] > 1 and p * shifted["m2_over_v"] > 1,
         "bn_output_off": abs(nums["bn_out_mean"]) > 0.3,
         # 1/√p from the closed form; ε = 1e-5 and the sample's own spread move it by well under 1 %.
         "centered_std_is_inv_sqrt_p": abs(nums["bn_out_std_centered"] * math.sqrt(p) - 1) < 0.01,
         "ln_unaffected": nums["ln_pad_diff"] < 1e-12},
    )


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
    source=f"{SRC} part 2.2",
    claim="BatchNorm depends on the batch size; at batch size 1 it fails (running statistics do not help in "
    "training); LayerNorm is independent of the batch.",
    statement=(
        "Holds under conditions. For one vector per sample it holds outright: a training batch of one cannot be "
        "normalized ({batch1_error}), and a batch of two keeps only the sign of each feature's difference "
        "(every output is ±1, largest deviation {pair_abs_dev:.2g}). In a Transformer BatchNorm would pool "
        "the B·T positions, so one sentence still gives statistics, but they are that sentence's: changing "
        "its last token changes the first token's output by {future_leak:.3f} (LayerNorm: {ln_future_leak:.1g}), "
        "which in a causal model leaks the future into the past, and the same sentence comes out up to "
        "{train_eval_gap:.2f} apart in training and evaluation mode (running statistics)."
    ),
    verdict="holds under conditions",
)
def w04() -> Evidence:
    """The evidence for W04. See book/04_why.ipynb, section "Why BatchNorm does not fit Transformers"."""
    e = batch_one_effects()
    return Evidence(
        e,
        {"batch1_refused": e["batch1_error"] == "ValueError",
         # ε = 0: (a − b)/|a − b| is ±1 up to float64 rounding.
         "pair_is_sign": e["pair_abs_dev"] < 1e-12,
         "bn_leaks_future": e["future_leak"] > 0.01, "ln_no_leak": e["ln_future_leak"] == 0.0,
         "train_eval_differ": e["train_eval_gap"] > 0.1},
    )


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
    source=f"{SRC} part 2.3",
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
)
def w12() -> Evidence:
    """The evidence for W12. See book/04_why.ipynb, section "Why BatchNorm does not fit Transformers"."""
    m = token_magnitudes()
    return Evidence(m, {"ln_erases_size": m["ln_gap"] < 1e-12, "bn_keeps_gap": m["bn_gap"] > 0.1,
                        # float64 differences of O(1) values: rounding only.
                        "bn_affine_per_feature": m["bn_ratio_spread"] < 1e-9})


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
    source=f"{SRC} why LN wins",
    claim="LayerNorm removes a token's magnitude and keeps its direction; without it, large-norm tokens "
    "dominate the attention scores and the softmax turns one-hot, so gradients vanish (gain control).",
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
        "1/√2); RMSNorm keeps it exactly (cos = {cos_rms:.6f})."
    ),
    verdict="holds under conditions",
)
def w05() -> Evidence:
    """The evidence for W05. See book/04_why.ipynb, section "What LayerNorm does instead: gain control"."""
    sweep, direction = gain_sweep(), direction_kept()
    none, ln = sweep["none"][-1], sweep["ln"][-1]
    ln_entropies = [s["entropy"] for s in sweep["ln"]]
    nums = {"t": 16, "max_spread": GAIN_SPREADS[-1], "entropy_none": none["entropy"], "entropy_ln": ln["entropy"],
            "uniform_entropy": ln["uniform_entropy"], "ln_entropy_range": max(ln_entropies) - min(ln_entropies),
            "grad_none": none["softmax_grad"], "grad_ln": ln["softmax_grad"],
            "top_none": none["top_is_largest"], "share_none": none["share_largest"],
            "cos_ln": direction["cos_ln"], "cos_rms": direction["cos_rms"]}
    return Evidence(
        nums,
        {"saturates_without_ln": nums["entropy_none"] < 0.5 * nums["entropy_ln"],
         "gradient_collapses": nums["grad_none"] < 0.5 * nums["grad_ln"],
         # The token directions are the same at every spread; only ε = 1e-5 against σ² ≥ 1 differs.
         "ln_ignores_norms": nums["ln_entropy_range"] < 1e-4,
         "largest_not_always_top": nums["top_none"] < 0.9,
         "ln_direction_closed_form": abs(nums["cos_ln"] - direction["closed_form"]) < 1e-12,
         "rms_keeps_direction": abs(nums["cos_rms"] - 1) < 1e-12},
    )

