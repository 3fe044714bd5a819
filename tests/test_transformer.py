"""Chapter 3: exercise answers against hand-worked closed forms, the variance module, the Transformer blocks."""

from __future__ import annotations

import math

import pytest
import torch

from lnbook import models, variance
from lnbook.experiments import common, transformer_training
from lnbook.experiments import transformer as tx
from lnbook.experiments import transformer_cost as tc
from lnbook.experiments.common import FLOPS_PER_ELEMENT
from lnbook.models import Block, CausalSelfAttention, TransformerBlock

F64 = torch.float64
VARIANCES = [variance.naive, variance.two_pass, variance.welford]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- exercises


def test_chapter3_exercise_answers():
    a = tx.exercise_answers()
    # One-hot of width d: μ = 1/d, σ² = (d−1)/d², so the large entry is (1 − 1/d)·d/√(d−1) = √(d−1).
    assert math.isclose(a["onehot_768"], math.sqrt(767), rel_tol=1e-13)
    # 1 − √((d−1)/d) < 1e-3  ⇔  1/d < 1 − 0.999² = 0.001999  ⇔  d > 500.25.
    assert a["unbiased_gap_below_0_1pct_at"] == 501
    # 2^26 ≤ 1e8 < 2^27 and float32 keeps 23 fraction bits: spacing 2^(26−23).
    assert a["float32_spacing_at_1e8"] == 8.0
    # 2·7d / (24d² + 4Ld) at d = 768, L = 512: 14 / (24·768 + 4·512) = 14 / 20480.
    assert math.isclose(a["ln_flop_share_768_512"], 14 / 20480, rel_tol=1e-15)


def test_unbiased_pitfall_on_the_onehot_example():
    # Deviations (3/4, −1/4, −1/4, −1/4), squared sum 3/4: sample std √(3/4 / 3) = 1/2, population √3/4.
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)
    assert math.isclose(float(tx.ln_unbiased(x)[0]), 0.75 / 0.5, rel_tol=1e-15)
    assert math.isclose(float(tx.ln_fixed(x)[0]), 0.75 / (math.sqrt(3) / 4), rel_tol=1e-15)


@pytest.mark.parametrize("d", [2, 5, 100])
def test_one_hot_max_is_sqrt_d_minus_one(d):
    assert math.isclose(tx.one_hot_max(d), math.sqrt(d - 1), rel_tol=1e-13)


def test_flop_count_by_term():
    # d = 2, L = 3: matmuls 24·4 = 96, attention 4·3·2 = 24, LayerNorms 2·7·2 = 28.
    assert common.flops_per_token(2, 3) == {"matmul": 96, "attention": 24, "layernorm": 28}


def test_op_counter_counts_a_linear_layer_by_hand():
    # (N, i) @ (i, o) + bias: 2·N·i·o FLOPs; reads x, W and b, writes y (float32: 4 bytes each); the
    # transpose of W is a view and moves nothing.
    n, i, o = 5, 3, 7
    with torch.device("meta"):
        lin, x = torch.nn.Linear(i, o), torch.empty(n, i)
    ops = tc._count_flops(lambda: lin(x))
    assert ops == [{"op": "addmm", "flops": 2 * n * i * o, "bytes": 4 * (n * i + i * o + o + n * o)}]


def test_op_counter_counts_attention_as_one_fused_kernel():
    # Scores QKᵀ and their product with V: 2 · 2·B·h·L²·dh; a fused kernel reads q, k, v and writes one output.
    b, h, l, dh = 2, 3, 16, 8
    q = torch.empty(b, h, l, dh, device="meta", dtype=torch.bfloat16)
    ops = tc._count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True))
    assert ops == [{"op": "scaled_dot_product_attention", "flops": 4 * b * h * l * l * dh, "bytes": 4 * 2 * b * h * l * dh}]
    assert tc.part_of(ops[0]["op"]) == "attention"


def test_op_counter_uses_the_one_layernorm_count():
    x = torch.empty(4, 10, device="meta")
    (op,) = tc._count_flops(lambda: torch.nn.functional.layer_norm(x, (10,)))
    assert op["op"] == "native_layer_norm" and op["flops"] == 40 * FLOPS_PER_ELEMENT["layer_norm"]
    # Reads x, writes y and a float32 mean and rstd per row.
    assert op["bytes"] == 4 * (40 + 40 + 4 + 4)


# ----------------------------------------------------------------------------- variance


