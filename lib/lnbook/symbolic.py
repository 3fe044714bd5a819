r"""SymPy derivations behind the book: LayerNorm and RMSNorm Jacobians, their eigen-structure,
shift and scale invariance, Euler's theorem for degree-0 homogeneity, and the backward formulas.

Notation (one feature vector ``x = (x_1..x_n)`` of real symbols; ``eps`` is the symbol
:data:`EPS` (nonnegative) or ``0``):

* LayerNorm: ``mean = sum(x)/n``, ``var = mean((x - mean)^2)`` (biased),
  ``s = sqrt(var + eps)`` (so the kernels' ``rstd = 1/s``), ``xhat = (x - mean)/s``,
  ``LN(x) = xhat``.
* RMSNorm: ``r = sqrt(mean(x^2) + eps)``, ``xhat = x/r``, ``RMS(x) = xhat``.
* Backward: ``g = w * dy`` (elementwise; ``w`` is the weight, often written gamma),
  ``dx = J^T g``.

What is derived (every item is an :class:`Identity`):

* ``J = dLN/dx`` by SymPy differentiation equals the closed form
  ``J = (1/s) (I - 11^T/n - xhat xhat^T/n)`` **for every eps >= 0**, because ``xhat`` is
  standardised with ``s``. Written with ``z = (x - mean)/sigma`` instead, the same matrix is
  ``(1/s) (I - 11^T/n - z z^T/n * sigma^2/(sigma^2 + eps))``; dropping the factor
  ``sigma^2/(sigma^2+eps)`` is exact only at ``eps = 0``.
* ``J`` is symmetric; ``J 1 = 0`` (shift invariance); ``J x = (eps/s^2) xhat`` (scale
  invariance exactly when eps = 0); ``J xhat = (eps/s^3) xhat``; ``J v = v/s`` for every ``v``
  orthogonal to ``1`` and ``xhat`` (checked on ``v = |x - mean|^2 P u`` for a symbolic ``u``,
  ``P`` the orthogonal projector onto that complement); ``P`` has rank ``n - 2``, and ``J``
  is the sum of its three spectral pieces. Eigenvalues: ``0`` (on 1),
  ``eps/s^3`` (on xhat), ``1/s`` (``n - 2`` times); at eps = 0: ``0`` twice and ``1/sigma``.
* RMSNorm: ``J = (1/r)(I - x x^T/(n r^2))``, symmetric, ``J x = (eps/r^3) x``, ``J v = v/r``
  on the ``n - 1`` dimensional complement of ``x``.
* Euler: for ``L(W) = c^T LN(W x + b)``, ``<W, grad_W L> = (eps/s^2) c^T zhat - c^T J_z b``
  exactly (``z = W x + b``, ``zhat = LN(z)``). So with ``b = 0`` and ``eps = 0`` it is ``0``
  and ``grad L(lambda W) = grad L(W)/lambda``; ``eps > 0`` or a bias breaks both (for a bias,
  from n = 3 on: at n = 2, eps = 0, LN is locally constant and ``J = 0``).
* Backward: ``J^T g = (1/s)(g - mean(g) - xhat mean(g * xhat))`` for every eps >= 0, and
  ``J_rms^T g = (1/r)(g - xhat mean(g * xhat))``.

How it is verified:

* :meth:`Identity.verify` evaluates ``lhs - rhs`` at one exact rational point first (a nonzero
  value there disproves the identity, so false claims are rejected in milliseconds), then
  requires ``simplify(entry) == 0`` for every entry of ``lhs - rhs``.
* :meth:`Identity.spot_check` substitutes seeded float64 numbers into both sides and compares
  each with an independent numeric route: ``torch.autograd`` through
  ``torch.nn.functional.layer_norm`` / ``rms_norm`` (Jacobians, VJPs, gradients), or plain
  NumPy for the projector facts. :func:`spectrum_spot_check` compares the predicted eigenvalues
  with ``numpy.linalg.eigvalsh`` of torch's Jacobian.

Expensive objects are cached per ``(n, eps)``; rendering is via :meth:`Identity.latex` and
:func:`jacobian_display`.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian as _torch_jacobian

from lnbook import args

__all__ = [
    "EPS", "LAMBDA", "Identity", "SpotCheck", "Eigenpair",
    "LayerNormForward", "RMSNormForward", "EulerSetup",
    "layer_norm_forward", "rms_norm_forward", "euler_setup",
    "ln_jacobian", "ln_jacobian_closed_form", "rms_jacobian", "rms_jacobian_closed_form",
    "ln_identities", "rms_identities", "backward_identities", "euler_identities",
    "identities", "spectrum", "spectrum_spot_check", "jacobian_display", "random_values",
]

EPS = sp.Symbol("epsilon", nonnegative=True)
"""The variance floor as a symbol; pass ``0`` instead for the eps-free formulas."""
LAMBDA = sp.Symbol("lambda", positive=True)
"""The positive scale in the homogeneity identities."""
_S = sp.Symbol("s", positive=True)  # display abbreviation for sqrt(var + eps)
_R = sp.Symbol("r", positive=True)  # display abbreviation for sqrt(mean(x^2) + eps)

Values = Mapping[sp.Symbol, float]
NumericRoute = Callable[[Values], np.ndarray]


# ----------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class SpotCheck:
    """Max abs differences of each symbolic side from the independent numeric route."""

    lhs_err: float
    rhs_err: float

    @property
    def max_abs_diff(self) -> float:
        return max(self.lhs_err, self.rhs_err)


@dataclass(eq=False)
class Identity:
    """One claim ``lhs == rhs`` (scalar or matrix) with its notation and its numeric route.

    ``holds`` is what the book asserts: ``False`` marks a tempting formula the book refutes
    (rendered with ``\\neq``); a test asserts ``verify() is holds``.
    ``numeric_lhs`` computes the value of ``lhs`` from numbers, independently of SymPy.
    """

    name: str
    statement: str
    tex_lhs: str
    tex_rhs: str
    lhs: sp.Basic
    rhs: sp.Basic
    numeric_lhs: NumericRoute
    holds: bool = True
    abbreviations: Mapping[sp.Basic, sp.Basic] = field(default_factory=dict, repr=False)
    _verdict: bool | None = field(default=None, init=False, repr=False)
    _compiled: dict = field(default_factory=dict, init=False, repr=False)

    def difference(self) -> sp.Basic:
        return self.lhs - self.rhs

    def residual(self) -> list[sp.Expr]:
        """``simplify`` of every entry of ``lhs - rhs``: all zero proves the identity."""
        return [sp.simplify(e) for e in _entries(self.difference())]

    def verify(self) -> bool:
        """True iff ``simplify(lhs - rhs) == 0`` for every entry (cached).

        ``lhs - rhs`` is first evaluated exactly at one rational point: a nonzero value there
        disproves the identity, so a refuted formula costs milliseconds instead of a long,
        fruitless ``simplify``. A zero there decides nothing; ``simplify`` then decides.
        """
        if self._verdict is None:
            diff = self.difference()
            self._verdict = not _nonzero_at_rational_point(diff) and all(
                sp.simplify(e) == 0 for e in _entries(diff))
        return self._verdict

    def spot_check(self, seed: int = 0) -> SpotCheck:
        """Both sides at seeded float64 values versus ``numeric_lhs`` at the same values."""
        vals = random_values(_free_symbols(self.lhs, self.rhs), seed)
        ref = np.ravel(np.asarray(self.numeric_lhs(vals), dtype=np.float64))
        lhs, rhs = (np.ravel(self._evaluate(side, vals)) for side in ("lhs", "rhs"))
        rhs = np.broadcast_to(rhs, ref.shape)  # a scalar 0 stands for a zero vector
        return SpotCheck(float(np.max(np.abs(lhs - ref))), float(np.max(np.abs(rhs - ref))))

    def _evaluate(self, side: str, vals: Values) -> np.ndarray:
        syms = tuple(vals)
        if (side, syms) not in self._compiled:  # lambdify costs ms; hypothesis calls it often
            self._compiled[side, syms] = sp.lambdify(syms, getattr(self, side), "numpy")
        return np.asarray(self._compiled[side, syms](*(vals[s] for s in syms)), np.float64)

    def latex(self, explicit: bool = False) -> str:
        """The identity in the book's notation, or (``explicit``) with SymPy's matrices."""
        rel = "=" if self.holds else r"\neq"
        if not explicit:
            return f"{self.tex_lhs} {rel} {self.tex_rhs}"
        lhs, rhs = (sp.latex(_abbreviate(e, self.abbreviations)) for e in (self.lhs, self.rhs))
        return f"{lhs} {rel} {rhs}"

    def _repr_latex_(self) -> str:
        return f"$${self.latex()}$$"


def _entries(expr: sp.Basic) -> list[sp.Expr]:
    return list(expr) if isinstance(expr, sp.MatrixBase) else [sp.sympify(expr)]


def _free_symbols(*exprs: sp.Basic) -> list[sp.Symbol]:
    syms = set().union(*(sp.sympify(e).free_symbols for e in exprs))
    return sorted(syms, key=lambda s: s.name)


def _abbreviate(expr: sp.Basic, abbreviations: Mapping[sp.Basic, sp.Basic]) -> sp.Basic:
    return sp.sympify(expr).xreplace(dict(abbreviations))


def _nonzero_at_rational_point(diff: sp.Basic, seed: int = 1) -> bool:
    """Exact evaluation at rational values; a clearly nonzero entry disproves the identity."""
    rng = random.Random(seed)
    point = {}
    for s in _free_symbols(diff):
        q = sp.Rational(rng.randint(1, 29), rng.randint(2, 11))
        point[s] = q if (s.is_positive or s.is_nonnegative) else q * rng.choice((-1, 1))
    for e in _entries(diff):
        try:
            value = complex(sp.sympify(e).xreplace(point).evalf(30))
        except (TypeError, ValueError):  # e.g. a pole at this point: no verdict from it
            continue
        if abs(value) > 1e-15:
            return True
    return False


def random_values(symbols: list[sp.Symbol], seed: int = 0) -> dict[sp.Symbol, float]:
    """Seeded float64 values: positive symbols (eps, lambda) in [0.1, 1], the rest N(0, 1).

    eps is drawn this large so that the eps-dependent terms are far above float64 noise.
    """
    rng = np.random.default_rng(seed)
    return {s: float(rng.uniform(0.1, 1.0)) if (s.is_positive or s.is_nonnegative)
            else float(rng.standard_normal()) for s in symbols}


def _number(expr: sp.Basic, vals: Values) -> float:
    return float(sp.sympify(expr).xreplace(dict(vals)))


def _tensor(symbols: sp.MatrixBase, vals: Values) -> torch.Tensor:
    shape = symbols.shape if symbols.shape[1] > 1 else (symbols.shape[0],)
    flat = [vals[s] for s in symbols]  # row-major, like torch
    return torch.tensor(flat, dtype=torch.float64).reshape(shape)


# ----------------------------------------------------------------------------- forward passes


def _vector(name: str, n: int) -> sp.ImmutableMatrix:  # (n, 1) column of real symbols
    return sp.ImmutableMatrix([sp.Symbol(f"{name}_{i}", real=True) for i in range(1, n + 1)])


def _ones(n: int) -> sp.ImmutableMatrix:
    return sp.ImmutableMatrix.ones(n, 1)


def _mean(v: sp.MatrixBase) -> sp.Expr:
    return sum(v) / len(v)


def _check_args(n: int, eps) -> sp.Expr:
    args.check_number("symbolic", "n", n, lambda v: v >= 2, "an int >= 2", integral=True)
    e = sp.sympify(eps)
    if e.is_negative:
        raise args.arg_error(ValueError, "symbolic", "eps", "a nonnegative value (EPS or 0)", repr(eps))
    return e


def _validated_cache(fn):
    """``lru_cache`` on validated, normalised arguments (else ``2.0`` would hit ``2``'s entry)."""
    cached = functools.lru_cache(maxsize=None)(fn)
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*positional, **keywords):
        bound = sig.bind(*positional, **keywords)
        bound.apply_defaults()
        a = bound.arguments
        a["eps"] = _check_args(a["n"], a["eps"])
        if "k" in a:
            args.check_number("symbolic", "k", a["k"], lambda v: v >= 1, "an int >= 1", integral=True)
        return cached(**a)

    wrapper.cache_clear = cached.cache_clear
    return wrapper


