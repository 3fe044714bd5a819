"""Chapter 2 (principles): exercise answers against closed forms worked out by hand, and the
chapter's public helpers, including the errors a user can cause."""

import math

import pytest
import torch

from lnbook.experiments import principles as px
from lnbook.experiments import principles_affine
from lnbook.experiments import principles_stream as stream


@pytest.fixture(scope="module")
def answers():
    return px.exercise_answers()


def test_one_loud_feature(answers):
    # x = (a, 0, …, 0), d = 10: μ = a/10, σ = 3a/10, so x̂ = (3, −1/3, …): independent of a. float64 rounding only.
    assert math.isclose(answers["onehot_big"], 3.0, rel_tol=1e-14)
    assert math.isclose(answers["onehot_small"], -1 / 3, rel_tol=1e-14)


def test_zero_jacobian_entries(answers):
    # Loud–silent pairs have x̂ᵢx̂ⱼ = √(7/3)·(−√(3/7)) = −1: 2·k·(d − k) entries with k = 3, d = 10.
    assert answers["zero_offdiag_3_of_10"] == 2 * 3 * 7


def test_contrast_gradient(answers):
    # dy = 2x̂ with ε = 0: Σ dγ = 2Σx̂² = 2d, Σ dβ = 2Σx̂ = 0, dx = 2Jx̂ = 0 (x̂ is in J's null space).
    assert math.isclose(answers["contrast_dgamma_sum"], 2 * 12, rel_tol=1e-13)
    assert abs(answers["contrast_dbeta_sum"]) < 1e-13
    assert answers["contrast_dx_max"] < 1e-13


def test_zoo_group_sizes(answers):
    n, c, h, w, g = 2, 4, 3, 3, 2
    assert answers["group_size_batchnorm"] == n * h * w
    assert answers["group_size_layernorm"] == c * h * w
    assert answers["group_size_instancenorm"] == h * w
    assert answers["group_size_groupnorm"] == c // g * h * w


def test_k_of_n_sparse_vector_closed_form():
    # The chapter's claim that any k-of-d sparse vector maps to ±√(·) independently of the loud value.
    for d, k, a in [(8, 2, 5.0), (12, 5, 0.3), (7, 1, 1e3)]:
        x = torch.zeros(d, dtype=torch.float64)
        x[:k] = a
        y = px.ln(x, eps=0.0)
        assert math.isclose(float(y[0]), math.sqrt((d - k) / k), rel_tol=1e-12)
        assert math.isclose(float(y[-1]), -math.sqrt(k / (d - k)), rel_tol=1e-12)


def test_running_standardize_blows_up_only_after_a_jump():
    quiet, loud = stream.volume_stream(steps=40, jump_at=20, factor=50.0, width=8)
    rms = stream.output_rms(stream.running_standardize(loud, momentum=0.1))
    # Before the jump: the same as the quiet stream's; at the jump: about the factor (a 16-value RMS, ±50 %).
    assert torch.equal(rms[:20], stream.output_rms(stream.running_standardize(quiet, momentum=0.1))[:20])
    assert 25 < float(rms[20]) < 75


def test_coupling_groups_rejects_overlapping_couplings():
    # A cumulative sum couples element i with every j ≤ i: no partition into groups.
    with pytest.raises(ValueError, match=r"coupling_groups: norm: expected .*block diagonal.*got"):
        px.coupling_groups(lambda v: v.cumsum(-1), torch.randn(5, dtype=torch.float64))


@pytest.mark.parametrize("bad, exc, pattern", [
    ([1.0, 2.0], TypeError, r"coupling_groups: x: expected a torch.Tensor, got list"),
    (torch.arange(4), TypeError, r"coupling_groups: x: expected a floating dtype .*, got torch.int64"),
])
def test_coupling_groups_argument_errors(bad, exc, pattern):
    with pytest.raises(exc, match=pattern):
        px.coupling_groups(lambda v: v, bad)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"x": [[1.0]]}, TypeError, r"running_standardize: x: expected a torch.Tensor, got list"),
    ({"x": torch.ones(3, 4, dtype=torch.int32)}, TypeError, r"running_standardize: x: expected .* got torch.int32"),
    ({"x": torch.ones(4)}, ValueError, r"running_standardize: x: expected shape \(T, d\), got \(4,\)"),
    ({"x": torch.ones(3, 4), "momentum": 0.0}, ValueError, r"running_standardize: momentum: expected a number in \(0, 1\], got 0.0"),
    ({"x": torch.ones(3, 4), "momentum": 1.5}, ValueError, r"momentum: expected a number in \(0, 1\], got 1.5"),
    ({"x": torch.ones(3, 4), "momentum": True}, TypeError, r"momentum: expected a real number, got bool"),
    ({"x": torch.ones(3, 4), "eps": -1e-5}, ValueError, r"running_standardize: eps: expected a number >= 0, got -1e-05"),
    ({"x": torch.ones(3, 4), "eps": float("nan")}, ValueError, r"eps: expected a number >= 0, got nan"),
])
def test_running_standardize_argument_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        stream.running_standardize(**kwargs)


def test_dgamma_ratio_is_the_largest_feature_mean_of_xhat():
    # Under dy = c·1: Σ_b dγ_i = c·Σ_b x̂_bi and Σ_b dβ_i = c·B, so the ratio is max_i |mean_b x̂_bi| (rounding only).
    x = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + torch.arange(8.0)
    expected = float(px.ln(x, eps=1e-5).mean(0).abs().max())
    assert math.isclose(principles_affine.dgamma_ratio(x), expected, rel_tol=1e-12)


def test_trained_network_exposes_each_layernorm_input_and_gamma():
    feats, gammas = principles_affine.trained_ln_inputs(0)
    width = principles_affine.M08_NET["width"]
    assert [tuple(f.shape) for f in feats] == [(256, width)] * principles_affine.M08_NET["depth"]
    assert len(gammas) == principles_affine.M08_NET["depth"] and not torch.equal(gammas[1], torch.ones(width, dtype=gammas[1].dtype))
