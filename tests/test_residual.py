"""Chapter 5 (LayerNorm and residual connections): exercise answers against closed forms, the new model
pieces (zero-initialized branches, GPT-2 and DeepNorm initialization, plain and DeepNorm blocks) and their
argument errors."""

import math

import pytest
import torch

from lnbook import models
from lnbook.experiments import common, residual_depth, residual_practice, residual_training, toys


def test_chapter5_exercise_answers():
    a = residual_practice.exercise_answers()
    # I − a·uuᵀ with |u| = 1 has singular values 1 (d − 1 times) and |1 − a|: σ_min = min(1, |1 − a|).
    assert math.isclose(a["smin_099"], 0.01, rel_tol=1e-10)
    assert math.isclose(a["smin_150"], 0.5, rel_tol=1e-12)
    assert math.isclose(a["smin_099_10"], 1e-20, rel_tol=1e-9)
    # GPT-2: std 0.02/√(2·12) = 0.02/√24 ≈ 0.004082; a 16×64 sample of 1024 weights estimates it to ~5 %.
    assert a["gpt2_proj_std"] == pytest.approx(0.02 / math.sqrt(24), rel=0.1)
    # DeepNorm, N = 12: α = 24^(1/4), β = 96^(−1/4).
    assert math.isclose(a["alpha_12"], 24 ** 0.25, rel_tol=1e-14)
    assert math.isclose(a["beta_12"], 96 ** -0.25, rel_tol=1e-14)
    assert math.isclose(a["alpha_12"], 2.2134, rel_tol=1e-4) and math.isclose(a["beta_12"], 0.31947, rel_tol=1e-4)
    # GPT-2 small: 2 LayerNorms per layer and a final one, each with γ and β of width 768.
    assert a["ln_params"] == (2 * 12 + 1) * 2 * 768 == 38_400


def test_zero_branches_make_a_pre_ln_layer_the_identity():
    torch.manual_seed(0)
    layer = models.zero_branches_(models.TransformerBlock(16, 4, "pre"))
    x = torch.randn(2, 5, 16)
    assert torch.equal(layer(x), x)
    assert all(float(m.proj.weight.detach().abs().sum()) == 0 for m in layer.modules() if isinstance(m, models.MLP))