@dataclass(frozen=True)
class LayerNormForward:
    """Symbolic LayerNorm forward: ``xhat = (x - mean)/s``, ``s = sqrt(var + eps)``."""

    n: int
    eps: sp.Expr
    x: sp.ImmutableMatrix     # (n, 1)
    mean: sp.Expr
    xc: sp.ImmutableMatrix    # (n, 1) centred x - mean
    var: sp.Expr
    s: sp.Expr
    xhat: sp.ImmutableMatrix  # (n, 1)

    @property
    def abbreviations(self) -> dict:
        return {self.var + self.eps: _S**2}


@dataclass(frozen=True)
class RMSNormForward:
    """Symbolic RMSNorm forward: ``xhat = x/r``, ``r = sqrt(mean(x^2) + eps)``."""

    n: int
    eps: sp.Expr
    x: sp.ImmutableMatrix     # (n, 1)
    ms: sp.Expr               # mean(x^2)
    r: sp.Expr
    xhat: sp.ImmutableMatrix  # (n, 1)

    @property
    def abbreviations(self) -> dict:
        return {self.ms + self.eps: _R**2}


def _layer_norm_of(x: sp.MatrixBase, eps: sp.Expr) -> LayerNormForward:
    mean = _mean(x)
    xc = sp.ImmutableMatrix(x - mean * _ones(len(x)))
    var = _mean(xc.applyfunc(lambda e: e**2))
    s = sp.sqrt(var + eps)
    return LayerNormForward(len(x), eps, sp.ImmutableMatrix(x), mean, xc, var, s, xc / s)


