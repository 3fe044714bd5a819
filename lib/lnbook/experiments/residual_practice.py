"""Chapter 5 (seed 004), book/05_residual: LayerNorm's backward, precision, costs and sharding, claims
R10, R12–R16, R18, R21, and the chapter's exercises.

Sections of the chapter: "LayerNorm's backward, ε and precision" (R10, R13, R16, R18), "What the pair
costs" (R12, R14, R21) and "LayerNorm across devices" (R15). The rest of the chapter is
:mod:`lnbook.experiments.residual` and :mod:`lnbook.experiments.residual_training`.

Quoted constants (GPT-2 small's sizes, PyTorch's autocast lists, the H100's datasheet) name their
source where they are defined.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from lnbook import distributed, norms, variance
from lnbook.claims import Evidence, claim
from lnbook.experiments.common import F64, H100, max_abs, randn, roofline_seconds
from lnbook.models import TransformerBlock, deepnorm_constants, gpt2_init_

SRC = "seed 004"
CHAPTER = "book/05_residual"  # the chapter that shows this module's claims

# ----------------------------------------------------------------------------- LayerNorm's backward


def grad_vs_scale(scales=(1e-4, 1e-2, 1.0, 1e2), d: int = 64, seed: int = 6) -> dict[float, float]:
    """‖∂⟨c, LN(s·x)⟩/∂x'‖ at x' = s·x for each scale s (ε = 1e-5)."""
    x, c = randn(d, seed=seed), randn(d, seed=seed + 1)
    out = {}
    for s in scales:
        xs = (s * x).requires_grad_()
        (c * norms.layer_norm(xs, (d,), eps=1e-5)).sum().backward()
        out[s] = float(xs.grad.norm())
    return out


@claim(
    "R10",
    source=f"{SRC} §6.3",
    claim="LayerNorm's backward carries a factor 1/√(Var + ε): large activations get small gradients.",
    statement=(
        "Holds, until ε takes over. LN(s·x) = LN(x) when ε ≪ Var, so its Jacobian scales as 1/s: the gradient "
        "norm times s is {prod_1e2:.4f} at s = 100, {prod_1:.4f} at s = 1 and {prod_1e_2:.4f} at s = 0.01. For "
        "rows whose variance is far below ε the factor is capped at 1/√ε: at s = 10⁻⁴ the gradient is "
        "{g_1e_4:.1f}, not the {uncapped:.0f} that 1/s would give."
    ),
    verdict="holds",
)
def r10() -> Evidence:
    """The evidence for R10. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    g = grad_vs_scale()
    nums = {"prod_1e2": 100 * g[1e2], "prod_1": g[1.0], "prod_1e_2": 0.01 * g[1e-2], "g_1e_4": g[1e-4],
            "uncapped": g[1.0] / 1e-4}
    # Var(s·x) = s²·Var(x) ≈ s²; ε = 1e-5 changes the factor by ε/(2s²): 5e-10 at s = 100, 0.05 at s = 0.01.
    return Evidence(nums, {"inverse_scale": math.isclose(nums["prod_1e2"], nums["prod_1"], rel_tol=1e-4),
                           "eps_visible_at_0.01": abs(nums["prod_1e_2"] / nums["prod_1"] - 1) > 0.01,
                           "capped": nums["g_1e_4"] < nums["uncapped"] / 10})


