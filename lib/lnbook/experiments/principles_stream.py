"""Chapter 2 (seed 001), book/02_principles: a stream whose volume jumps a hundredfold, normalized per
sample (LayerNorm) or by running statistics, claims M04, M12 and M05.

Section of the chapter: "When the volume is turned up" (with its subsection on the length of x̂).

The rest of the chapter is :mod:`lnbook.experiments.principles` (one sample, the zoo, batch independence,
coupling, shift invariance) and :mod:`lnbook.experiments.principles_affine` (γ and β).
"""

from __future__ import annotations

import math

import torch

from lnbook import args
from lnbook.claims import claim
from lnbook.experiments.common import F64, ln, max_abs, randn
from lnbook.experiments.toys import SPARSE, sparse_example

ALONE = "单打独斗的力量"  # seed 001's heading (principles.py cites it too)
CHAPTER = "book/02_principles"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- §3: a stream whose volume jumps

STREAM = {"steps": 240, "jump_at": 80, "factor": 100.0, "width": 16, "momentum": 0.01}


def volume_stream(steps: int = STREAM["steps"], jump_at: int = STREAM["jump_at"], factor: float = STREAM["factor"],
                  width: int = STREAM["width"], seed: int = 35) -> tuple[torch.Tensor, torch.Tensor]:
    """A stream of N(0, 1) feature vectors whose scale jumps by ``factor`` at ``jump_at``: returns (quiet, stream), (T, d)."""
    quiet = randn(steps, width, seed=seed)
    gain = torch.where(torch.arange(steps) < jump_at, 1.0, factor).to(F64)  # (T,)
    return quiet, quiet * gain[:, None]


def running_standardize(x: torch.Tensor, momentum: float = STREAM["momentum"], eps: float = 1e-5) -> torch.Tensor:
    """Standardize each row of a stream x (T, d) per feature with running statistics of the rows before it.

    The running mean and variance start at 0 and 1 and are exponential moving averages updated after
    each row, as BatchNorm's buffers are; this is the "running statistics" normalizer of the source.
    """
    op = "running_standardize"
    args.check_float_tensor(op, "x", x)
    if x.dim() != 2:
        raise args.arg_error(ValueError, op, "x", "shape (T, d)", tuple(x.shape))
    args.check_number(op, "momentum", momentum, lambda v: 0 < v <= 1, "a number in (0, 1]")
    args.check_number(op, "eps", eps, lambda v: v >= 0, "a number >= 0")
    mean, var = torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype)  # (d,)
    out = []
    for row in x:
        out.append((row - mean) / torch.sqrt(var + eps))
        mean, var = (1 - momentum) * mean + momentum * row, (1 - momentum) * var + momentum * (row - mean) ** 2
    return torch.stack(out)


def output_rms(y: torch.Tensor) -> torch.Tensor:
    return y.square().mean(-1).sqrt()  # (T,): ‖y_t‖/√d