@_validated_cache
def layer_norm_forward(n: int, eps=EPS) -> LayerNormForward:
    """LayerNorm of the symbols ``x_1..x_n``."""
    return _layer_norm_of(_vector("x", n), eps)


@_validated_cache
def rms_norm_forward(n: int, eps=EPS) -> RMSNormForward:
    """RMSNorm of the symbols ``x_1..x_n``."""
    x = _vector("x", n)
    ms = _mean(x.applyfunc(lambda e: e**2))
    r = sp.sqrt(ms + eps)
    return RMSNormForward(n, eps, x, ms, r, x / r)


# ----------------------------------------------------------------------------- Jacobians


@_validated_cache
def ln_jacobian(n: int, eps=EPS) -> sp.ImmutableMatrix:
    """``d LN(x) / dx`` by SymPy differentiation, (n, n)."""
    fw = layer_norm_forward(n, eps)
    return sp.ImmutableMatrix(fw.xhat.jacobian(fw.x))


@_validated_cache
def ln_jacobian_closed_form(n: int, eps=EPS) -> sp.ImmutableMatrix:
    """``(1/s)(I - 11^T/n - xhat xhat^T/n)``, exact for every eps >= 0."""
    fw = layer_norm_forward(n, eps)
    one = _ones(n)
    return sp.ImmutableMatrix((sp.eye(n) - one * one.T / n - fw.xhat * fw.xhat.T / n) / fw.s)


