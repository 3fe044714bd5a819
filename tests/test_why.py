"""Chapter 4 (why Transformers use LayerNorm): exercise answers against closed forms, and the
helpers' behaviour and argument errors."""

import math

import pytest
import torch

from lnbook.experiments import common, why, why_batchnorm, why_models


def test_chapter4_exercise_answers():
    a = why_models.exercise_answers()
    # Padding: p = 105/200, m = 2, v = 1; mean p·m, variance p·v + p(1 − p)·m² (worked by hand).
    p = 105 / 200
    assert math.isclose(a["padded_mean"], 1.05, rel_tol=1e-12)
    assert math.isclose(a["padded_var"], p + p * (1 - p) * 4, rel_tol=1e-12)
    assert math.isclose(p + p * (1 - p) * 4, 1.5225, rel_tol=1e-15)
    # x = (2, 0): RMSNorm(x) = (√2, 0), LN(x) = (1, −1); gap √(2 − √2) = 2 sin(π/8).
    assert math.isclose(a["rms_first"], math.sqrt(2), rel_tol=1e-14)
    assert math.isclose(a["rms_ln_gap"], math.sqrt(2 - math.sqrt(2)), rel_tol=1e-14)
    assert math.isclose(a["rms_ln_gap"], 2 * math.sin(math.pi / 8), rel_tol=1e-14)
    # After LN, |q| = |k| = √64 = 8: the largest score is 8, the aligned key's share e⁸/(e⁸ + 15).
    assert math.isclose(a["max_score"], 8.0, rel_tol=1e-12)
    assert math.isclose(a["aligned_share"], math.exp(8) / (math.exp(8) + 15), rel_tol=1e-12)


def test_fp16_square_limit_is_256():
    # 255.875 = 256 − 2⁻³ is the float16 below 256; its square 65472 fits under 65504, 256² does not.
    assert why_models.smallest_fp16_square_overflow() == 256.0
    below = torch.tensor(255.875, dtype=torch.float16)
    assert torch.isfinite(below * below) and float(below * below) == 65472.0


def test_mixed_norm_tokens_have_the_stated_norms():
    x = why_batchnorm.mixed_norm_tokens(t=5, d=16, spread=16.0)
    expected = [4.0 * 16.0 ** (i / 4) for i in range(5)]  # √16 · spread^(i/(t−1))
    assert x.norm(dim=1).tolist() == pytest.approx(expected, rel=1e-12)


def test_attention_with_ln_ignores_token_norms():
    x = why_batchnorm.mixed_norm_tokens(t=6, d=16, spread=1.0)
    scaled = x * torch.tensor([1.0, 3.0, 0.5, 10.0, 2.0, 7.0], dtype=x.dtype)[:, None]
    a, b = why_batchnorm.attention_stats(x, use_ln=True), why_batchnorm.attention_stats(scaled, use_ln=True)
    # Only ε = 1e-5 against σ² ≈ 1 distinguishes the two inputs after LayerNorm.
    assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-4)
    assert why_batchnorm.attention_stats(scaled, use_ln=False)["entropy"] != pytest.approx(a["entropy"], abs=1e-2)


def test_noisy_batch_norm_is_batch_norm_in_eval_and_noisy_in_training():
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plain, noisy = why.NoisyBatchNorm(8), why.NoisyBatchNorm(8, shift=0.5, spread=0.5)
    ref = (x - x.mean(0)) / torch.sqrt(x.var(0, correction=0) + 1e-5)
    assert torch.allclose(plain(x), ref, atol=1e-12)
    noisy.eval()
    assert torch.allclose(noisy(x), ref, atol=1e-12)
    noisy.train()
    first, second = noisy(x), noisy(x)
    assert (first - ref).abs().max() > 0.05 and (first - second).abs().max() > 0.05  # new noise every call
    # Per sample, not only per unit: two samples with the same normalized value get different noise.
    same = torch.cat([x[:1], x[:1], x[1:]])
    out = noisy(same)
    assert (out[0] - out[1]).abs().max() > 0.01