@claim(
    "M04",
    anchors=(("001", ALONE, "对非平稳数据具有极强的鲁棒性"), ("001", ALONE, "导致产生巨大的归一化值"),
             ("001", ALONE, "Layer Normalization 对此免疫")),
    claim="When the input's scale suddenly jumps (the volume is turned up), LayerNorm's output stays under "
    "control, while a normalizer with running statistics produces huge values.",
    statement=(
        "Holds for the output, and the price is blindness to the volume. After the input's scale jumps "
        "×{factor:.0f}, a per-feature normalizer with running statistics puts out values with an RMS (root "
        "mean square) of up to {peak_rms:.0f} and needs {recovery_steps} steps to come back below 2 (the "
        "noise-free prediction for its moving average: {predicted_steps} steps); LayerNorm's output RMS is "
        "σ/√(σ²+ε) at every step (the closed form holds to rounding), within {ln_rms_dev:.4%} of 1. The same "
        "property erases the jump: each loud row normalizes to the quiet row it was scaled from, up to the "
        "small difference ε makes."
    ),
    verdict="holds",
    decide=lambda n: {
        # The first loud row is standardized with the quiet statistics: RMS ≈ f·(RMS of N(0,1) over 16 features).
        "running_blows_up": n["peak_rms"] > n["factor"] / 2,
        # One seeded noisy stream against a noise-free prediction: ±30 % allows the sampling noise of 16 features.
        "recovery_as_predicted": abs(n["recovery_steps"] - n["predicted_steps"]) <= 0.3 * n["predicted_steps"],
        "ln_closed_form": n["ln_rms_closed_err"] < 1e-12,  # float64 rounding
        # ε/(2σ²) with σ² of 16 standard normals ≥ 0.1 here: below 1e-4.
        "ln_controlled": n["ln_rms_dev"] < 1e-4, "ln_blind": n["ln_blind_diff"] < 1e-4,
    },
    # The world where running statistics kept up with the jump: no burst, nothing to recover from.
    null=lambda n: {**n, "peak_rms": 1.0, "recovery_steps": 0},
    answer_zh="成立，代价是对音量失明：输入尺度跃升 {factor:.0f} 倍后，用滑动统计量的逐特征归一化输出的均方根（RMS）高达 "
    "{peak_rms:.0f}，要 {recovery_steps} 步才回落到 2 以下，而 LayerNorm 每一步的输出 RMS 都在 1 的 {ln_rms_dev:.4%} 之内；"
    "同样的性质也抹去了跃升：响亮的行与其原本安静的行归一化后只差 ε 造成的微小差别。",
)
def m04() -> dict:
    """The evidence for M04. See book/02_principles.ipynb, section "When the volume is turned up"."""
    quiet, stream = volume_stream()
    j, f, m = STREAM["jump_at"], STREAM["factor"], STREAM["momentum"]
    run_rms = output_rms(running_standardize(stream, m))
    y = ln(stream, eps=1e-5)
    sigma = stream.std(-1, correction=0)
    after = run_rms[j:]
    recovery = int((after >= 2).int().argmin())  # first step after the jump with RMS below 2
    # Noise-free EMA: var_k = (1−m)^k + (1 − (1−m)^k) f²; RMS f/√var_k < 2 once 1 − (1−m)^k > (f²/4 − 1)/(f² − 1).
    predicted = math.ceil(math.log(1 - (f * f / 4 - 1) / (f * f - 1)) / math.log(1 - m))
    return {**STREAM, "peak_rms": float(after.max()), "recovery_steps": recovery, "predicted_steps": predicted,
            "ln_rms_closed_err": max_abs(output_rms(y), sigma / (sigma**2 + 1e-5).sqrt()),
            "ln_rms_dev": float((output_rms(y) - 1).abs().max()),
            "ln_blind_diff": max_abs(y[j:], ln(quiet[j:], eps=1e-5))}


# ----------------------------------------------------------------------------- §3: learning on the stream

READOUT_LRS = (5e-6, 0.01, 0.03, 0.1)  # the first below 2/max‖f‖² of the running normalizer, the rest above
READOUT_SEEDS = (0, 1, 2, 3, 4)


def stream_readout(features: str, lr: float, seed: int, jump: bool = True) -> dict[str, torch.Tensor]:
    """Online SGD, one step per row, of a linear readout v on normalized features of the volume stream.

    ``features``: "ln" (LayerNorm, ε = 1e-5) or "running" (:func:`running_standardize`). The target of row t
    is u·q_t/√d for the quiet row q_t, so the volume carries no information. v starts at 0; the loss
    (v·f_t − y_t)²/2 and the gradient's norm |v·f_t − y_t|·‖f_t‖ are recorded before each step, with the
    loss of predicting 0 and ‖f_t‖² (the curvature of that loss in v along the step). ``jump=False`` feeds the
    quiet stream itself.
    """
    quiet, stream = volume_stream(seed=seed)
    x = stream if jump else quiet
    feats = ln(x, 1e-5) if features == "ln" else running_standardize(x)  # (T, d)
    width = STREAM["width"]
    target = quiet @ randn(width, seed=seed + 100) / math.sqrt(width)  # (T,)
    v = torch.zeros(width, dtype=F64)
    loss, grad = [], []
    with torch.no_grad():
        for f, y in zip(feats, target):
            err = v @ f - y
            loss.append(0.5 * err * err)
            grad.append(err.abs() * f.norm())
            v = v - lr * err * f  # overflows to inf/nan once it diverges: recorded as such
    return {"loss": torch.stack(loss), "grad": torch.stack(grad), "zero_loss": 0.5 * target.square(),
            "curvature": feats.square().sum(-1)}


def _blowup(run: dict[str, torch.Tensor]) -> float:
    """log10 of the final loss (last 20 steps) over the loss just before the jump; 308 once it overflowed."""
    j = STREAM["jump_at"]
    final, before = float(run["loss"][-20:].mean()), float(run["loss"][j - 20 : j].mean())
    return math.log10(final / before) if math.isfinite(final) else 308.0