@_validated_cache
def rms_jacobian(n: int, eps=EPS) -> sp.ImmutableMatrix:
    """``d RMS(x) / dx`` by SymPy differentiation, (n, n)."""
    fw = rms_norm_forward(n, eps)
    return sp.ImmutableMatrix(fw.xhat.jacobian(fw.x))


@_validated_cache
def rms_jacobian_closed_form(n: int, eps=EPS) -> sp.ImmutableMatrix:
    """``(1/r)(I - x x^T/(n r^2))``."""
    fw = rms_norm_forward(n, eps)
    return sp.ImmutableMatrix((sp.eye(n) - fw.x * fw.x.T / (n * fw.r**2)) / fw.r)


def _complement_projector(v: sp.MatrixBase, *, with_ones: bool) -> sp.ImmutableMatrix:
    """Orthogonal projector onto the complement of ``v`` (and of ``1``; v must be centred)."""
    n = len(v)
    p = sp.eye(n) - v * v.T / (v.T * v)[0]
    if with_ones:
        p -= _ones(n) * _ones(n).T / n
    return sp.ImmutableMatrix(p)


def jacobian_display(kind: str = "ln", n: int = 3) -> sp.MatMul:
    """The closed-form Jacobian as ``(1/s) M`` in display symbols (``\\hat x_i``, ``s`` or ``r``).

    Unevaluated, for ``sympy.latex``; ``.as_explicit()`` gives the plain (n, n) matrix.
    """
    _check_args(n, 0)
    xh = sp.ImmutableMatrix([sp.Symbol(rf"\hat{{x}}_{i}", real=True) for i in range(1, n + 1)])
    one = _ones(n)
    if kind == "ln":
        inner, scale = sp.eye(n) - one * one.T / n - xh * xh.T / n, _S
    elif kind == "rms":
        inner, scale = sp.eye(n) - xh * xh.T / n, _R
    else:
        raise args.arg_error(ValueError, "symbolic", "kind", "'ln' or 'rms'", repr(kind))
    return sp.MatMul(1 / scale, sp.ImmutableMatrix(inner), evaluate=False)


# ----------------------------------------------------------------------------- numeric routes


def _torch_ln_jacobian(fw: LayerNormForward, vals: Values) -> np.ndarray:
    e = _number(fw.eps, vals)
    return _torch_jacobian(lambda v: F.layer_norm(v, (fw.n,), eps=e), _tensor(fw.x, vals)).numpy()


def _torch_rms_jacobian(fw: RMSNormForward, vals: Values) -> np.ndarray:
    e = _number(fw.eps, vals)
    return _torch_jacobian(lambda v: F.rms_norm(v, (fw.n,), eps=e), _tensor(fw.x, vals)).numpy()


def _np_projector(v: np.ndarray, *, with_ones: bool) -> np.ndarray:
    n = v.size
    p = np.eye(n) - np.outer(v, v) / (v @ v)
    return p - np.ones((n, n)) / n if with_ones else p


def _np_centred(fw: LayerNormForward, vals: Values) -> np.ndarray:
    x = _tensor(fw.x, vals).numpy()
    return x - x.mean()


# ----------------------------------------------------------------------------- LayerNorm