@claim(
    "R16",
    source=f"{SRC} §7.3",
    claim="To avoid NaN, lower LayerNorm's ε (for example from 1e-5 to 1e-6).",
    statement=(
        "Does not hold: lowering ε raises the worst-case factor 1/√(Var + ε) of a constant row from {rstd_5:.0f} "
        "to {rstd_6:.0f}, and it does nothing for the NaN that cancellation causes: a constant float32 row of "
        "value {value:g} gets the one-pass variance {naive_var:g}, and √(Var + ε) of that is NaN for every ε "
        "below {neg:g}. The cures are the two-pass or Welford variance ({two_pass_var:g} on the same row) and, "
        "if anything, a larger ε."
    ),
    verdict="does not hold",
)
def r16() -> Evidence:
    """The evidence for R16. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    value = 3000.1
    row = torch.full((1, 1024), value, dtype=torch.float32)
    row[0, ::2] = torch.nextafter(torch.tensor(value), torch.tensor(1e9))  # two neighbouring floats
    naive, two = float(variance.naive(row)), float(variance.two_pass(row))
    nums = {"rstd_5": 1 / math.sqrt(1e-5), "rstd_6": 1 / math.sqrt(1e-6), "value": value,
            "naive_var": naive, "neg": -naive, "two_pass_var": two}
    nan = lambda eps: math.isnan(float(torch.sqrt(torch.tensor(naive + eps, dtype=torch.float32))))  # noqa: E731
    return Evidence(nums, {"smaller_eps_larger_factor": nums["rstd_6"] > nums["rstd_5"],
                           "naive_negative": naive < 0, "nan_at_1e-6": nan(1e-6) and nan(1e-5),
                           # Two neighbouring floats 2.4e-4 apart: the true variance is about 1.5e-8, and two-pass stays near it.
                           "two_pass_nonnegative": 0 <= two < 1e-6})


# ----------------------------------------------------------------------------- precision


R13_ROWS = {"rows": 8, "d": 1024, "seed": 7}  # the rows of R13: std 1 around the mean under test


@claim(
    "R13",
    source=f"{SRC} §9",
    claim="Welford's algorithm is more numerically stable; compute LayerNorm's statistics in FP32 for FP16 inputs.",
    statement=(
        "Holds under conditions: the second half always, the first in part. On rows of std 1 and mean 10⁴ in float32 the one-pass E[x²] − E[x]² has relative error "
        "{naive32:.2g}. Welford's update repairs most of it ({wel32:.1g}), but computed element by element in "
        "float32 it is less accurate than two passes ({two32:.1g}): its merit is needing one pass, not more "
        "stability. In float16 (mean 100) the one-pass form fails completely ({naive16:.2g}) and Welford in float16 "
        "arithmetic is poor ({wel16:.2g}); two passes give {two16:.2g} (PyTorch's float16 sums accumulate in "
        "float32 internally), and the statistics computed in float32 {fp32_16:.1g}. Float32 statistics are the "
        "part that matters."
    ),
    verdict="holds under conditions",
)
def r13() -> Evidence:
    """The evidence for R13. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    e32 = variance.relative_errors(1e4, torch.float32, **R13_ROWS)
    e16 = variance.relative_errors(100.0, torch.float16, **R13_ROWS)
    nums = {"naive32": e32["naive"], "two32": e32["two_pass"], "wel32": e32["welford"],
            "naive16": e16["naive"], "two16": e16["two_pass"], "wel16": e16["welford"], "fp32_16": e16["fp32_stats"]}
    # float32's 2⁻²⁴ ≈ 6e-8 per operation: two passes over 1024 values stay below 1e-5; Welford's running mean
    # of size 1e4 loses about 1e4·2⁻²⁴ per update, so 1e-2 is its bound here.
    return Evidence(nums, {"naive32_fails": nums["naive32"] > 0.1, "two_pass32_accurate": nums["two32"] < 1e-5,
                           "welford32_repairs": nums["wel32"] < 1e-2,
                           "naive16_fails": nums["naive16"] > 1,
                           "fp32_stats_best": nums["fp32_16"] < min(1e-5, nums["two16"])})