def _learned(run: dict[str, torch.Tensor]) -> float:
    """The loss of the 20 steps before the jump over the loss of predicting 0 there: 1 = learned nothing."""
    j = STREAM["jump_at"]
    return float(run["loss"][j - 20 : j].mean() / run["zero_loss"][j - 20 : j].mean())


def _decide_m12(n) -> dict[str, bool]:
    return {
        # The rates that learn cut the quiet-phase loss below three quarters of predicting 0 in every run (a
        # rate that learns nothing stays at 1; at 0.1 the online steps are noisy, 6–59 % over the seeds).
        "learning_rates_learn": n["run_learned_worst"] < 0.75,
        # Diverged: the final loss 10³ times the pre-jump loss or beyond (float64 overflow counts). Every
        # learning run diverges with running statistics, none with LayerNorm at any rate.
        "running_diverges": n["run_diverged"] == n["learning_runs"], "ln_never_diverges": n["ln_diverged"] == 0,
        # The gradient explodes: at least 10³ times its pre-jump size in every learning run.
        "gradient_explodes": n["run_grad_jump_min"] > 3,
        # Safe only below 2/max‖f‖², where the quiet phase learns almost nothing (loss ≥ 90 % of predicting 0).
        "safe_rate_learns_nothing": n["safe_lr"] > READOUT_LRS[0] and n["run_learned_safe"] > 0.9
        and n["run_blowup_safe"] < 3,
    }


@claim(
    "M12",
    anchors=(("001", ALONE, "这可能导致梯度爆炸，模型发散"),),
    claim="Standardizing with stale running statistics after the input's scale jumps can lead to exploding "
    "gradients and a diverging model.",
    statement=(
        "Holds, for every learning rate that learns at all. A linear readout trained online (one SGD step per "
        "row) on the volume stream of M04, at each learning rate that learns before the jump, over several "
        "seeds: with running statistics the jump makes the gradient at least $10^{{{run_grad_jump_min:.1f}}}$ "
        "times its earlier size, and the loss diverges (ends a thousand times above its pre-jump level, or "
        "overflows) in {run_diverged} of {learning_runs} runs. On LayerNorm's features, at the same rates and "
        "a much smaller one, it diverges in {ln_diverged} of {ln_runs}. The running normalizer is safe only "
        "below 2/max‖f‖², f a row of its features, and at such a rate the quiet phase learns almost nothing: the loss "
        "stays at {run_learned_safe:.0%} of predicting 0."
    ),
    verdict="holds",
    decide=_decide_m12,
    # The world where stale statistics do no harm: no run diverges, the gradient does not jump.
    null=lambda n: {**n, "run_diverged": 0, "run_grad_jump_min": 0.0},
    answer_zh="成立，而且对每个真能学习的学习率都成立：在 M04 的音量跃升数据流上在线训练一个线性读出层，用滑动统计量归一化时，"
    "梯度在跃升后至少放大 $10^{{{run_grad_jump_min:.1f}}}$ 倍，{learning_runs} 次运行中 {run_diverged} 次发散，LayerNorm 特征则 "
    "{ln_runs} 次中 {ln_diverged} 次发散；滑动统计量只有在学习率低于 2/max‖f‖² 时才安全，而那时安静阶段几乎什么也学不到"
    "（损失仍为预测 0 时的 {run_learned_safe:.0%}）。",
)
def m12() -> dict:
    """The evidence for M12. See book/02_principles.ipynb, section "When the volume is turned up"."""
    j = STREAM["jump_at"]
    runs = {(kind, lr, s): stream_readout(kind, lr, s) for kind in ("running", "ln") for lr in READOUT_LRS
            for s in READOUT_SEEDS}
    learning = [(lr, s) for lr in READOUT_LRS[1:] for s in READOUT_SEEDS]
    grad_jump = [math.log10(float(runs["running", lr, s]["grad"][j:].max() / runs["running", lr, s]["grad"][j - 20 : j].mean()))
                 for lr, s in learning]
    run_blowups = [_blowup(runs["running", lr, s]) for lr, s in learning]
    peak = max(float(runs["running", READOUT_LRS[0], s]["curvature"].max()) for s in READOUT_SEEDS)
    safe = [runs["running", READOUT_LRS[0], s] for s in READOUT_SEEDS]
    return {
        "learning_lrs": ", ".join(f"{lr:g}" for lr in READOUT_LRS[1:]), "seeds": len(READOUT_SEEDS),
        "learning_runs": len(learning), "ln_runs": len(READOUT_LRS) * len(READOUT_SEEDS),
        "run_learned_worst": max(_learned(runs["running", lr, s]) for lr, s in learning),
        "run_diverged": sum(b >= 3 for b in run_blowups), "run_blowup_min": min(run_blowups),
        "run_grad_jump_min": min(grad_jump),
        "ln_diverged": sum(_blowup(runs["ln", lr, s]) >= 3 for lr in READOUT_LRS for s in READOUT_SEEDS),
        "run_curv_peak": peak / STREAM["width"], "safe_lr": 2 / peak, "safe_run_lr": READOUT_LRS[0],
        "run_learned_safe": sum(_learned(r) for r in safe) / len(safe),
        "run_blowup_safe": max(_blowup(r) for r in safe),
    }