def test_noisy_batch_norm_noise_has_moving_mean_and_spread():
    # Over many samples of one step, each unit's noise mean lies in [−shift, shift] and its std in [0, spread];
    # from one step to the next both move.
    noisy = why.NoisyBatchNorm(4, shift=0.5, spread=0.5, seed=3)
    x = torch.randn(20000, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = why.NoisyBatchNorm(4).eval()(x)
    a, b = noisy(x) - ref, noisy(x) - ref  # (20000, 4) noise of two steps
    for n in (a, b):
        assert (n.mean(0).abs() <= 0.5 + 0.02).all() and (n.std(0) <= 0.5 + 0.02).all()  # 20000 draws: ±0.01
    assert (a.mean(0) - b.mean(0)).abs().max() > 0.05


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with common.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_published_configs_cite_a_source_for_every_row():
    for name, row in why_models.PUBLISHED_CONFIGS.items():
        assert row["source"] and row["placement"] in ("pre", "post") and row["norm"] in ("LayerNorm", "RMSNorm"), name


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"d": 0}, ValueError, r"NoisyBatchNorm: d: expected an int > 0, got 0"),
        ({"d": 2.5}, TypeError, r"NoisyBatchNorm: d: expected an int, got float"),
        ({"d": 4, "shift": -1.0}, ValueError, r"NoisyBatchNorm: shift: expected a number >= 0, got -1.0"),
        ({"d": 4, "spread": -0.5}, ValueError, r"NoisyBatchNorm: spread: expected a number >= 0, got -0.5"),
        ({"d": 4, "spread": "x"}, TypeError, r"NoisyBatchNorm: spread: expected a real number, got str"),
        ({"d": 4, "spread": float("nan")}, ValueError, r"NoisyBatchNorm: spread: expected a number >= 0, got nan"),
    ],
)
def test_noisy_batch_norm_rejects_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        why.NoisyBatchNorm(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"t": 1}, ValueError, r"mixed_norm_tokens: t: expected an int >= 2, got 1"),
        ({"t": True}, TypeError, r"mixed_norm_tokens: t: expected an int, got bool"),
        ({"d": 1}, ValueError, r"mixed_norm_tokens: d: expected an int >= 2, got 1"),
        ({"spread": 0.5}, ValueError, r"mixed_norm_tokens: spread: expected a number >= 1, got 0.5"),
        ({"spread": float("nan")}, ValueError, r"mixed_norm_tokens: spread: expected a number >= 1, got nan"),
    ],
)
def test_mixed_norm_tokens_rejects_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        why_batchnorm.mixed_norm_tokens(**kwargs)


def test_attention_stats_rejects_bad_input():
    with pytest.raises(TypeError, match=r"attention_stats: x: expected a torch.Tensor, got list"):
        why_batchnorm.attention_stats([[1.0, 2.0]], use_ln=False)
    with pytest.raises(ValueError, match=r"attention_stats: x: expected a \(tokens >= 2, d\) matrix, got \(2, 3, 4\)"):
        why_batchnorm.attention_stats(torch.zeros(2, 3, 4), use_ln=False)
    with pytest.raises(ValueError, match=r"got \(1, 4\)"):
        why_batchnorm.attention_stats(torch.zeros(1, 4), use_ln=False)


def test_norm_mlp_rejects_unknown_kind():
    with pytest.raises(ValueError, match=r"norm_mlp: kind: expected one of \('none', 'bn', 'noisy'\), got 'layer'"):
        why.norm_mlp("layer")


def test_trailing_mean_averages_the_last_k_values_seen():
    assert why.trailing_mean([1, 2, 3, 4, 5], k=2) == [1, 1.5, 2.5, 3.5, 4.5]
    assert why.trailing_mean([4.0], k=10) == [4.0]
    with pytest.raises(ValueError, match="k"):
        why.trailing_mean([1.0], k=0)