def autocast_dtypes() -> dict[str, str]:
    """Output dtypes of F.layer_norm and F.linear under torch.autocast("cpu", dtype=torch.bfloat16)."""
    x = randn(4, 16, seed=8, dtype=torch.float32)
    w = randn(16, 16, seed=9, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = torch.nn.functional.linear(x, w)
        out = {"ln_fp32_input": torch.nn.functional.layer_norm(x, (16,)).dtype,
               "linear": h.dtype, "ln_bf16_input": torch.nn.functional.layer_norm(h, (16,)).dtype}
    out = {k: str(v).removeprefix("torch.") for k, v in out.items()}
    ref = torch.nn.functional.layer_norm(h.to(F64), (16,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out["ln_bf16_err"] = max_abs(torch.nn.functional.layer_norm(h, (16,)).to(F64), ref)
    return out


@claim(
    "R18",
    source=f"{SRC} §7.3, §8.4",
    claim="Keep LayerNorm in FP32 under mixed precision.",
    statement=(
        "Holds under conditions: on CUDA by default, not on the CPU. PyTorch's autocast reference lists layer_norm among the CUDA "
        "ops that autocast to float32. On the CPU (PyTorch {version}) under torch.autocast('cpu', bfloat16), "
        "layer_norm is not in that list: it runs in its input's dtype, {ln_bf16_input} for the {linear} output of a "
        "linear layer and {ln_fp32_input} for a float32 input. The bfloat16 result is still accurate to "
        "{ln_bf16_err:.2g}, within one bfloat16 rounding of the output: the kernel's statistics are computed in "
        "float32; only the output is stored in the input's dtype."
    ),
    verdict="holds under conditions",
)
def r18() -> Evidence:
    """The evidence for R18. See book/05_residual.ipynb, section "LayerNorm's backward, ε and precision"."""
    a = autocast_dtypes()
    return Evidence({**a, "version": torch.__version__.split("+")[0]},
                    {"linear_autocasts": a["linear"] == "bfloat16", "cpu_ln_follows_input": a["ln_bf16_input"] == "bfloat16",
                     "fp32_in_fp32_out": a["ln_fp32_input"] == "float32",
                     # Outputs of size ≤ √15 < 4: one bfloat16 rounding is at most 2⁻⁸·4 = 2⁻⁶.
                     "bf16_output_one_rounding": a["ln_bf16_err"] <= 2 ** -6})


# ----------------------------------------------------------------------------- memory and compute


def saved_bytes(checkpoint: bool, d: int = 64, seed: int = 10) -> int:
    """Bytes of the non-parameter tensors autograd saves for backward in one Pre-LN Transformer layer."""
    torch.manual_seed(seed)
    layer = TransformerBlock(d, 4, "pre")
    params = {p.data_ptr() for p in layer.parameters()}
    x = randn(4, 32, d, seed=seed, dtype=torch.float32).requires_grad_()
    seen: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if checkpoint:
            y = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=True)
        else:
            y = layer(x)
    y.sum().backward()
    return sum(seen.values())


@claim(
    "R12",
    source=f"{SRC} §9",
    claim="Activation recomputation adds about 30 % forward compute and saves 40–50 % of activation memory.",
    statement=(
        "Holds under conditions: both numbers depend on what is checkpointed. Measured with saved-tensor hooks on "
        "one Pre-LN Transformer layer (width 64, 4×32 tokens), autograd keeps {plain_kb:.0f} kB of activations "
        "for backward; checkpointing the whole layer keeps only its input, {ckpt_kb:.0f} kB, a saving of "
        "{saving:.0%}, far more than 40–50 %. The price is one more forward pass of the layer: +100 % forward "
        "compute, about +33 % of a training step whose backward costs twice the forward. Checkpointing only some "
        "sublayers gives savings and costs in between."
    ),
    verdict="holds under conditions",
)
def r12() -> Evidence:
    """The evidence for R12. See book/05_residual.ipynb, section "What the pair costs"."""
    plain, ckpt = saved_bytes(False), saved_bytes(True)
    nums = {"plain_kb": plain / 1024, "ckpt_kb": ckpt / 1024, "saving": 1 - ckpt / plain}
    input_bytes = 4 * 32 * 64 * 4
    return Evidence(nums, {"keeps_only_input": ckpt == input_bytes, "saving_above_half": nums["saving"] > 0.5})


GPT2_SMALL = {"n_layer": 12, "d": 768, "heads": 12, "vocab": 50257, "context": 1024}


def gpt2_small_counts() -> dict[str, float]:
    """Parameters and forward FLOPs per token of GPT-2 small, counted by hand (tied embeddings).

    FLOPs: 2 per multiply-add of every matrix product (weights, the attention's QKᵀ and AV over a full
    context, the tied output layer); LayerNorm ≈ 8 per element (mean, centre, square, sum, scale,
    γ, β, and one more for rstd broadcast), a residual add 1 per element.
    """
    L, d, V, T = (GPT2_SMALL[k] for k in ("n_layer", "d", "vocab", "context"))
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
    ln_params = (2 * L + 1) * 2 * d
    params = V * d + T * d + L * per_layer + 2 * d
    matmul = 2 * L * (12 * d * d) + 2 * L * 2 * T * d + 2 * d * V
    ln_flops, add_flops = 8 * d * (2 * L + 1), d * 2 * L
    total = matmul + ln_flops + add_flops
    return {"params": params, "ln_params": ln_params, "ln_param_share": ln_params / params,
            "flops": total, "add_share": add_flops / total, "ln_add_share": (ln_flops + add_flops) / total}


def gpt2_small_module_params() -> int:
    """Parameters of GPT-2 small built from this library's layers on the meta device (no memory)."""
    L, d, V, T, h = (GPT2_SMALL[k] for k in ("n_layer", "d", "vocab", "context", "heads"))
    with torch.device("meta"):
        layers = nn.ModuleList([TransformerBlock(d, h) for _ in range(L)] + [nn.LayerNorm(d)])
    return sum(p.numel() for p in layers.parameters()) + V * d + T * d


@claim(
    "R21",
    source=f"{SRC} §7.1",
    claim="LN and residual connections add under 1 % of the parameters and the compute.",
    statement=(
        "Holds for parameters and arithmetic. In GPT-2 small (12 layers, d = 768, vocabulary 50257, context "
        "1024) the 25 LayerNorms hold {ln_params} of {params} parameters ({ln_param_share:.3%}); LayerNorm and "
        "the residual adds are {ln_add_share:.3%} of the forward FLOPs per token. Their share of the running "
        "time is larger, because they are memory-bound (R14 and the kernels chapter)."
    ),
    verdict="holds",
)
def r21() -> Evidence:
    """The evidence for R21. See book/05_residual.ipynb, section "What the pair costs"."""
    c = gpt2_small_counts()
    nums = {k: c[k] for k in ("ln_params", "params", "ln_param_share", "ln_add_share")}
    return Evidence(nums, {"params_match_modules": c["params"] == gpt2_small_module_params(),
                           # 124,439,808: the count Hugging Face's GPT2Model reports for "gpt2".
                           "gpt2_small_size": c["params"] == 124_439_808,
                           "under_one_percent": c["ln_param_share"] < 0.01 and c["ln_add_share"] < 0.01})


def add_vs_matmul_cost(tokens: int, d: int = 768, element_size: int = 2) -> dict[str, float]:
    """Counted FLOPs and bytes of a residual add and of the MLP's first matrix product on (tokens, d),
    and their least times on an H100 (:func:`roofline_seconds`), in bfloat16.

    The add reads two (tokens, d) tensors and writes one: one FLOP per output. The product
    (tokens, d) @ (d, 4d) does 2·tokens·d·4d FLOPs and reads x and W and writes its output once.
    """
    add = {"flops": tokens * d, "bytes": 3 * tokens * d * element_size}
    mm = {"flops": 2 * tokens * d * 4 * d, "bytes": (tokens * d + d * 4 * d + tokens * 4 * d) * element_size}
    t_add, t_mm = (roofline_seconds(c["flops"], c["bytes"]) for c in (add, mm))
    return {"flop_ratio": add["flops"] / mm["flops"], "byte_ratio": add["bytes"] / mm["bytes"],
            "time_ratio": t_add / t_mm}


R14_TOKENS = (512, 8192)


@claim(
    "R14",
    source=f"{SRC} §9",
    claim="The residual add is O(d) against O(d²) matrix products: its cost is negligible.",
    statement=(
        "Holds under conditions: for arithmetic, not for time. A residual add on 512 tokens of width 768 does "
        "{flop_ratio:.2g} of the FLOPs of the MLP's first matrix product but moves {byte_ratio:.0%} of its "
        "bytes, because it reads two values and writes one for every FLOP. On an H100 (datasheet figures: "
        "{bandwidth_tbs:.2f} TB/s, {tflops:.0f} TFLOP/s in bfloat16), where time is at least bytes over "
        "bandwidth or FLOPs over peak, the add takes at least {time_ratio:.2f} of the product's time, "
        "{excess:.0f}× its FLOP share; with 8192 tokens, where the product is bound by arithmetic, still "
        "{time_ratio_long:.2f} (closed form 3·peak/(4·bandwidth·d) = {closed_form_long:.2f}). That is why the "
        "kernels chapter fuses it with LayerNorm (R11)."
    ),
    verdict="holds under conditions",
)
def r14() -> Evidence:
    """The evidence for R14. See book/05_residual.ipynb, section "What the pair costs"."""
    short, long = (add_vs_matmul_cost(t) for t in R14_TOKENS)
    d = 768
    closed = 3 * H100["flops"] / (4 * H100["bandwidth"] * d)  # add bytes 6·T·d over matmul FLOPs 8·T·d² at peak
    nums = {**short, "excess": short["time_ratio"] / short["flop_ratio"], "time_ratio_long": long["time_ratio"],
            "closed_form_long": closed, "bandwidth_tbs": H100["bandwidth"] / 1e12, "tflops": H100["flops"] / 1e12}
    return Evidence(nums, {
        "negligible_in_flops": nums["flop_ratio"] < 1e-3,
        # "Not negligible in time": at least a tenth of the product's least time, in both regimes.
        "not_negligible_in_time": min(nums["time_ratio"], nums["time_ratio_long"]) > 0.1,
        # Both sides are exact counts; the compute-bound case must meet its closed form to rounding.
        "closed_form_long": abs(nums["time_ratio_long"] - closed) < 1e-12 * closed})


# ----------------------------------------------------------------------------- distributed


R15_N = 96
R15_CONFIGS = ({"N": R15_N}, {"N": R15_N, "shift": 1e4}, {"N": R15_N, "shift": 1e4, "stats": "sums"})


@functools.lru_cache(maxsize=None)
def sharded_errors(processes: int) -> list[dict[str, float]]:
    """Per config of :data:`R15_CONFIGS`: the worst error over ranks of y, dx, dw, db (one launch)."""
    per_rank = distributed.launch(distributed.shard_checks, processes, list(R15_CONFIGS))
    return [{k: max(r[i][k] for r in per_rank) for k in ("y", "dx", "dw", "db", "y_single", "dx_single")}
            for i in range(len(R15_CONFIGS))]


@claim(
    "R15",
    source=f"{SRC} §9",
    claim="With the feature dimension split across devices, LayerNorm's statistics need a cross-device reduction.",
    statement=(
        "Holds, and the reduction is small. With the {N} features of each row split over 2 and 4 local processes "
        "(gloo), the sharded LayerNorm's largest error against float64 is {err2:.2g} and {err4:.2g} (y, dx, dw, "
        "db), against {err_single:.2g} for unsharded float32. With a mean of 10⁴ the Welford merge stays at "
        "{err_welford_shift:.2g}, no worse than unsharded float32 ({err_single_shift:.2g}: the rounding of x "
        "itself), while one all-reduce of Σx and Σx² gives {err_sums_shift:.2g}. Each process "
        "receives {bytes_fwd4:.0f} + {bytes_bwd4:.0f} bytes per token (forward statistics, backward sums) at 4 "
        "processes, against {act_bytes} bytes of a float32 activation row of width 4096."
    ),
    verdict="holds",
)
def r15() -> Evidence:
    """The evidence for R15. See book/05_residual.ipynb, section "LayerNorm across devices"."""
    e2, e4 = sharded_errors(2), sharded_errors(4)
    worst = lambda e: max(e[k] for k in ("y", "dx", "dw", "db"))  # noqa: E731
    b = distributed.bytes_per_token(4)
    nums = {"N": R15_N, "err2": worst(e2[0]), "err4": worst(e4[0]), "err_single": max(e4[0]["y_single"], e4[0]["dx_single"]),
            "err_welford_shift": max(worst(e2[1]), worst(e4[1])),
            "err_single_shift": max(e4[1]["y_single"], e4[1]["dx_single"]), "err_sums_shift": max(worst(e2[2]), worst(e4[2])),
            "bytes_fwd4": b["forward"], "bytes_bwd4": b["backward"], "act_bytes": 4096 * 4}
    # Float32 on O(1) values: within 4× torch's own unsharded error plus 2 ulp at 1 (2 × 1.2e-7).
    ok = lambda e: e <= 4 * nums["err_single"] + 2.4e-7  # noqa: E731
    return Evidence(nums, {"sharded_equals_unsharded": ok(nums["err2"]) and ok(nums["err4"]),
                           "welford_shift_ok": nums["err_welford_shift"] <= 2 * nums["err_single_shift"],
                           "sums_shift_fails": nums["err_sums_shift"] > 1000 * nums["err_single_shift"],
                           "bytes_tiny": nums["bytes_fwd4"] + nums["bytes_bwd4"] < 0.01 * nums["act_bytes"]})


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float]:
    """The chapter's exercise answers, computed (tests/test_residual.py checks them against closed forms)."""
    d = 8
    u = torch.zeros(d, 1, dtype=F64)
    u[0] = 1.0
    smin = lambda a: float(torch.linalg.svdvals(torch.eye(d, dtype=F64) - a * u @ u.T).min())  # noqa: E731
    torch.manual_seed(0)
    model = nn.Sequential(*[TransformerBlock(16, 4) for _ in range(12)])
    gpt2_init_(model, 12)
    proj_std = float(model[0][1].sublayer.proj.weight.detach().std())
    alpha, beta = deepnorm_constants(12)
    c = gpt2_small_counts()
    return {"smin_099": smin(0.99), "smin_150": smin(1.5), "smin_099_10": smin(0.99) ** 10,
            "gpt2_proj_std": proj_std, "alpha_12": alpha, "beta_12": beta, "ln_params": c["ln_params"]}