@_validated_cache
def ln_identities(n: int, eps=EPS) -> tuple[Identity, ...]:
    """Jacobian closed forms, symmetry, null space and eigen-structure of LayerNorm."""
    fw = layer_norm_forward(n, eps)
    J, C = ln_jacobian(n, eps), ln_jacobian_closed_form(n, eps)
    one, s, xh, xc = _ones(n), fw.s, fw.xhat, fw.xc
    z = xc / sp.sqrt(fw.var)  # standardised with sigma, not s
    P = _complement_projector(xc, with_ones=True)
    u = _vector("u", n)  # generic vector, projected onto the complement
    # |xc|^2 P u: the same direction as P u for every u, without P's denominator (2x faster)
    vperp = sp.ImmutableMatrix((xc.T * xc)[0] * (u - _mean(u) * one) - (xc.T * u)[0] * xc)
    I, ones_t = sp.eye(n), one * one.T / n
    Jt = lambda v: _torch_ln_jacobian(fw, v)
    Pn = lambda v: _np_projector(_np_centred(fw, v), with_ones=True)
    ab = fw.abbreviations

    def mk(**fields):
        return Identity(**fields, abbreviations=ab)

    return (
        mk(name="ln.jacobian", statement=r"SymPy's derivative of LN equals the closed form (every $\epsilon \ge 0$)",
           tex_lhs=r"\frac{\partial \hat x}{\partial x}",
           tex_rhs=r"\frac{1}{s}\Big(I - \frac{\mathbf 1 \mathbf 1^\top}{n}"
           r" - \frac{\hat x \hat x^\top}{n}\Big)", lhs=J, rhs=C, numeric_lhs=Jt),
        mk(name="ln.jacobian_sigma_form", statement=r"with $z = (x - \mu)/\sigma$ the $zz^\top$ term carries $\sigma^2/s^2$",
           tex_lhs="J", tex_rhs=r"\frac{1}{s}\Big(I - \frac{\mathbf 1 \mathbf 1^\top}{n}"
           r" - \frac{z z^\top}{n}\frac{\sigma^2}{\sigma^2+\epsilon}\Big)",
           lhs=J, rhs=(I - ones_t - z * z.T / n * fw.var / (fw.var + fw.eps)) / s, numeric_lhs=Jt),
        mk(name="ln.jacobian_sigma_form_without_factor",
           statement=r"dropping $\sigma^2/(\sigma^2+\epsilon)$ is exact only at $\epsilon = 0$",
           tex_lhs="J", tex_rhs=r"\frac{1}{s}\Big(I - \frac{\mathbf 1 \mathbf 1^\top}{n}"
           r" - \frac{z z^\top}{n}\Big)", lhs=J, rhs=(I - ones_t - z * z.T / n) / s, numeric_lhs=Jt,
           holds=fw.eps == 0),
        mk(name="ln.jacobian_without_xhat_term", statement="the centring term alone is not the Jacobian",
           tex_lhs="J", tex_rhs=r"\frac{1}{s}\Big(I - \frac{\mathbf 1 \mathbf 1^\top}{n}\Big)",
           lhs=J, rhs=(I - ones_t) / s, numeric_lhs=Jt, holds=False),
        mk(name="ln.symmetric", statement="the LayerNorm Jacobian is symmetric", tex_lhs="J", tex_rhs=r"J^\top", lhs=J, rhs=J.T, numeric_lhs=Jt),
        mk(name="ln.shift_invariance", statement=r"$J\mathbf 1 = \mathbf 0$: adding a constant to $x$ changes nothing",
           tex_lhs=r"J\,\mathbf 1", tex_rhs=r"\mathbf 0", lhs=J * one, rhs=sp.zeros(n, 1), numeric_lhs=lambda v: Jt(v) @ np.ones(n)),
        mk(name="ln.scale", statement=r"$Jx = (\epsilon/s^2)\,\hat x$: scale invariance exactly when $\epsilon = 0$",
           tex_lhs=r"J\,x", tex_rhs=r"\frac{\epsilon}{s^2}\,\hat x", lhs=J * fw.x, rhs=fw.eps / s**2 * xh,
           numeric_lhs=lambda v: Jt(v) @ _tensor(fw.x, v).numpy()),
        mk(name="ln.eigen_xhat", statement=r"$\hat x$ is an eigenvector with eigenvalue $\epsilon/s^3$",
           tex_lhs=r"J\,\hat x", tex_rhs=r"\frac{\epsilon}{s^3}\,\hat x", lhs=J * xh, rhs=fw.eps / s**3 * xh,
           numeric_lhs=lambda v: Jt(v) @ F.layer_norm(_tensor(fw.x, v), (n,), eps=_number(fw.eps, v)).numpy()),
        mk(name="ln.eigen_complement", statement=r"every $v$ orthogonal to $\mathbf 1$ and $\hat x$ has eigenvalue $1/s$",
           tex_lhs=r"J\,v", tex_rhs=r"\frac{1}{s}\,v,\ v = |x - \mu|^2 P_\perp u", lhs=J * vperp, rhs=vperp / s,
           numeric_lhs=lambda v: Jt(v) @ (Pn(v) @ _tensor(u, v).numpy()) * (_np_centred(fw, v) ** 2).sum()),
        mk(name="ln.complement_projector", statement=r"$P_\perp = I - \mathbf 1\mathbf 1^\top/n - \hat x\hat x^\top/\|\hat x\|^2$ is a projector",
           tex_lhs=r"P_\perp^2", tex_rhs=r"P_\perp", lhs=P * P, rhs=P, numeric_lhs=lambda v: Pn(v) @ Pn(v)),
        mk(name="ln.complement_rank", statement=r"so its range, the $1/s$ eigenspace, has dimension $n - 2$",
           tex_lhs=r"\operatorname{tr} P_\perp", tex_rhs="n - 2", lhs=P.trace(), rhs=sp.Integer(n - 2),
           numeric_lhs=lambda v: np.trace(Pn(v))),
        mk(name="ln.spectral", statement=r"$J = 0\cdot\mathbf 1\mathbf 1^\top/n + (\epsilon/s^3)\,uu^\top + (1/s)\,P_\perp$ with $u = \hat x/\|\hat x\|$",
           tex_lhs="J", tex_rhs=r"\frac{\epsilon}{s^3}\frac{\hat x\hat x^\top}{\hat x^\top \hat x}"
           r" + \frac{1}{s}P_\perp",
           lhs=J, rhs=fw.eps / s**3 * xc * xc.T / (xc.T * xc)[0] + P / s, numeric_lhs=Jt),
    )


# ----------------------------------------------------------------------------- RMSNorm


