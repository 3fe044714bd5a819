"""Claims of ``lnbook.symbolic``: every identity proved by ``simplify(lhs - rhs) == 0`` and spot
checked against torch autograd (``F.layer_norm`` / ``F.rms_norm``) in float64.

Coverage: LayerNorm, RMSNorm and backward identities for n in {2, 3, 4} and eps in {0, symbolic},
except ``ln.complement_projector`` (P^2 = P, generic linear algebra) at n = 4, which costs ~4 s of
the 60 s budget; Euler's theorem for W of shape (2, 2) and (3, 2) (eps in {0, symbolic}).

Tolerance TOL = 1e-12 for float64 spot checks: the values are O(1) and each side takes a few
dozen flops at n <= 4, so rounding is ~1e-15 (observed <= 5e-15); a wrong formula misses by
O(0.01..1) because eps is drawn in [0.1, 1]. Refuted formulas must miss by more than MISS.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from lnbook import symbolic as S

TOL = 1e-12
MISS = 1e-3
NS = (2, 3, 4)
EPSILONS = {"eps0": 0, "eps": S.EPS}
EULER_SHAPES = ((2, 2), (3, 2))


def _by_name(idents) -> dict[str, S.Identity]:
    return {i.name: i for i in idents}


PER_N_NAMES = [i.name for i in S.identities(2, S.EPS)]
EULER_NAMES = [i.name for i in S.euler_identities(2, 2, 0)]


def _check(ident: S.Identity, seed: int) -> None:
    assert ident.verify() is ident.holds, f"{ident.name}: simplify verdict != book's claim"
    sc = ident.spot_check(seed)
    assert sc.lhs_err < TOL, f"{ident.name}: symbolic lhs vs torch {sc.lhs_err:.2e}"
    if ident.holds:
        assert sc.rhs_err < TOL, f"{ident.name}: symbolic rhs vs torch {sc.rhs_err:.2e}"
    else:
        assert sc.rhs_err > MISS, f"{ident.name}: refuted rhs agrees numerically ({sc.rhs_err})"


SKIPPED_FOR_TIME = {("ln.complement_projector", 4)}
PER_N_CASES = [pytest.param(name, n, eps_id, id=f"{name}-n{n}-{eps_id}")
               for name in PER_N_NAMES for n in NS for eps_id in EPSILONS
               if (name, n) not in SKIPPED_FOR_TIME]


@pytest.mark.parametrize("name, n, eps_id", PER_N_CASES)
def test_identity(name: str, n: int, eps_id: str) -> None:
    _check(_by_name(S.identities(n, EPSILONS[eps_id]))[name], seed=n)


@pytest.mark.parametrize("eps_id", EPSILONS)
@pytest.mark.parametrize("shape", EULER_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", EULER_NAMES)
def test_euler(name: str, shape: tuple[int, int], eps_id: str) -> None:
    _check(_by_name(S.euler_identities(*shape, EPSILONS[eps_id]))[name], seed=7)


# ---------------------------------------------------------------------------- what the book says


def test_closed_form_holds_for_positive_eps() -> None:
    """The xhat form needs no eps factor; only the sigma-standardised form does."""
    ids = _by_name(S.ln_identities(3, S.EPS))
    assert ids["ln.jacobian"].holds and ids["ln.jacobian"].verify()
    assert ids["ln.jacobian_sigma_form"].verify()
    assert not ids["ln.jacobian_sigma_form_without_factor"].verify()


@pytest.mark.parametrize("eps_id", EPSILONS)
def test_wrong_closed_form_is_rejected(eps_id: str) -> None:
    """Dropping xhat xhat^T/n: simplify leaves a nonzero residual and torch disagrees."""
    wrong = _by_name(S.ln_identities(2, EPSILONS[eps_id]))["ln.jacobian_without_xhat_term"]
    assert not wrong.verify()
    assert any(e != 0 for e in wrong.residual())
    assert wrong.spot_check(seed=3).rhs_err > MISS


def test_verify_rejects_by_simplify_alone() -> None:
    """The rational-point shortcut is not what rejects: simplify on its own also refuses."""
    fw = S.layer_norm_forward(3, S.EPS)
    wrong = S.ln_jacobian(3, S.EPS) - (sp.eye(3) - sp.ones(3, 3) / 3) / fw.s
    assert any(sp.simplify(e) != 0 for e in wrong)


def test_euler_broken_by_eps_and_bias() -> None:
    """<W, grad_W L> != 0 once eps > 0 or a bias is added (n = 3); exact forms hold."""
    with_eps = _by_name(S.euler_identities(3, 2, S.EPS))
    biased = _by_name(S.euler_identities(3, 2, 0))
    assert not with_eps["euler.inner_zero"].verify()
    assert not with_eps["euler.gradient_scaling"].verify()
    assert not biased["euler.bias_inner_zero"].verify()
    assert with_eps["euler.inner_exact"].verify() and biased["euler.bias_inner_exact"].verify()


def test_two_features_without_eps_is_locally_constant() -> None:
    """n = 2, eps = 0: LN(x) = sign(x1 - x2)(1, -1), so J = 0 (why Euler 'survives' a bias)."""
    assert all(sp.simplify(e) == 0 for e in S.ln_jacobian(2, 0))
    assert _by_name(S.euler_identities(2, 2, 0))["euler.bias_inner_zero"].holds


# ---------------------------------------------------------------------------- spectrum


@pytest.mark.parametrize("eps_id", EPSILONS)
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("kind", ["ln", "rms"])
def test_spectrum(kind: str, n: int, eps_id: str) -> None:
    eps = EPSILONS[eps_id]
    pairs = S.spectrum(kind, n, eps)
    assert sum(p.multiplicity for p in pairs) == n
    assert S.spectrum_spot_check(kind, n, eps, seed=n) < TOL


def test_spectrum_at_eps_zero_has_double_zero() -> None:
    values = {p.value: p.multiplicity for p in S.spectrum("ln", 4, 0)}
    assert values[sp.Integer(0)] == 2
    assert values[1 / S.layer_norm_forward(4, 0).s] == 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_jacobians_match_torch_at_many_points(seed: int) -> None:
    """Closed forms at random x and eps in [0.1, 1] vs torch.autograd.functional.jacobian."""
    for name in ("ln.jacobian", "rms.jacobian"):
        assert _by_name(S.identities(4, S.EPS))[name].spot_check(seed).max_abs_diff < TOL


# ---------------------------------------------------------------------------- rendering, args


def test_latex_rendering() -> None:
    ids = _by_name(S.ln_identities(3, S.EPS))
    assert r"\neq" in ids["ln.jacobian_without_xhat_term"].latex()
    assert ids["ln.eigen_xhat"].latex() == r"J\,\hat x = \frac{\epsilon}{s^3}\,\hat x"
    explicit = _by_name(S.ln_identities(2, S.EPS))["ln.jacobian"].latex(explicit=True)
    assert "s^{3}" in explicit and "epsilon" not in explicit  # sqrt(var + eps) shown as s
    display = sp.latex(S.jacobian_display("ln", 3))
    assert display.startswith(r"\frac{1}{s}") and r"\hat{x}_3" in display
    assert S.jacobian_display("rms", 4).as_explicit().shape == (4, 4)


def test_display_matches_closed_form() -> None:
    """The rendered matrix is the closed form after substituting xhat_i and s."""
    n = 3
    fw = S.layer_norm_forward(n, S.EPS)
    disp = S.jacobian_display("ln", n).as_explicit()
    subs = {sp.Symbol(rf"\hat{{x}}_{i + 1}", real=True): fw.xhat[i] for i in range(n)}
    subs[sp.Symbol("s", positive=True)] = fw.s
    diff = disp.xreplace(subs) - S.ln_jacobian_closed_form(n, S.EPS)
    assert all(sp.simplify(e) == 0 for e in diff)


@pytest.mark.parametrize("n, eps, exc, pattern", [
    (1, 0, ValueError, r"symbolic: n: expected an int >= 2, got 1"),
    (3, -1, ValueError, r"symbolic: eps: expected a nonnegative value \(EPS or 0\), got -1"),
    (2.0, 0, TypeError, r"symbolic: n: expected an int, got float"),
])
def test_bad_arguments(n, eps, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern):
        S.layer_norm_forward(n, eps)


def test_spot_check_values_are_seeded() -> None:
    ident = S.rms_identities(3, S.EPS)[0]
    assert ident.spot_check(5) == ident.spot_check(5)
    vals = S.random_values(sorted(ident.lhs.free_symbols, key=str), seed=5)
    assert 0.1 <= vals[S.EPS] <= 1.0 and np.isfinite(list(vals.values())).all()


def test_agrees_and_markdown():
    idents = S.ln_identities(2, 0)
    assert S.agrees(idents, "ln.jacobian", "ln.jacobian_without_xhat_term")
    with pytest.raises(ValueError, match=r"agrees: names: expected identities among .* got \['ln.nope'\]"):
        S.agrees(idents, "ln.nope")
    text = S.markdown(idents[:1])
    assert "$$" in text and "simplify(lhs − rhs) = 0" in text