def test_gpt2_init_scales_only_the_branch_outputs():
    torch.manual_seed(0)
    model = models.gpt2_init_(torch.nn.Sequential(*[models.TransformerBlock(32, 4) for _ in range(8)]), 8)
    mlp = model[0][1].sublayer
    # 32×128 = 4096 draws: the sample std is within 5 % of the target.
    assert float(mlp.fc.weight.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert float(mlp.proj.weight.detach().std()) == pytest.approx(0.02 / 4, rel=0.05)  # 1/√(2·8) = 1/4
    assert float(mlp.fc.bias.detach().abs().max()) == 0.0


def test_gpt2_init_unscaled_leaves_out_only_the_depth_factor():
    # Same seed, same draws: the scaled projections are the unscaled ones times 1/√(2·n_layer), exactly.
    make = lambda: torch.nn.Sequential(*[models.TransformerBlock(16, 4) for _ in range(3)])
    scaled, unscaled = models.gpt2_init_(make(), 3), models.gpt2_init_(make(), 3, scaled=False)
    for s, u in zip(scaled.modules(), unscaled.modules()):
        if isinstance(s, (models.MLP, models.CausalSelfAttention)):
            assert torch.equal(s.proj.weight, u.proj.weight * (1 / 6 ** 0.5))
            first = s.fc if isinstance(s, models.MLP) else s.qkv
            assert torch.equal(first.weight, (u.fc if isinstance(u, models.MLP) else u.qkv).weight)


def test_deepnorm_block_and_constants():
    alpha, beta = models.deepnorm_constants(6)
    assert math.isclose(alpha, 12 ** 0.25) and math.isclose(beta, 48 ** -0.25)
    torch.manual_seed(0)
    block = models.DeepNormBlock(8, alpha=alpha)
    x = torch.randn(3, 8)
    expected = torch.nn.functional.layer_norm(alpha * x + block.sublayer(x), (8,))
    assert torch.allclose(block(x), expected, atol=1e-6)
    models.deepnorm_init_(block, beta)
    # Xavier normal for 8 → 32: std √(2/40), times β.
    assert float(block.sublayer.fc.weight.detach().std()) == pytest.approx(math.sqrt(2 / 40) * beta, rel=0.15)


def test_plain_block_has_no_skip():
    torch.manual_seed(0)
    block = models.PlainBlock(8, norm="none")
    x = torch.randn(3, 8)
    assert torch.equal(block(x), block.sublayer(x))


@pytest.mark.parametrize("bad, exc, pattern", [
    (0, ValueError, "an int > 0, got 0"), (-3, ValueError, "an int > 0, got -3"),
    (2.5, TypeError, "an int, got float"), (True, TypeError, "an int, got bool"), ("4", TypeError, "an int, got str")])
def test_deepnorm_constants_rejects_bad_layers(bad, exc, pattern):
    with pytest.raises(exc, match=rf"deepnorm_constants: layers: expected {pattern}"):
        models.deepnorm_constants(bad)


@pytest.mark.parametrize("bad, exc, pattern", [
    (0, ValueError, "a number > 0, got 0"), (-1.0, ValueError, "a number > 0, got -1.0"),
    (float("nan"), ValueError, "a number > 0, got nan"), ("2", TypeError, "a real number, got str")])
def test_deepnorm_block_rejects_bad_alpha(bad, exc, pattern):
    with pytest.raises(exc, match=rf"DeepNormBlock: alpha: expected {pattern}"):
        models.DeepNormBlock(8, alpha=bad)


def test_gpt2_init_rejects_bad_n_layer():
    with pytest.raises(ValueError, match=r"gpt2_init_: n_layer: expected an int > 0, got 0"):
        models.gpt2_init_(models.MLP(4), 0)


def test_train_rejects_unknown_kind():
    with pytest.raises(ValueError, match=r"train: kind: expected 'pre', 'plain' or 'residual', got 'sandwich'"):
        residual_training.train("sandwich")


def test_residual_model_is_pre_ln_without_its_norms():
    torch.manual_seed(0)
    pre = residual_training.markov_model("pre")
    torch.manual_seed(0)
    res = residual_training.markov_model("residual")
    # The same weights (LayerNorm draws no random numbers), and no norm left anywhere.
    res_weights = dict(res.named_parameters())
    assert all(torch.equal(p, res_weights[k]) for k, p in pre.named_parameters() if k in res_weights)
    is_norm = lambda m: isinstance(m, (torch.nn.LayerNorm, models.LayerNorm))
    assert not any(is_norm(m) for m in res.modules())
    # Pre-LN: one norm in each of a layer's two blocks, and a final one.
    assert sum(is_norm(m) for m in pre.modules()) == 2 * toys.MARKOV["depth"] + 1


def test_best_window_is_the_lowest_ten_step_mean():
    assert residual_training.best_window([3.0] * 10 + [1.0] * 10 + [3.0] * 5) == 1.0
    assert residual_training.steps_to([3.0] * 10 + [1.0] * 10, residual_training.best_window([3.0] * 10 + [1.0] * 10) + 1e-9) == 20


def test_end_loss_scores_a_run_stopped_at_each_budget():
    tail = residual_training.REVERSAL["tail"]
    losses = [float(i) for i in range(450)]
    # The last `tail` steps before the budget: for 150 steps, steps 110…149 (indices), mean 129.5.
    assert residual_training.end_loss(losses, 150) == sum(range(150 - tail, 150)) / tail
    assert residual_training.end_loss(losses, 450) == sum(range(450 - tail, 450)) / tail


def test_the_warmup_study_spans_each_placements_regimes():
    # Three rates per placement, the deciding ones with five seeds, the two placements sharing their middle rates.
    assert residual_training.rates("post") == [1e-2, 2e-2, 5e-2] and residual_training.rates("pre") == [2e-2, 5e-2, 1e-1]
    assert all(len(residual_training.WARMUP_SEEDS[p, lr]) == 5 for p in ("post", "pre") for lr in residual_training.rates(p)[1:])
    short, long = residual_training.BUDGETS
    assert 3 * short <= long <= residual_training.REVERSAL["steps"]  # one run gives both budgets


def test_reversal_batch_is_a_sequence_then_its_reverse():
    seq = residual_training.reversal_batch(torch.Generator().manual_seed(0), 5)
    L = residual_training.REVERSAL["length"]
    assert seq.shape == (5, 2 * L + 1) and (seq[:, L] == 0).all()
    assert torch.equal(seq[:, L + 1:], seq[:, :L].flip(1))
    assert seq[:, :L].min() >= 1 and seq[:, :L].max() <= residual_training.REVERSAL["symbols"]


def test_linear_warmup_factor():
    f = residual_training.linear_warmup(4)
    assert [f(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert residual_training.linear_warmup(0)(0) == 1.0


def test_steps_to_says_never_instead_of_a_sentinel():
    assert residual_training.steps_to([3.0] * 20, 1.0) is None
    # Step 14 (index 13) is the first whose window holds four zeros and six threes: mean 1.8 < 2.
    assert residual_training.steps_to([3.0] * 10 + [0.0] * 10, 2.0) == 14


def test_markov_chain_rows_are_distributions_and_entropy_is_below_uniform():
    p = toys.markov_probs()
    assert torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-12)
    assert 0 < toys.markov_entropy() < math.log(len(p))


def test_placement_classifier_on_the_three_forms():
    assert common.classify_placement(lambda n, f, x: n(x + f(x))) == "post"
    assert common.classify_placement(lambda n, f, x: x + f(n(x))) == "pre"
    assert common.classify_placement(lambda n, f, x: x + n(f(x))) == "branch"
    assert common.classify_placement(lambda n, f, x: x + f(x)) == "none"


def test_gpt2_small_count_matches_hand_formula():
    # 12·(12d² + 13d) + (V + T)·d + 2d with d = 768: the per-layer weights and biases, embeddings, ln_f.
    d = 768
    assert residual_practice.gpt2_small_counts()["params"] == 12 * (12 * d * d + 13 * d) + (50257 + 1024) * d + 2 * d


def test_local_statistics_are_exact_with_one_shard_and_wrong_with_four():
    # One shard is the whole row: no error but rounding. Four shards of unequal scale: an O(1) error.
    assert residual_practice.local_statistics_error(1) == 0.0
    assert residual_practice.local_statistics_error(4) > 0.1


def test_one_pass_variance_gives_nan_only_when_it_cancels():
    assert residual_practice.one_pass_nan_count(torch.randn(1, 64, generator=torch.Generator().manual_seed(3)), 1e-5) == 0
    row = residual_practice.near_constant_row()
    assert residual_practice.one_pass_nan_count(row, 1e-5) == row.numel()  # E[x²] − E[x]² < −ε on this row
    assert residual_practice.one_pass_nan_count(row, 10.0) == 0  # an ε larger than the cancellation error cures it


def test_counted_add_and_matmul_are_pytorch_counts_of_the_hand_formula():
    counted, hand = residual_practice.counted_add_and_matmul(16, d=8), residual_practice.add_vs_matmul_cost(16, d=8)
    assert counted == {k: hand[k] for k in counted}
    assert counted["mm_flops"] == 2 * 16 * 8 * 32  # 2 per multiply-add of (16, 8) @ (8, 32)


def test_r_squared_is_one_on_a_line_and_tells_an_exponential_from_a_line():
    layers = range(1, 21)
    assert residual_depth.r_squared(layers, [3 - 0.1 * l for l in layers]) == pytest.approx(1, abs=1e-12)
    # A steep exponential (a factor e⁻⁵ over 20 points) is a line in ln y and visibly curved in y.
    steep = [math.exp(-0.25 * l) for l in layers]
    assert residual_depth.r_squared(layers, [math.log(v) for v in steep]) == pytest.approx(1, abs=1e-12)
    assert residual_depth.r_squared(layers, steep) < 0.9


def test_deepnorm_is_classified_post_ln():
    alpha = models.deepnorm_constants(12)[0]
    assert common.classify_placement(lambda n, f, x: n(alpha * x + f(x))) == "post"


def test_model_update_is_proportional_to_the_step_and_zero_without_one(monkeypatch):
    # In the linear regime the output moves in proportion to the step; a step of 0 moves nothing.
    sizes = {}
    for step in (0.0, 1e-4, 2e-4):
        monkeypatch.setattr(residual_depth, "UPDATE_STEP", step)
        residual_depth.model_update.cache_clear()
        sizes[step] = residual_depth.model_update("deepnorm", 2, 0)
    residual_depth.model_update.cache_clear()
    assert sizes[0.0] == 0.0
    assert sizes[2e-4] / sizes[1e-4] == pytest.approx(2, rel=0.02)  # second-order terms: ~1e-4 relative