# ----------------------------------------------------------------------------- §3: the norm of x̂


M05_LR = 0.03  # one of M12's learning rates that learn


def top_eigenvalue(rows: torch.Tensor) -> float:
    """λ_max of the mean of f fᵀ over rows f (B, d): the squared-error loss's curvature in a linear readout."""
    return float(torch.linalg.eigvalsh(rows.T @ rows / rows.shape[0])[-1])


def steady_readout() -> dict:
    """M05's consequence: the readout's curvature and its losses on the stream of M04, loud against quiet."""
    width, j = STREAM["width"], STREAM["jump_at"]
    dev, peak, steady = 0.0, 0.0, 0.0
    for s in READOUT_SEEDS:
        loud, quiet = stream_readout("ln", M05_LR, s), stream_readout("ln", M05_LR, s, jump=False)
        dev = max(dev, float((loud["curvature"] / width - 1).abs().max()))
        steady = max(steady, max_abs(loud["loss"], quiet["loss"]))
        peak = max(peak, float(stream_readout("running", 0.0, s)["curvature"].max()) / width)
    _, stream = volume_stream()
    iso = ln(stream[j : j + 64], 1e-5)  # (64, d): 64 rows of the stream after the jump
    aligned = ln(randn(width, seed=51) + 0.05 * randn(64, width, seed=52), 1e-5)  # (64, d): one direction, jittered
    return {"width": width, "seeds": len(READOUT_SEEDS), "lr": M05_LR, "factor": STREAM["factor"],
            "ln_curv_dev": dev, "run_curv_peak": peak, "ln_steady_diff": steady,
            "lam_iso": top_eigenvalue(iso), "lam_aligned": top_eigenvalue(aligned)}


def xhat_norm_ratio(x: torch.Tensor, eps: float) -> torch.Tensor:
    """‖LN_ε(x)‖/√d per row: 1 when ε = 0 and σ > 0."""
    return ln(x, eps).norm(dim=-1) / math.sqrt(x.shape[-1])