@pytest.mark.parametrize("fn", VARIANCES, ids=lambda f: f.__name__)
def test_variance_of_a_known_row(fn):
    # (1, 0, 0, 0): mean 1/4, population variance (9/16 + 3/16)/4 = 3/16. Welford's running mean
    # passes through 1/3, which float64 rounds, hence a relative tolerance of a few ulps.
    got = float(fn(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)))
    assert math.isclose(got, 3 / 16, rel_tol=1e-15)


@pytest.mark.parametrize("fn", VARIANCES, ids=lambda f: f.__name__)
def test_variance_matches_float64_reference_and_keeps_shape(fn):
    x = torch.randn(3, 5, 17, generator=gen(1), dtype=F64) * 2 + 0.5  # (B, L, d)
    got = fn(x)
    assert got.shape == (3, 5) and got.dtype == F64
    # Well-conditioned float64 data: any of the three is within rounding of torch's own.
    torch.testing.assert_close(got, x.var(-1, correction=0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_variance_stays_in_the_input_dtype(dtype):
    x = torch.randn(4, 8, generator=gen(2)).to(dtype)
    assert all(fn(x).dtype == dtype for fn in VARIANCES)


def test_naive_variance_cancels_in_float32_and_stable_ones_do_not():
    x = (torch.randn(8, 1024, generator=gen(3), dtype=F64) + 1e4).float()  # std 1 around 1e4
    ref = x.double().var(-1, correction=0)
    rel = {fn.__name__: float(((fn(x).double() - ref).abs() / ref).max()) for fn in VARIANCES}
    # E[x²] ≈ 1e8 is stored to a multiple of 8 (exercise 3): the error is of order 1 or more.
    assert rel["naive"] > 0.1
    # Two passes: deviations are O(1), so only a few float32 roundings (u ≈ 6e-8) per element remain.
    assert rel["two_pass"] < 1e-5
    # Welford: the running mean is rounded at the scale of |mean| = 1e4, about u·1e4 ≈ 6e-4 relative to σ.
    assert rel["welford"] < 1e-2


@pytest.mark.parametrize("fn", VARIANCES, ids=lambda f: f.__name__)
def test_variance_rejects_bad_input(fn):
    name = f"variance.{fn.__name__}"
    with pytest.raises(TypeError, match=rf"{name}: x: expected a torch.Tensor, got list"):
        fn([1.0, 2.0])
    with pytest.raises(TypeError, match=rf"{name}: x: expected a floating dtype .*got torch.int64"):
        fn(torch.arange(4))
    with pytest.raises(ValueError, match=rf"{name}: x: expected at least one element .*got shape \(3, 0\)"):
        fn(torch.zeros(3, 0))
    with pytest.raises(ValueError, match=rf"{name}: x: expected .*got shape \(\)"):
        fn(torch.tensor(1.0))


# ----------------------------------------------------------------------------- models


def explicit_attention(attn: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ/√d_h, causal) V head by head, with Python loops: an independent route."""
    b, l, d = x.shape
    dh = d // attn.heads
    q, k, v = torch.nn.functional.linear(x, attn.qkv.weight, attn.qkv.bias).split(d, -1)
    out = torch.zeros_like(x)
    for h in range(attn.heads):
        s = slice(h * dh, (h + 1) * dh)
        for t in range(l):
            w = torch.softmax(q[:, t, s].unsqueeze(1) @ k[:, : t + 1, s].transpose(1, 2) / math.sqrt(dh), -1)
            out[:, t, s] = (w @ v[:, : t + 1, s]).squeeze(1)
    return torch.nn.functional.linear(out, attn.proj.weight, attn.proj.bias)


def test_causal_attention_is_the_formula():
    torch.manual_seed(0)
    attn = CausalSelfAttention(12, heads=3).double()
    x = torch.randn(2, 5, 12, generator=gen(4), dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), explicit_attention(attn, x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_transformer_block_computes_the_placement_formula(placement):
    torch.manual_seed(1)
    block = TransformerBlock(16, heads=2, placement=placement).double()
    with torch.no_grad():  # non-trivial γ, β so that a missing affine would show
        for sub in block:
            sub.norm.weight.uniform_(0.5, 1.5)
            sub.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 7, 16, generator=gen(5), dtype=F64) * 3 + 1
    h = x
    with torch.no_grad():
        for sub, f in zip(block, (lambda t: explicit_attention(block[0].sublayer, t), block[1].sublayer)):
            norm = lambda t, sub=sub: torch.nn.functional.layer_norm(t, (16,), sub.norm.weight, sub.norm.bias, 1e-5)
            h = norm(h + f(h)) if placement == "post" else h + f(norm(h))
        torch.testing.assert_close(block(x), h, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["layer", "rms", "none"])
def test_transformer_block_shapes_and_norm_kinds(norm):
    block = TransformerBlock(8, heads=2, norm=norm)
    assert block(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    assert type(block[0].norm).__name__ == {"layer": "LayerNorm", "rms": "RMSNorm", "none": "Identity"}[norm]


def test_chapter1_block_api_is_unchanged():
    y = Block(8, "post")(torch.randn(4, 8))
    assert y.shape == (4, 8)


@pytest.mark.parametrize("heads", [0, 3, -2])
def test_attention_rejects_heads_that_do_not_divide_d(heads):
    with pytest.raises(ValueError, match=rf"CausalSelfAttention: heads: expected a positive divisor of d = 8, got {heads}"):
        CausalSelfAttention(8, heads=heads)


def test_transformer_block_rejects_bad_placement_and_norm():
    with pytest.raises(ValueError, match=r"placement: expected one of .*got 'middle'"):
        TransformerBlock(8, placement="middle")
    with pytest.raises(ValueError, match=r"norm: expected one of .*got 'batch'"):
        TransformerBlock(8, norm="batch")


def test_sgd_runs_are_seeded():
    # The cache would hide nondeterminism: call the uncached function twice.
    run = transformer_training.sgd_run.__wrapped__
    assert run(True, 0.5, 0) == run(True, 0.5, 0)


def test_relative_errors_hold_each_algorithm_against_float64():
    # float64 values: all three algorithms agree with torch's float64 variance to rounding.
    e64 = variance.relative_errors(0.0, F64, rows=4, d=64, seed=5)
    assert set(e64) == {"naive", "two_pass", "welford", "fp32_stats"}
    assert max(e64["naive"], e64["two_pass"], e64["welford"]) < 1e-13
    # float32 around 1e4: the one-pass form cancels (error of order 1), two passes do not (a few ulps).
    e32 = variance.relative_errors(1e4, torch.float32, rows=4, d=256, seed=5)
    assert e32["naive"] > 0.1 and e32["two_pass"] < 1e-5


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"mean": "1"}, TypeError, r"variance.relative_errors: mean: expected a real number, got str"),
    ({"mean": float("inf")}, ValueError, r"variance.relative_errors: mean: expected a finite number, got inf"),
    ({"mean": 0.0, "rows": 0}, ValueError, r"variance.relative_errors: rows: expected an int >= 1, got 0"),
    ({"mean": 0.0, "d": 1}, ValueError, r"variance.relative_errors: d: expected an int >= 2 .*got 1"),
    ({"mean": 0.0, "d": 8.0}, TypeError, r"variance.relative_errors: d: expected an int, got float"),
])
def test_relative_errors_reject_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        variance.relative_errors(**kwargs)


def test_relu_mlp_layers_and_weights_do_not_depend_on_the_norm():
    plain, normed = models.relu_mlp(3, 8, "none", seed=1), models.relu_mlp(3, 8, "layer", seed=1)
    kinds = lambda m: [type(layer).__name__ for layer in m]
    assert kinds(plain) == ["Linear", "ReLU"] * 3 + ["Linear"]
    assert kinds(normed) == ["Linear", "LayerNorm", "ReLU"] * 3 + ["Linear"]
    lin = lambda m: [layer.weight for layer in m if isinstance(layer, torch.nn.Linear)]
    assert all(torch.equal(a, b) for a, b in zip(lin(plain), lin(normed)))
    assert all(p.dtype == torch.float64 for p in normed.parameters())
    # He initialization: weight variance 2/fan_in; 8 × 32 = 256 draws give the std to within about 10 %.
    assert float(lin(plain)[0].detach().std()) == pytest.approx(math.sqrt(2 / 32), rel=0.15)


def test_relu_mlp_calls_a_norm_factory_once_per_hidden_layer():
    widths = []
    model = models.relu_mlp(2, 5, lambda w: widths.append(w) or torch.nn.Identity(), d_in=3, d_out=2)
    assert widths == [5, 5] and model(torch.ones(4, 3, dtype=torch.float64)).shape == (4, 2)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"depth": 0, "width": 4}, ValueError, r"relu_mlp: depth: expected an int >= 1, got 0"),
    ({"depth": 2, "width": 2.5}, TypeError, r"relu_mlp: width: expected an int, got float"),
    ({"depth": 2, "width": 4, "norm": "batch"}, ValueError, r"relu_mlp: norm: expected one of .* or a callable, got 'batch'"),
])
def test_relu_mlp_rejects_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        models.relu_mlp(**kwargs)