@_validated_cache
def rms_identities(n: int, eps=EPS) -> tuple[Identity, ...]:
    """Jacobian closed form, symmetry and eigen-structure of RMSNorm."""
    fw = rms_norm_forward(n, eps)
    J, C, r, x = rms_jacobian(n, eps), rms_jacobian_closed_form(n, eps), fw.r, fw.x
    P = _complement_projector(x, with_ones=False)
    u = _vector("u", n)
    vperp = sp.ImmutableMatrix((x.T * x)[0] * u - (x.T * u)[0] * x)  # |x|^2 P u
    Jt = lambda v: _torch_rms_jacobian(fw, v)
    Pn = lambda v: _np_projector(_tensor(x, v).numpy(), with_ones=False)
    ab = fw.abbreviations

    def mk(**fields):
        return Identity(**fields, abbreviations=ab)

    return (
        mk(name="rms.jacobian", statement="SymPy's derivative of RMSNorm equals the closed form",
           tex_lhs=r"\frac{\partial \hat x}{\partial x}",
           tex_rhs=r"\frac{1}{r}\Big(I - \frac{x x^\top}{n r^2}\Big)", lhs=J, rhs=C, numeric_lhs=Jt),
        mk(name="rms.symmetric", statement="the RMSNorm Jacobian is symmetric", tex_lhs="J", tex_rhs=r"J^\top", lhs=J, rhs=J.T, numeric_lhs=Jt),
        mk(name="rms.eigen_x", statement=r"$x$ is an eigenvector with eigenvalue $\epsilon/r^3$ (scale invariance at $\epsilon = 0$)",
           tex_lhs=r"J\,x", tex_rhs=r"\frac{\epsilon}{r^3}\,x", lhs=J * x, rhs=fw.eps / r**3 * x,
           numeric_lhs=lambda v: Jt(v) @ _tensor(x, v).numpy()),
        mk(name="rms.eigen_complement", statement=r"every $v$ orthogonal to $x$ has eigenvalue $1/r$",
           tex_lhs=r"J\,v", tex_rhs=r"\frac{1}{r}\,v,\ v = |x|^2 P_\perp u", lhs=J * vperp, rhs=vperp / r,
           numeric_lhs=lambda v: Jt(v) @ (Pn(v) @ _tensor(u, v).numpy()) * (_tensor(x, v).numpy() ** 2).sum()),
        mk(name="rms.complement_projector", statement=r"$P_\perp = I - xx^\top/\|x\|^2$ is a projector",
           tex_lhs=r"P_\perp^2", tex_rhs=r"P_\perp", lhs=P * P, rhs=P, numeric_lhs=lambda v: Pn(v) @ Pn(v)),
        mk(name="rms.complement_rank", statement=r"so its range, the $1/r$ eigenspace, has dimension $n - 1$",
           tex_lhs=r"\operatorname{tr} P_\perp", tex_rhs="n - 1", lhs=P.trace(), rhs=sp.Integer(n - 1),
           numeric_lhs=lambda v: np.trace(Pn(v))),
        mk(name="rms.spectral", statement=r"$J = (\epsilon/r^3)\,xx^\top/\|x\|^2 + (1/r)\,P_\perp$",
           tex_lhs="J", tex_rhs=r"\frac{\epsilon}{r^3}\frac{x x^\top}{x^\top x} + \frac{1}{r}P_\perp",
           lhs=J, rhs=fw.eps / r**3 * x * x.T / (x.T * x)[0] + P / r, numeric_lhs=Jt),
    )


# ----------------------------------------------------------------------------- backward


@_validated_cache
def backward_identities(n: int, eps=EPS) -> tuple[Identity, ...]:
    """``dx = J^T (w * dy)`` in the kernels' form, for LayerNorm and RMSNorm."""
    ln, rms = layer_norm_forward(n, eps), rms_norm_forward(n, eps)
    w, dy = _vector("w", n), _vector("dy", n)
    g = sp.ImmutableMatrix(w.multiply_elementwise(dy))  # (n, 1) dy' = w * dy

    def dx(fw, scale, centre):
        gx = _mean(g.multiply_elementwise(fw.xhat))
        return (g - (_mean(g) * _ones(n) if centre else sp.zeros(n, 1)) - fw.xhat * gx) / scale

    def torch_dx(op, fw, v):
        x = _tensor(fw.x, v).requires_grad_(True)
        y = op(x, (n,), _tensor(w, v), eps=_number(fw.eps, v))
        return torch.autograd.grad(y, x, grad_outputs=_tensor(dy, v))[0].numpy()

    return (
        Identity("ln.backward", r"LayerNorm backward: $J^\top (w \odot dy)$ in the kernels' form",
                 r"J^\top (w \odot dy)",
                 r"\frac{1}{s}\Big(g - \overline{g} - \hat x\,\overline{g \odot \hat x}\Big),"
                 r"\ g = w \odot dy",
                 ln_jacobian(n, eps).T * g, dx(ln, ln.s, True),
                 lambda v: torch_dx(F.layer_norm, ln, v), True, ln.abbreviations),
        Identity("rms.backward", r"RMSNorm backward: $J^\top (w \odot dy)$ in the kernels' form",
                 r"J^\top (w \odot dy)",
                 r"\frac{1}{r}\Big(g - \hat x\,\overline{g \odot \hat x}\Big),\ g = w \odot dy",
                 rms_jacobian(n, eps).T * g, dx(rms, rms.r, False),
                 lambda v: torch_dx(F.rms_norm, rms, v), True, rms.abbreviations),
    )


