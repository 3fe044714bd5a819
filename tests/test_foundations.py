"""Chapter 1's shared instrument: :func:`lnbook.experiments.common.count_flops`, the dispatcher count of
arithmetic that F07 (and later chapters) check the book's one FLOPs-per-element definition against."""

from __future__ import annotations

import pytest
import torch

from lnbook import norms
from lnbook.experiments.common import FLOPS_PER_ELEMENT, count_flops


def test_count_flops_counts_a_toy_with_a_known_count():
    x, w = torch.randn(3, 4), torch.randn(4, 5)
    count = count_flops(lambda: ((x * 2 + 1) @ w).sum())
    # mul and add produce 12 elements each; mm is 2·3·4·5 = 120 (a multiply and an add per term); the sum
    # reduces the 15 elements of the product.
    assert count.per_op == {"mul.Tensor": 12, "add.Tensor": 12, "mm.default": 120, "sum.default": 15}
    assert count.total == 159 and count.repeated == 0


def test_count_flops_counts_per_row_work_per_row_and_moving_data_as_free():
    x = torch.randn(3, 4, dtype=torch.float64)
    count = count_flops(lambda: torch.rsqrt(x.to(torch.float32).mean(-1, keepdim=True) + 1e-5).view(3))
    assert count.per_op == {"mean.dim": 12, "add.Tensor": 3, "rsqrt.default": 3}  # the cast and view: none


def test_count_flops_leaves_out_an_op_repeated_on_the_same_inputs():
    x, m = torch.randn(3, 4), torch.randn(3, 1)
    count = count_flops(lambda: (x - m) * (x - m))
    assert count.per_op == {"sub.Tensor": 12, "mul.Tensor": 12} and count.repeated == 12
    y = x.clone()
    assert count_flops(lambda: (x - m) * (y - m)).repeated == 0  # equal values, another tensor: counted


def test_count_flops_refuses_a_fused_op_instead_of_counting_it_free():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="native_layer_norm"):
        count_flops(torch.nn.functional.layer_norm, x, (4,))


@pytest.mark.parametrize("op, per_row", [("layer_norm", 2), ("rms_norm", 2)])
def test_reference_norms_do_the_books_flops_per_element_plus_per_row_work(op, per_row):
    M, N = 3, 8
    x, w, b = torch.randn(M, N), torch.randn(N), torch.randn(N)
    call = {"layer_norm": lambda: norms.layer_norm(x, (N,), w, b),
            "rms_norm": lambda: norms.rms_norm(x, (N,), w, eps=1e-6)}[op]
    count = count_flops(call)
    # ε's add and the square root run once per row; LayerNorm's reference centres x twice (one repeat).
    assert count.total == FLOPS_PER_ELEMENT[op] * M * N + per_row * M
    assert count.repeated == (M * N if op == "layer_norm" else 0)
    meta = count_flops(lambda: norms.layer_norm(x.to("meta"), (N,), w.to("meta"), b.to("meta")))
    assert meta.total == count_flops(lambda: norms.layer_norm(x, (N,), w, b)).total  # meta tensors count alike


def test_landscape_runs_on_one_thread_whatever_the_callers_setting():
    """toys.landscape is cached and shared by a figure (run on the notebook's threads) and by F11 and W02:
    the book build recorded F11 from the figure's two-thread run, whose float64 sums were split otherwise.
    The null case: with LayerNorm and without the one-thread block the two runs differ (tested on 2 cores:
    torch's CPU LayerNorm splits its reduction over threads), so this test fails if the block is dropped."""
    from lnbook.experiments import toys

    run = lambda: toys.landscape.__wrapped__(depth=12, lr=0.1, use_ln=True, seed=5, steps=10, probes=2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        on_two = run()
        assert torch.get_num_threads() == 2, "landscape must restore the caller's setting"
        torch.set_num_threads(1)
        assert run() == on_two
    finally:
        torch.set_num_threads(before)