@claim(
    "M05",
    anchors=(("001", ALONE, "向量的 L2 范数始终是常数"), ("001", ALONE, "这保持了损失曲面的曲率稳定"),
             ("001", ALONE, "使优化器即使在输入数据狂野且不可预测时")),
    claim="The L2 norm of the normalized vector is always √d, d the number of features; this keeps the "
    "curvature of the loss surface stable, so the optimizer progresses steadily even when the input data are "
    "wild and unpredictable. Read in the source's setting, an input whose scale jumps, with the curvature "
    "taken in the weights that read the normalized vector (the ones its norm acts on).",
    statement=(
        "Holds under conditions: ε = 0 and σ > 0. Then ‖x̂‖ = √d exactly, to float64 rounding, whatever the "
        "input. With ε > 0 the norm is √d·σ/√(σ²+ε), always below √d: negligibly for the source's vector, but "
        "{ratio_quiet_eps:.3f}·√d for the same vector scaled down a thousandfold (the closed form holds to "
        "rounding for σ from 10⁻⁴ to 100). A constant vector gives NaN with ε = 0 and the zero "
        "vector with ε > 0. The consequence holds for the input's scale, as a ceiling: on M04's stream a "
        "linear readout's curvature along each step, ‖x̂ₜ‖², stays within {ln_curv_dev:.3%} of d through the "
        "jump (running statistics: up to {run_curv_peak:.0f}·d), and online SGD on the loud stream retraces "
        "its losses on the quiet one. But the norm fixes the trace of the readout's Hessian, mean ‖x̂‖² = d, "
        "not its top eigenvalue, which sets the stable step: {lam_iso:.2f} for the stream's rows, "
        "{lam_aligned:.1f} for rows that all point one way, at most d = {width}. A change in the data's "
        "direction still moves the curvature up to d-fold."
    ),
    verdict="holds under conditions",
    kind="derivation",
    decide=lambda n: {
        # float64: a norm of unit-variance values is √d up to rounding (≈ 1e-16 relative).
        "exact_eps0": max(n["dev_random"], n["dev_sparse"]) < 1e-14,
        # The computed norm against the closed form √d·σ/√(σ²+ε): rounding only.
        "closed_form": abs(n["ratio_quiet_eps"] - n["closed_quiet"]) < 1e-12 and n["closed_max_err"] < 1e-12,
        "below_with_eps": n["ratio_sparse_eps"] < 1 and n["ratio_quiet_eps"] < 0.9,
        "constant_vector": n["nan_count"] == n["n_sparse"] and n["const_norm"] == 0.0,
        # The stream's rows have σ² ≥ 0.1, so ‖x̂‖²/d = σ²/(σ² + ε) is within 1e-4 of 1; the running
        # normalizer's first loud rows are ≈ f² = 10⁴ times larger.
        "curvature_fixed": n["ln_curv_dev"] < 1e-4 and n["run_curv_peak"] > 100,
        # The loud stream's x̂ differ from the quiet stream's by ε/(2σ²) relative, at most 1e-4 on the stream:
        # the losses, of size ≤ 1, agree to that order.
        "steady_through_jump": n["ln_steady_diff"] < 1e-3,
        # The ceiling is reached and is a ceiling: aligned rows give ≈ d (ε and rounding), isotropic rows a few.
        "ceiling_not_constant": n["lam_iso"] < 4 and abs(n["lam_aligned"] / n["width"] - 1) < 0.05
        and n["lam_aligned"] <= n["width"] + 1e-9,
    },
    # The source's world, without the condition: the norm √d whatever ε, also for the quiet vector.
    null=lambda n: {**n, "ratio_sparse_eps": 1.0, "ratio_quiet_eps": 1.0},
    answer_zh="有条件成立（ε = 0 且 σ > 0，并且只针对输入尺度）：此时 ‖x̂‖ = √d 精确成立；ε > 0 时范数小于 √d，原文的向量缩小一千倍后"
    "只剩 {ratio_quiet_eps:.3f}·√d。在 M04 的数据流上，读出层沿每一步的曲率 ‖x̂ₜ‖² 在跃升前后与 d 的相对偏差都不到 "
    "{ln_curv_dev:.3%}（滑动统计量可达 {run_curv_peak:.0f}·d）；但范数固定的只是 Hessian 的迹，其最大特征值仍可从 {lam_iso:.2f} "
    "变到 {lam_aligned:.1f}（上限 d = {width}），数据方向改变时曲率仍会变化。",
)
def m05() -> dict:
    """The evidence for M05. See book/02_principles.ipynb, section "When the volume is turned up"."""
    d = 512
    sparse = sparse_example()
    scales = torch.logspace(-4, 2, 64, dtype=F64)[:, None]  # (64, 1)
    z = randn(64, 16, seed=36)
    z = (z - z.mean(1, keepdim=True)) / z.std(1, correction=0, keepdim=True) * scales  # σ of row i = scales[i]
    closed = lambda s: s / (s * s + 1e-5) ** 0.5  # σ/√(σ²+ε), floats or tensors
    sigma_quiet = float(sparse.std(correction=0)) / 1000
    const = torch.full((8,), 3.0, dtype=F64)
    return {
        "d": d, "dev_random": abs(float(xhat_norm_ratio(randn(d, seed=37), 0.0)) - 1),
        "dev_sparse": abs(float(xhat_norm_ratio(sparse, 0.0)) - 1),
        "ratio_sparse_eps": float(xhat_norm_ratio(sparse, 1e-5)),
        "ratio_quiet_eps": float(xhat_norm_ratio(sparse / 1000, 1e-5)), "closed_quiet": closed(sigma_quiet),
        "rows": len(scales), "closed_max_err": max_abs(xhat_norm_ratio(z, 1e-5), closed(scales[:, 0])),
        "n_sparse": len(SPARSE), "nan_count": int(torch.isnan(ln(const, 0.0)).sum()),
        "const_norm": float(ln(const, 1e-5).norm()), **steady_readout(),
    }
