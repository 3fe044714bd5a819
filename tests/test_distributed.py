"""Sharded LayerNorm on 2 local processes (gloo) against the unsharded float64 LayerNorm."""

from __future__ import annotations

import pytest
import torch

from lnbook import distributed

CONFIGS = {
    "fp32": {"dtype": torch.float32},
    "fp32-uneven": {"dtype": torch.float32, "N": 97},  # shards of 49 and 48 features
    "fp64": {"dtype": torch.float64},
    "fp32-shift-welford": {"dtype": torch.float32, "shift": 1e4},
    "fp32-shift-sums": {"dtype": torch.float32, "shift": 1e4, "stats": "sums"},
    "bf16": {"dtype": torch.bfloat16},
}


@pytest.fixture(scope="module")
def per_rank():
    return distributed.launch(distributed.shard_checks, 2, list(CONFIGS.values()))  # one launch: spawning is slow


@pytest.fixture(scope="module")
def errors(per_rank):
    # Worst error over both ranks, per config and quantity (y, dx, dw, db and their *_single twins).
    return {name: {k: max(r[i][k] for r in per_rank) for k in per_rank[0][i]} for i, name in enumerate(CONFIGS)}


def test_shards_cover_the_row(per_rank):
    uneven = list(CONFIGS).index("fp32-uneven")
    assert [r[uneven]["width"] for r in per_rank] == [49, 48]


@pytest.mark.parametrize("name", ["fp32", "fp32-uneven", "fp64", "fp32-shift-welford", "bf16"])
@pytest.mark.parametrize("quantity", ["y", "dx", "dw", "db"])
def test_sharded_is_as_accurate_as_unsharded(errors, name, quantity):
    """Against float64: the sharded error is at most twice torch's unsharded error in the same dtype,
    plus 2 ulp of O(1) values (the same rule as the kernels' tests: two roundings may differ by one)."""
    e = errors[name]
    ulp = torch.finfo(CONFIGS[name]["dtype"]).eps * 4  # |y|, |dx|, |dw| here are below ~4
    assert e[quantity] <= 2 * e[f"{quantity}_single"] + 2 * ulp, e


def test_one_pass_sums_cancel_catastrophically_with_a_large_mean(errors):
    # E[x²] − E[x]² in float32 at mean 1e4 and std 1: the variance is lost entirely, while the
    # Welford merge on the same values is as good as an unsharded float32 LayerNorm.
    assert errors["fp32-shift-sums"]["y"] > 100 * errors["fp32-shift-sums"]["y_single"]
    assert errors["fp32-shift-sums"]["y"] > 1.0


def test_bytes_per_token():
    # all_gather of (n, mean, M2): 3 float32 from each of the P - 1 others; the backward's ring
    # all_reduce of 2 numbers moves 2·2·(P − 1)/P of them.
    assert distributed.bytes_per_token(2) == {"forward": 12, "backward": 8.0}
    assert distributed.bytes_per_token(4) == {"forward": 36, "backward": 12.0}


def test_errors_name_the_argument():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="distributed.layer_norm: stats: expected one of"):
        distributed.layer_norm(x, stats="mean")
    with pytest.raises(RuntimeError, match="distributed.layer_norm: group: expected an initialized"):
        distributed.layer_norm(x)
    with pytest.raises(ValueError, match="distributed.layer_norm: weight: expected shape \\(8,\\)"):
        distributed.layer_norm(x, torch.ones(7))