# ----------------------------------------------------------------------------- Euler


@dataclass(frozen=True)
class EulerSetup:
    """``L(W) = c^T LN(W x + b)`` with its SymPy gradient ``grad`` (n, k) = dL/dW."""

    W: sp.ImmutableMatrix     # (n, k)
    x: sp.ImmutableMatrix     # (k, 1)
    b: sp.ImmutableMatrix     # (n, 1), zeros when there is no bias
    c: sp.ImmutableMatrix     # (n, 1)
    z: LayerNormForward       # LN of z = W x + b
    loss: sp.Expr
    grad: sp.ImmutableMatrix  # (n, k)

    @property
    def inner(self) -> sp.Expr:
        """``<W, grad_W L> = sum_ij W_ij dL/dW_ij``."""
        return sum(self.W.multiply_elementwise(self.grad))


@_validated_cache
def euler_setup(n: int = 3, k: int = 2, eps=0, bias: bool = False) -> EulerSetup:
    """Symbols ``W`` (n, k), ``x`` (k), ``c`` (n), optional bias ``b`` (n); loss and gradient."""
    W = sp.ImmutableMatrix(n, k, lambda i, j: sp.Symbol(f"W_{i + 1}{j + 1}", real=True))
    x, c = _vector("x", k), _vector("c", n)
    b = _vector("b", n) if bias else sp.ImmutableMatrix.zeros(n, 1)
    zf = _layer_norm_of(W * x + b, eps)
    loss = (c.T * zf.xhat)[0]
    grad = sp.ImmutableMatrix(n, k, lambda i, j: sp.diff(loss, W[i, j]))
    return EulerSetup(W, x, b, c, zf, loss, grad)


def _torch_euler_grad(e: EulerSetup, vals: Values, scale: float = 1.0) -> tuple:
    W = (_tensor(e.W, vals) * scale).requires_grad_(True)
    z = W @ _tensor(e.x, vals) + _tensor(e.b, vals) if e.b.free_symbols else W @ _tensor(e.x, vals)
    loss = _tensor(e.c, vals) @ F.layer_norm(z, (e.W.rows,), eps=_number(e.z.eps, vals))
    (g,) = torch.autograd.grad(loss, W)
    return W.detach().numpy(), g.numpy()


@_validated_cache
def euler_identities(n: int = 3, k: int = 2, eps=0) -> tuple[Identity, ...]:
    """Degree-0 homogeneity of ``W -> c^T LN(W x [+ b])``: what holds, and what eps and b break.

    ``holds`` follows the exact expression ``euler.bias_inner_exact``. One corner: at n = 2 and
    eps = 0, LN(z) = sign(z_1 - z_2) (1, -1) is locally constant, so every gradient is 0 and
    even the biased inner product vanishes; from n = 3 on a bias breaks the identity.
    """
    plain, biased = euler_setup(n, k, eps, False), euler_setup(n, k, eps, True)
    lam_grad = plain.grad.xreplace({w: LAMBDA * w for w in plain.W})
    zero = eps == 0

    def inner(e):
        return lambda v: float(np.sum(np.multiply(*_torch_euler_grad(e, v))))

    def exact(e):  # <W, grad> = (eps/s^2) c^T zhat - c^T J_z b
        zf = e.z
        one = _ones(n)
        Jz = (sp.eye(n) - one * one.T / n - zf.xhat * zf.xhat.T / n) / zf.s
        return (e.z.eps / zf.s**2 * (e.c.T * zf.xhat))[0] - (e.c.T * Jz * e.b)[0]

    def mk(e, **fields):
        return Identity(**fields, abbreviations=e.z.abbreviations)

    return (
        mk(name="euler.inner_zero", statement=r"Euler: $\langle W, \nabla_W L\rangle = 0$ (degree-0 homogeneity; needs $\epsilon = 0$)",
           tex_lhs=r"\langle W, \nabla_W L\rangle", tex_rhs="0", lhs=plain.inner, rhs=sp.Integer(0), numeric_lhs=inner(plain),
           holds=zero, e=plain),
        mk(name="euler.gradient_scaling", statement=r"$\nabla L(\lambda W) = \nabla L(W)/\lambda$ (needs $\epsilon = 0$)",
           tex_lhs=r"\nabla_W L(\lambda W)", tex_rhs=r"\frac{1}{\lambda}\nabla_W L(W)", lhs=lam_grad,
           rhs=plain.grad / LAMBDA,
           numeric_lhs=lambda v: _torch_euler_grad(plain, v, v[LAMBDA])[1], holds=zero, e=plain),
        mk(name="euler.inner_exact", statement=r"$\langle W, \nabla_W L\rangle = (\epsilon/s^2)\,c^\top \hat z$ for every $\epsilon$",
           tex_lhs=r"\langle W, \nabla_W L\rangle", tex_rhs=r"\frac{\epsilon}{s^2}\,c^\top \hat z",
           lhs=plain.inner, rhs=exact(plain), numeric_lhs=inner(plain), holds=True, e=plain),
        mk(name="euler.bias_inner_zero", statement=r"with a bias, $z = Wx + b$, Euler's identity fails",
           tex_lhs=r"\langle W, \nabla_W L\rangle", tex_rhs="0", lhs=biased.inner, rhs=sp.Integer(0), numeric_lhs=inner(biased),
           holds=zero and n == 2, e=biased),
        mk(name="euler.bias_inner_exact", statement=r"with a bias: $\langle W, \nabla_W L\rangle = (\epsilon/s^2)\,c^\top \hat z - c^\top J_z b$",
           tex_lhs=r"\langle W, \nabla_W L\rangle",
           tex_rhs=r"\frac{\epsilon}{s^2}\,c^\top \hat z - c^\top J_z\, b",
           lhs=biased.inner, rhs=exact(biased), numeric_lhs=inner(biased), holds=True, e=biased),
    )


