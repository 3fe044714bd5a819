"""The four diagrams of lnbook.plots: each draws, at the book's text size, numbers that agree with an
independent route (the definition, a closed form, the launch rules), and each check can fail (a null case)."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from lnbook import plots  # noqa: E402  (after the Agg backend is chosen: no display here)

# float64 quantities of order 1 built from a handful of operations: rounding leaves about 1e-15; 1e-12
# is far below any real departure and far above rounding.
F64_TOL = 1e-12


@pytest.fixture
def close_figures():
    yield
    matplotlib.pyplot.close("all")


def texts(fig) -> str:
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(Text))


def legible(fig) -> bool:
    return plots.smallest_text_pt(fig) >= plots.SMALLEST_PT


# ------------------------------------------------------------------------- BatchNorm's and LayerNorm's axes


def test_norm_axes_shade_the_sets_each_statistic_is_taken_over(close_figures):
    fig, axes = plots.figure(nrows=2, height=2.6)
    out = plots.norm_axes(axes, shape=(4, 5, 6), token=2)
    B, T, H = 4, 5, 6
    bn = torch.zeros(B, T, H, dtype=torch.bool)
    bn[:, :, H - 1] = True  # the definition: one feature, every sample and token
    ln = torch.zeros(B, T, H, dtype=torch.bool)
    ln[0, 2, :] = True  # one token of one sample, every feature
    assert torch.equal(out["bn_mask"], bn) and torch.equal(out["ln_mask"], ln)
    assert (out["bn_count"], out["ln_count"]) == (B * T, H)
    shown = texts(fig)
    assert f"over {B * T} of the {B * T * H}" in shown and f"over {H} of the {B * T * H}" in shown
    assert legible(fig)


def test_dependence_finds_one_entry_where_nothing_is_normalized():
    # The null case: an elementwise function takes no statistic, so its output depends on its own entry only.
    mask = plots.dependence(torch.tanh, (4, 5, 6), (1, 2, 3))
    assert int(mask.sum()) == 1 and bool(mask[1, 2, 3])


# --------------------------------------------------------------------------- the sphere and the orthogonal step


def ln_loss_gradient(x, c, w):
    """∇_w cᵀ LN(Xw) (ε = 0) from the closed-form Jacobian J = (1/σ)(I − 11ᵀ/n − x̂x̂ᵀ/n), without autograd."""
    z = x @ w
    n = z.numel()
    sigma = z.std(correction=0)
    xhat = (z - z.mean()) / sigma
    jac = (torch.eye(n, dtype=z.dtype) - torch.ones(n, n, dtype=z.dtype) / n - torch.outer(xhat, xhat) / n) / sigma
    return x.T @ (jac @ c)


def test_the_step_is_orthogonal_and_lengthens_w_by_pythagoras(close_figures):
    fig, ax = plots.figure(height=3.2)
    s = plots.sphere_step(ax)
    seed = 9  # sphere_step's default, the seed orthogonal_step draws X, c and w from
    x, c = plots._seeded(4, 2, seed=seed), plots._seeded(4, seed=seed + 1)
    assert torch.allclose(s["g"], ln_loss_gradient(x, c, s["w"]), rtol=0, atol=F64_TOL)
    assert abs(s["inner"]) < F64_TOL * s["w_norm"] * float(s["g"].norm())
    assert s["end_norm"] > s["w_norm"]
    assert abs(s["end_norm"] ** 2 - (s["w_norm"] ** 2 + s["step_norm"] ** 2)) < F64_TOL
    assert abs(math.tan(abs(s["angle"])) - s["step_norm"] / s["w_norm"]) < F64_TOL
    shown = texts(fig)
    for value in (s["w_norm"], s["step_norm"], s["end_norm"]):
        assert f"{value:.2f}" in shown
    assert r"\langle w, g\rangle = 0" in shown
    assert legible(fig)


def test_with_eps_large_against_the_variance_the_step_is_not_orthogonal():
    # The null case: ε far above σ² of Xw breaks the scale invariance, and with it the right angle and
    # Pythagoras (1e-3 relative is far above rounding).
    s = plots.orthogonal_step(eps=10.0)
    cos = s["inner"] / (s["w_norm"] * float(s["g"].norm()))
    assert abs(cos) > 1e-3
    assert abs(s["end_norm"] ** 2 / (s["w_norm"] ** 2 + s["step_norm"] ** 2) - 1) > 1e-3


# ---------------------------------------------------------------------------- the Jacobian's three eigenspaces


def test_the_eigenvalues_are_the_closed_forms(close_figures):
    fig, axes = plots.figure(nrows=2, height=2.8)
    n = 6
    s = plots.jacobian_eigenspaces(axes, n=n)
    x = s["x"]
    sigma = math.sqrt(float(((x - x.mean()) ** 2).mean()))  # σ from its definition, not from the figure
    expected = torch.tensor([0.0, 0.0] + [1 / sigma] * (n - 2), dtype=torch.float64)
    assert torch.allclose(s["values"], expected, rtol=0, atol=F64_TOL)
    xhat = (x - x.mean()) / sigma
    closed = (torch.eye(n, dtype=x.dtype) - 1 / n - torch.outer(xhat, xhat) / n) / sigma
    assert torch.allclose(s["J"], closed, rtol=0, atol=F64_TOL)
    share = s["span_share"].tolist()  # the two zeros' eigenvectors lie in span{1, x̂}, the others outside it
    assert all(abs(v - 1) < F64_TOL for v in share[:2]) and all(v < F64_TOL for v in share[2:])
    a, b, c = s["v_coords"].tolist()
    ja, jb, jc = s["Jv_coords"].tolist()
    assert s["v_rest"] < F64_TOL  # v lies in the drawn frame: its three coordinates are all of it
    assert abs(ja) < F64_TOL and abs(jb) < F64_TOL and abs(jc - c / sigma) < F64_TOL
    shown = texts(fig)
    assert f"1/\\sigma = {1 / sigma:.2f}" in shown and ": 2" in shown and f": {n - 2}" in shown
    assert legible(fig)


def test_with_eps_the_xhat_eigenvalue_is_eps_over_s_cubed_and_at_n2_nothing_is_left():
    # Null cases: with ε > 0 only the all-ones direction is sent to 0 (x̂'s eigenvalue is ε/s³), and a
    # row of two values has no complement, so no eigenvalue 1/s at all.
    eps = 0.5
    s = plots.jacobian_spectrum(6, eps)
    x = s["x"]
    root = math.sqrt(float(((x - x.mean()) ** 2).mean()) + eps)
    expected = torch.tensor([0.0, eps / root**3] + [1 / root] * 4, dtype=torch.float64)
    assert torch.allclose(s["values"], expected, rtol=0, atol=F64_TOL)
    assert sum(abs(v) < F64_TOL for v in s["values"].tolist()) == 1
    two = plots.jacobian_spectrum(2, 0.0)
    assert torch.allclose(two["values"], torch.zeros(2, dtype=torch.float64), rtol=0, atol=F64_TOL)


# ------------------------------------------------------------------------------------ the kernels' data flow


def test_the_data_flow_counts_are_the_launch_rules(close_figures):
    import triton

    from lnbook.kernels import heuristics

    fig, axes = plots.figure(nrows=3, height=2.0)
    out = plots.kernel_data_flow(axes, M=8, N=8192, slots=4)
    for plan in (out["plan"], out["h100"]):
        M, N, slots = plan["M"], plan["N"], plan["slots"]
        block_m = heuristics.plan(M, N, "forward").block_m
        assert (plan["forward_rows"], plan["forward_programs"]) == (block_m, triton.cdiv(M, block_m))
        # One partial row per backward program, at most one program per SM, and every program has rows.
        assert plan["partials"] == plan["backward_programs"] <= slots
        assert (plan["backward_programs"] - 1) * plan["backward_rows"] < M <= plan["backward_programs"] * plan["backward_rows"]
    assert out["plan"]["backward_programs"] == 4  # 8 rows on 4 SMs: every SM gets a program
    assert out["h100"]["slots"] == 132 and out["h100"]["partials"] == 128  # 4096 rows in blocks of 32 (⌈4096/132⌉)
    shown = texts(fig)
    assert f"{out['plan']['backward_programs']} programs, {out['plan']['backward_rows']} rows each" in shown
    assert f"{out['h100']['partials']} partial rows" in shown
    assert legible(fig)


def test_one_slot_gives_one_partial_row_and_split_rows_are_refused():
    # Null cases: a device with one slot sums nothing across programs (one partial row); rows wider than
    # one block are split across programs, which this picture does not draw, so it says so.
    assert plots.kernel_plan(8, 8192, 1)["partials"] == 1
    with pytest.raises(ValueError, match="split"):
        plots.kernel_plan(8, 2**17, 4)