# ----------------------------------------------------------------------------- collections


def identities(n: int, eps=EPS) -> tuple[Identity, ...]:
    """Every per-``n`` identity: LayerNorm, RMSNorm and backward (Euler has its own shapes)."""
    return ln_identities(n, eps) + rms_identities(n, eps) + backward_identities(n, eps)


# ----------------------------------------------------------------------------- spectrum


@dataclass(frozen=True)
class Eigenpair:
    """An eigenvalue (SymPy, in x), its multiplicity, and its eigenvectors in notation."""

    value: sp.Expr
    multiplicity: int
    eigenvectors: str

    def latex(self, abbreviations: Mapping | None = None) -> str:
        return sp.latex(_abbreviate(self.value, abbreviations or {}))


def spectrum(kind: str, n: int, eps=EPS) -> tuple[Eigenpair, ...]:
    """Eigenvalues of the Jacobian, as proved by the ``*.eigen_*``/``*.complement_rank`` identities.

    At eps = 0 the LayerNorm pair (0 on 1, eps/s^3 on xhat) is reported as 0 twice.
    """
    if kind == "ln":
        fw = layer_norm_forward(n, eps)
        pairs = [Eigenpair(sp.Integer(0), 1, r"\mathbf 1"),
                 Eigenpair(fw.eps / fw.s**3, 1, r"\hat x"),
                 Eigenpair(1 / fw.s, n - 2, r"v \perp \mathbf 1, \hat x")]
        if fw.eps == 0:
            pairs[:2] = [Eigenpair(sp.Integer(0), 2, r"\mathbf 1, \hat x")]
    elif kind == "rms":
        fw = rms_norm_forward(n, eps)
        pairs = [Eigenpair(fw.eps / fw.r**3, 1, "x"), Eigenpair(1 / fw.r, n - 1, r"v \perp x")]
    else:
        raise args.arg_error(ValueError, "symbolic", "kind", "'ln' or 'rms'", repr(kind))
    return tuple(p for p in pairs if p.multiplicity > 0)


def spectrum_spot_check(kind: str, n: int, eps=EPS, seed: int = 0) -> float:
    """Max abs difference between :func:`spectrum` and ``eigvalsh`` of torch's Jacobian."""
    fw = layer_norm_forward(n, eps) if kind == "ln" else rms_norm_forward(n, eps)
    vals = random_values(_free_symbols(fw.xhat), seed)
    predicted = sorted(_number(p.value, vals) for p in spectrum(kind, n, eps)
                       for _ in range(p.multiplicity))
    J = (_torch_ln_jacobian if kind == "ln" else _torch_rms_jacobian)(fw, vals)
    return float(np.max(np.abs(np.linalg.eigvalsh(J) - np.array(predicted))))


# ----------------------------------------------------------------------------- for the book


def agrees(idents: tuple[Identity, ...], *names: str) -> bool:
    """SymPy's verdict on the named identities is what the book asserts (their ``holds``)."""
    chosen = [i for i in idents if i.name in names]
    if len(chosen) != len(names):
        known = [i.name for i in idents]
        raise args.arg_error(ValueError, "agrees", "names", f"identities among {known}", list(names))
    return all(i.verify() is i.holds for i in chosen)


def markdown(idents: tuple[Identity, ...]) -> str:
    """Verify each identity and render it as display math with SymPy's verdict and the autograd check.

    Raises ``RuntimeError`` if SymPy's verdict differs from what the book asserts (``holds``), so a
    chapter can never show a derivation that did not check out.
    """
    items = []
    for ident in idents:
        if ident.verify() is not ident.holds:
            raise RuntimeError(f"{ident.name}: SymPy says verify() = {ident.verify()}, the book asserts {ident.holds}")
        check = ident.spot_check()
        verdict = (
            f"SymPy: `simplify(lhs − rhs) = 0`; autograd agrees to {check.max_abs_diff:.1g}"
            if ident.holds
            else f"SymPy: `lhs − rhs ≠ 0`; the right side misses autograd by {check.rhs_err:.2g}"
        )
        items.append(f"* {ident.statement}. {verdict}.\n\n  $$ {ident.latex()} $$")
    return "\n\n".join(items)
