"""Chapter 3 (seed 002), book/03_transformer: LayerNorm inside the Transformer, claims T01–T10.

Sections of the chapter: "The formula on a batch of sequences" (T01, T02), "What range do normalized
values take?" (T03), "Where the norm sits" (T04), "Numerical care: ε and the variance" (T05), "What it
costs" (T06), "What it does for training" (T07, T08), "Inference" (T09), "A pitfall the source does
not mention: the unbiased standard deviation" (T10), and the exercises.

Shapes are the Transformer's: x is (B, L, d), batch × sequence positions × model width, and
LayerNorm's statistics are taken over d for every (batch, position) pair. Everything is seeded and
small; T06 counts a full-size block's operations on meta tensors, which computes nothing. The training
claims (T07, T08) are :mod:`lnbook.experiments.transformer_training`.
"""

from __future__ import annotations

import math

import torch

from lnbook import norms, variance
from lnbook.claims import claim
from lnbook.experiments.common import F64, FLOPS_PER_ELEMENT, H100, ln, max_abs, randn, roofline_seconds
from lnbook.models import LayerNorm, RMSNorm, TransformerBlock

SRC = "seed 002"
CHAPTER = "book/03_transformer"  # the chapter that shows this module's claims
SHAPE = (4, 6, 16)  # (B, L, d): small enough to loop over every position in T01


# ----------------------------------------------------------------------------- the formula on (B, L, d)


def per_position_loop(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The source's formula applied literally: one (b, l) at a time, μ and σ² over the d features."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for pos in range(x.shape[1]):
            v = x[b, pos]  # (d,)
            mu = v.sum() / len(v)
            var = ((v - mu) ** 2).sum() / len(v)
            out[b, pos] = (v - mu) / torch.sqrt(var + eps)
    return out


@claim(
    "T01",
    source=f"{SRC} §formula",
    claim="For x ∈ R^(B×L×d), LayerNorm computes μ and σ² for every sample and position over the d features.",
    statement=(
        "Holds. On a ({batch}, {length}, {width}) tensor the reference LayerNorm with normalized_shape = (d,) "
        "equals the per-position loop of the formula to {loop_diff:.2g} and torch's layer_norm to "
        "{torch_diff:.2g}; every one of the {positions} positions comes out with mean within {out_mean:.2g} of 0. "
        "Normalizing over (L, d) instead is a different operation (outputs differ by up to {ld_diff:.2f}) in "
        "which a position's output depends on the other positions: changing the last position moves the "
        "first one's output by {ld_leak:.2f} there, and by {d_leak:.2g} with statistics over d."
    ),
    verdict="holds",
    kind="derivation",
    # float64 throughout: differing summation orders leave ~1e-15; 1e-12 separates that from a real change.
    decide=lambda n: {
        "equals_loop": n["loop_diff"] < 1e-12, "equals_torch": n["torch_diff"] < 1e-12,
        "centred_per_position": n["out_mean"] < 1e-12, "over_ld_differs": n["ld_diff"] > 0.1,
        "over_ld_couples_positions": n["ld_leak"] > 0.01, "over_d_independent": n["d_leak"] == 0.0,
    },
    # A world where the library took its statistics over (L, d): it differs from the per-position loop by what
    # normalizing over (L, d) changes, and positions leak into each other as they do there.
    null=lambda n: {**n, "loop_diff": n["ld_diff"], "torch_diff": n["ld_diff"], "d_leak": n["ld_leak"]},
)
def t01() -> dict:
    """The evidence for T01. See book/03_transformer.ipynb, section "The formula on a batch of sequences"."""
    x = randn(*SHAPE, seed=30) * 2 + 0.5
    d = x.shape[-1]
    ours = norms.layer_norm(x, (d,))
    over_ld = norms.layer_norm(x, x.shape[1:])
    x2 = x.clone()
    x2[:, -1] += 5.0  # perturb only the last position of every sequence
    leak = lambda shape: max_abs(norms.layer_norm(x2, shape)[:, 0], norms.layer_norm(x, shape)[:, 0])  # noqa: E731
    nums = {
        "batch": SHAPE[0], "length": SHAPE[1], "width": SHAPE[2], "positions": SHAPE[0] * SHAPE[1],
        "loop_diff": max_abs(ours, per_position_loop(x)),
        "torch_diff": max_abs(ours, torch.nn.functional.layer_norm(x, (d,))),
        "out_mean": float(ours.mean(-1).abs().max()),
        "ld_diff": max_abs(ours, over_ld), "ld_leak": leak(x.shape[1:]), "d_leak": leak((d,)),
    }
    return nums


@claim(
    "T02",
    source=f"{SRC} §formula, §parameters",
    claim="γ is initialized to ones and β to zeros.",
    statement=(
        "Holds for torch.nn.LayerNorm and for the book's LayerNorm and RMSNorm modules (RMSNorm has no β): "
        "γ = 1 and β = 0 in all {params} entries checked, ε = {torch_eps:.1g} by default, so at "
        "initialization the layer outputs x̂ itself (largest difference {init_diff:.2g})."
    ),
    verdict="holds",
    decide=lambda n: {
        "gamma_ones": n["gamma_dev"] == 0.0, "beta_zeros": n["betas"] == 2 and n["beta_dev"] == 0.0,
        "eps_1e_5": n["torch_eps"] == 1e-5 and n["book_eps"] == 1e-5,
        # The module runs PyTorch's fused op, the reference ln() its own: float64 rounding only.
        "identity_affine": n["init_diff"] < 1e-14,
    },
    # A world where γ starts at zero (the zero-init some codebases use for a residual branch's last norm):
    # γ is 1 away from ones and the layer outputs β = 0, as far from x̂ as x̂'s largest entry.
    null=lambda n: {**n, "gamma_dev": 1.0, "init_diff": n["xhat_max"]},
)
def t02() -> dict:
    """The evidence for T02. See book/03_transformer.ipynb, section "The formula on a batch of sequences"."""
    d = SHAPE[-1]
    mods = [torch.nn.LayerNorm(d), LayerNorm(d), RMSNorm(d)]
    weights = [m.weight for m in mods]
    biases = [m.bias for m in mods if getattr(m, "bias", None) is not None]
    x = randn(*SHAPE, seed=31)
    with torch.no_grad():
        init_diff = max_abs(LayerNorm(d).double()(x), ln(x, eps=1e-5))
    return {"params": sum(t.numel() for t in weights + biases), "betas": len(biases),
            "gamma_dev": max(float((w.detach() - 1).abs().max()) for w in weights),
            "beta_dev": max(float(b.detach().abs().max()) for b in biases), "torch_eps": torch.nn.LayerNorm(d).eps,
            "book_eps": LayerNorm(d).eps, "init_diff": init_diff, "xhat_max": float(ln(x, eps=1e-5).abs().max())}


# ----------------------------------------------------------------------------- T03: the range of x̂


def one_hot(d: int) -> torch.Tensor:
    """e₁ of width d, float64: (d,)."""
    x = torch.zeros(d, dtype=F64)
    x[0] = 1.0
    return x


def one_hot_max(d: int) -> float:
    """Largest entry of LN(e₁) at width d (ε = 0): the extreme case of the bound √(d−1)."""
    return float(ln(one_hot(d), eps=0.0).max())


def gaussian_xhat(rows: int = 2048, d: int = 512, seed: int = 32) -> torch.Tensor:
    """x̂ of i.i.d. N(0, 1) rows (ε = 0): (rows, d)."""
    return ln(randn(rows, d, seed=seed), eps=0.0)


def outlier_xhat(d: int = 768, outlier: float = 50.0, seed: int = 33) -> float:
    """x̂ of one feature that is ``outlier`` standard deviations out, in an otherwise N(0, 1) row."""
    x = randn(d, seed=seed)
    x[0] = outlier
    return float(ln(x, eps=0.0)[0])


@claim(
    "T03",
    source=f"{SRC} §why",
    claim="Normalized features land roughly in [−2, 2].",
    statement=(
        "Holds under conditions: for Gaussian-like features, not as a bound. For i.i.d. Gaussian inputs {inside:.2%} of x̂ lies "
        "in [−2, 2] (erf(√2) = {closed_inside:.2%}). The only bound is |x̂ᵢ| ≤ √(d−1) (at ε = 0), attained by "
        "a one-hot input: {onehot_768:.2f} at d = 768 (√767 = {sqrt_767:.2f}). One outlier feature 50 standard "
        "deviations out in a row of 768 normalizes to {outlier:.1f}."
    ),
    verdict="holds under conditions",
    decide=lambda n: {
        # 2048·512 ≈ 1e6 values: binomial standard error ≈ 2e-4; finite d = 512 shifts the fraction by
        # O(1/d) ≈ 2e-3 at most. 3e-3 covers both.
        "gaussian_fraction": abs(n["inside"] - n["closed_inside"]) < 3e-3,
        # float64 against the closed form √(d−1) at every width tried: rounding only.
        "onehot_attains_bound": n["onehot_bound_err"] < 1e-12,
        "bound_holds": n["max_gaussian"] <= n["bound_512"],
        "outlier_far_outside": n["outlier"] > 10,
    },
    # A world where [−2, 2] were a bound, the reading that needs no condition: the one-hot row and the
    # outlier normalize to 2 at most.
    null=lambda n: {**n, "onehot_768": 2.0, "onehot_bound_err": n["sqrt_767"] - 2.0, "outlier": 2.0},
)
def t03() -> dict:
    """The evidence for T03. See book/03_transformer.ipynb, section "What range do normalized values take?"."""
    xhat = gaussian_xhat()
    inside = float((xhat.abs() <= 2).double().mean())
    closed = math.erf(2 / math.sqrt(2))
    widths = (2, 4, 16, 64, 768)
    onehot = {d: one_hot_max(d) for d in widths}
    return {"inside": inside, "closed_inside": closed, "onehot_768": onehot[768], "sqrt_767": math.sqrt(767),
            "onehot_bound_err": max(abs(onehot[d] - math.sqrt(d - 1)) for d in widths),
            "outlier": outlier_xhat(), "max_gaussian": float(xhat.abs().max()), "bound_512": math.sqrt(511)}


# ----------------------------------------------------------------------------- T04: Post-LN and Pre-LN


def attention_by_hand(attn, x: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ/√d_h + causal mask) V with the module's weights, written out: (B, L, d)."""
    b, l, d = x.shape
    h = attn.heads
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(d, dim=-1)
    heads = lambda t: t.reshape(b, l, h, d // h).transpose(1, 2)  # noqa: E731  (B, h, L, d/h)
    scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(d // h)  # (B, h, L, L)
    scores = scores.masked_fill(torch.ones(l, l, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(b, l, d)
    return y @ attn.proj.weight.T + attn.proj.bias


def block_by_hand(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """The source's two formulas, with torch's layer_norm and the block's own parameters."""
    for sub in block:
        norm = lambda t: torch.nn.functional.layer_norm(t, t.shape[-1:], sub.norm.weight, sub.norm.bias, sub.norm.eps)  # noqa: E731
        f = (lambda t: attention_by_hand(sub.sublayer, t)) if hasattr(sub.sublayer, "heads") else sub.sublayer
        x = norm(x + f(x)) if sub.placement == "post" else x + f(norm(x))
    return x


@claim(
    "T04",
    source=f"{SRC} §position",
    claim="Post-LN: x = LN(x + Sublayer(x)) (the original Transformer); Pre-LN: x = x + Sublayer(LN(x)).",
    statement=(
        "Holds: the library's Transformer blocks (causal self-attention and MLP, each in a residual branch) "
        "compute exactly these formulas: written out by hand with torch's layer_norm and an explicit "
        "softmax attention they agree to {post_diff:.2g} (Post-LN) and {pre_diff:.2g} (Pre-LN). The Post-LN "
        "output is normalized at every position (variance within {post_var_err:.2g} of 1, which ε explains), "
        "the Pre-LN output is not (variances from {pre_var_min:.2f} to {pre_var_max:.2f}). Attention is causal: "
        "changing the last token moves earlier positions by {causal_leak:.2g}."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        # float64, two implementations of the same arithmetic (fused attention vs explicit): rounding only.
        "post_formula": n["post_diff"] < 1e-12, "pre_formula": n["pre_diff"] < 1e-12,
        # σ² of the residual sum is O(1) here, so ε = 1e-5 lowers the output variance by at most ~1e-4.
        "post_normalized": n["post_var_err"] < 1e-3,
        "pre_not_normalized": abs(n["pre_var_min"] - 1) > 0.1 or abs(n["pre_var_max"] - 1) > 0.1,
        "causal": n["causal_leak"] < 1e-12,
    },
    # A world where the library's placements were swapped: each block is as far from its formula as the two
    # placements' outputs are from each other, and the "Pre-LN" output is normalized.
    null=lambda n: {**n, "post_diff": n["placement_diff"], "pre_diff": n["placement_diff"],
                    "pre_var_min": 1 - n["post_var_err"], "pre_var_max": 1 + n["post_var_err"]},
)
def t04() -> dict:
    """The evidence for T04. See book/03_transformer.ipynb, section "Where the norm sits: Post-LN and Pre-LN"."""
    torch.manual_seed(34)
    blocks = {p: TransformerBlock(32, heads=4, placement=p).double() for p in ("post", "pre")}
    x = randn(3, 10, 32, seed=35) * 2 + 1
    x2 = x.clone()
    x2[:, -1] = randn(3, 32, seed=36)
    with torch.no_grad():
        y = {p: b(x) for p, b in blocks.items()}
        diff = {p: max_abs(y[p], block_by_hand(b, x)) for p, b in blocks.items()}
        leak = max(max_abs(b(x2)[:, :-1], y[p][:, :-1]) for p, b in blocks.items())
    post_var = y["post"].var(-1, correction=0)
    pre_var = y["pre"].var(-1, correction=0)
    return {"post_diff": diff["post"], "pre_diff": diff["pre"], "post_var_err": float((post_var - 1).abs().max()),
            "pre_var_min": float(pre_var.min()), "pre_var_max": float(pre_var.max()), "causal_leak": leak,
            "placement_diff": max_abs(y["post"], y["pre"])}


def block_diagram():
    """Post-LN and Pre-LN residual blocks side by side (matplotlib boxes and arrows): returns the figure."""
    from lnbook import plots

    fig, axes = plots.figure(ncols=2, width=7.2, height=4.2)
    colors = {"LayerNorm": plots.COLORS["ln"], "Sublayer": "#888888", "+": "#ffffff"}
    layouts = {
        "Post-LN: LN(x + Sublayer(x))": [("x", 0), ("Sublayer", 1), ("+", 2), ("LayerNorm", 3), ("out", 4)],
        "Pre-LN: x + Sublayer(LN(x))": [("x", 0), ("LayerNorm", 1), ("Sublayer", 2), ("+", 3), ("out", 4)],
    }
    for ax, (title, nodes) in zip(axes, layouts.items()):
        ax.set(xlim=(-1.6, 1.6), ylim=(-0.6, 4.6), title=title)
        ax.axis("off")
        for (name, y), (_, y_next) in zip(nodes, nodes[1:] + [(None, None)]):
            style = dict(boxstyle="circle" if name == "+" else "round", fc=colors.get(name, "#f4f4f4"),
                         alpha=0.35 if name in colors and name != "+" else 1.0)
            ax.text(0, y, name, ha="center", va="center", bbox=style)
            if y_next is not None:
                ax.annotate("", (0, y_next - 0.28), (0, y + 0.28), arrowprops=dict(arrowstyle="->"))
        plus = next(y for name, y in nodes if name == "+")
        ax.plot([-0.15, -0.9, -0.9], [0, 0, plus], color="black", lw=1)  # the identity path around the branch
        ax.annotate("", (-0.2, plus), (-0.9, plus), arrowprops=dict(arrowstyle="->"))
        ax.text(-1.0, plus / 2, "residual", rotation=90, ha="right", va="center")
    return fig


# ----------------------------------------------------------------------------- T05: ε and the variance


def eps_effect(sigmas=(1.0, 1e-2, math.sqrt(1e-5), 1e-3), d: int = 768, seed: int = 37):
    """For rows with std σ: the output std at ε = 1e-5 and 1e-6, and max |LN_1e-5 − LN_1e-6|."""
    z = randn(d, seed=seed)
    z = (z - z.mean()) / z.std(correction=0)  # exactly unit spread
    out = []
    for s in sigmas:
        y5, y6 = ln(s * z, eps=1e-5), ln(s * z, eps=1e-6)
        out.append({"sigma": s, "std_1e5": float(y5.std(correction=0)), "std_1e6": float(y6.std(correction=0)),
                    "diff": max_abs(y5, y6)})
    return out


T05_ROWS = {"rows": 32, "d": 1024, "seed": 38}  # the float32 rows of T05 and of the chapter's figure


@claim(
    "T05",
    source=f"{SRC} §numerical stability",
    claim="ε is usually 1e-5 or 1e-6; compute the variance stably, in double precision if needed.",
    statement=(
        "Holds, with the choice of ε mattering only when σ² is not large against it. At σ = 1 outputs with "
        "ε = 1e-5 and 1e-6 differ by {diff_sigma1:.2g}; at σ² = ε = 1e-5 the output's standard deviation is "
        "{std_at_eps:.3f} (closed form 1/√2) against {std_at_eps_1e6:.3f} with ε = 1e-6. The variance algorithm "
        "matters far more: on float32 rows with mean 1e4 and std 1, E[x²] − E[x]² is off by {naive_err:.0%}, "
        "Welford's single pass by {welford_err:.2g} and two passes by {two_pass_err:.2g} (relative, against "
        "float64). A stable algorithm in float32 is enough here; double precision is not needed."
    ),
    verdict="holds",
    decide=lambda n: {
        # |x̂|·(ε₁ − ε₂)/(2σ²) with |x̂| ≤ 4 in this row: below 1e-4 at σ = 1.
        "eps_irrelevant_at_unit_sigma": n["diff_sigma1"] < 1e-4,
        # float64 against the closed forms 1/√2 and 1/√1.1: rounding only.
        "std_closed_form": abs(n["std_at_eps"] - 1 / math.sqrt(2)) < 1e-12,
        "std_closed_form_1e6": abs(n["std_at_eps_1e6"] - 1 / math.sqrt(1.1)) < 1e-12,
        "naive_cancels": n["naive_err"] > 0.1,
        # float32: u ≈ 6e-8; two passes lose a few u·d^(1/2), Welford's running mean about u·|mean|/σ ≈ 6e-4.
        "two_pass_accurate": n["two_pass_err"] < 1e-5, "welford_accurate": n["welford_err"] < 1e-2,
    },
    # A world where the algorithm does not matter and float32 needs double precision: the stable algorithms
    # are as far off as the naive one.
    null=lambda n: {**n, "welford_err": n["naive_err"], "two_pass_err": n["naive_err"]},
)
def t05() -> dict:
    r"""The evidence for T05. See book/03_transformer.ipynb, section "Numerical care: $\epsilon$ and the variance"."""
    eff = {round(e["sigma"] ** 2, 12): e for e in eps_effect()}
    err = variance.relative_errors(1e4, torch.float32, **T05_ROWS)
    return {"diff_sigma1": eff[1.0]["diff"], "std_at_eps": eff[1e-5]["std_1e5"],
            "std_at_eps_1e6": eff[1e-5]["std_1e6"], "naive_err": err["naive"], "welford_err": err["welford"],
            "two_pass_err": err["two_pass"]}


# ----------------------------------------------------------------------------- T06: cost


def flops_per_token(d: int, seq: int) -> dict[str, int]:
    """FLOPs per token of one Transformer block (multiply-add = 2), by term.

    Matmuls: QKV 2·d·3d, output projection 2·d·d, MLP 2·d·4d twice: 24d². Attention scores and
    their product with V: 2·2·L·d, counted over all L keys as dense kernels do. LayerNorm:
    ``FLOPS_PER_ELEMENT["layer_norm"]`` per element, twice per block.
    """
    return {"matmul": 24 * d * d, "attention": 4 * seq * d, "layernorm": 2 * FLOPS_PER_ELEMENT["layer_norm"] * d}


def bytes_per_token(d: int, element_size: int = 2) -> dict[str, int]:
    """Activation bytes per token of one Transformer block's forward, by the terms of :func:`flops_per_token`
    and the elementwise rest, each tensor read or written once (weights are counted per batch).

    Matmuls: QKV reads d and writes 3d, the output projection d and d, the MLP d and 4d, then 4d and
    d: 16d. Attention (a fused kernel) reads q, k, v and writes its output: 4d. Each LayerNorm reads
    its input and writes its output: 2d, twice. The rest: two residual additions (read 2d, write d),
    GELU (read and write 4d), and the copy of attention's output back to (B, L, d) (read and write d): 16d.
    """
    return {"matmul": 16 * d * element_size, "attention": 4 * d * element_size,
            "layernorm": 2 * 2 * d * element_size, "elementwise": 16 * d * element_size}


PARTS = ("matmul", "attention", "layernorm", "elementwise")


def part_of(op: str) -> str:
    """Which term of the block's cost an ATen op belongs to."""
    if op in ("addmm", "mm", "bmm"):
        return "matmul"
    return {"scaled_dot_product_attention": "attention", "native_layer_norm": "layernorm"}.get(op, "elementwise")


def _tensors(*trees) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(trees)[0] if isinstance(t, torch.Tensor)]


def _nbytes(*trees) -> int:
    """Bytes of every tensor in ``trees`` (nested args, kwargs, outputs)."""
    return sum(t.numel() * t.element_size() for t in _tensors(*trees))


def _op_flops(func, args, kwargs, out) -> int:
    """PyTorch's FLOP formula for a matrix product (torch.utils.flop_counter), ``FLOPS_PER_ELEMENT`` per
    element for layer_norm, one per output element for any other op."""
    from torch.utils import flop_counter

    if func.overloadpacket in flop_counter.flop_registry:
        return int(flop_counter.flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
    first = _tensors(out)[0].numel()
    return first * FLOPS_PER_ELEMENT["layer_norm"] if func.overloadpacket.__name__ == "native_layer_norm" else first


def _count_flops(fn) -> list[dict]:
    """Every ATen op that ``fn()`` dispatches, in order, as {"op", "flops", "bytes"} (:func:`_op_flops`; bytes
    are every tensor the op reads and writes, none for views). Attention counts as one fused kernel: its
    inputs and output, not the L × L scores its decomposition on this machine writes. Run it on meta tensors
    to count any shape for free."""
    from torch.overrides import TorchFunctionMode
    from torch.utils import flop_counter
    from torch.utils._python_dispatch import TorchDispatchMode

    ops, inside_attention = [], [False]

    class Dispatched(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            view = any(r.alias_info is not None for r in func._schema.returns) or name == "_unsafe_view"
            if not (inside_attention[0] or view):
                ops.append({"op": name, "flops": _op_flops(func, args, kwargs or {}, out),
                            "bytes": _nbytes(args, kwargs, out)})
            return out

    class FusedAttention(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is not torch.nn.functional.scaled_dot_product_attention:
                return func(*args, **(kwargs or {}))
            inside_attention[0] = True
            try:
                out = func(*args, **(kwargs or {}))
            finally:
                inside_attention[0] = False
            q, k, v = args[:3]
            ops.append({"op": "scaled_dot_product_attention", "bytes": _nbytes(q, k, v, out),
                        "flops": int(flop_counter.sdpa_flop_count(q.shape, k.shape, v.shape))})
            return out

    with torch.no_grad(), FusedAttention(), Dispatched():
        fn()
    return ops


T06_SHAPE = {"d": 768, "seq": 1024, "batch": 8}  # GPT-2 small's width and context, a modest batch
TENSOR_CORE_EFFICIENCY = 0.7  # matrix products and attention at 70 % of peak: the model's sensitivity


def block_ops(d: int, seq: int, batch: int) -> list[dict]:
    """The ATen ops of one bfloat16 Pre-LN block's forward at this shape, counted on meta tensors."""
    with torch.device("meta"):
        block = TransformerBlock(d, heads=d // 64).to(torch.bfloat16)
        x = torch.empty(batch, seq, d, dtype=torch.bfloat16)
    return _count_flops(lambda: block(x))


def op_seconds(op: dict, tensor_core: float = 1.0) -> float:
    """One op's least time on an H100 (:func:`roofline_seconds`): matrix products and attention on the
    tensor cores at ``tensor_core`` times their peak, everything else on the CUDA cores."""
    if part_of(op["op"]) in ("matmul", "attention"):
        return roofline_seconds(op["flops"], op["bytes"], {**H100, "flops": H100["flops"] * tensor_core})
    return roofline_seconds(op["flops"], op["bytes"], {**H100, "flops": H100["fp32_flops"]})


def layernorm_time_share(ops: list[dict], tensor_core: float = 1.0) -> float:
    """The LayerNorms' share of the block's least time, every op at its roofline."""
    times = [(part_of(op["op"]), op_seconds(op, tensor_core)) for op in ops]
    return sum(t for part, t in times if part == "layernorm") / sum(t for _, t in times)


def by_part(ops: list[dict], key: str) -> dict[str, int]:
    """The ops' ``key`` ("flops" or "bytes") summed by :func:`part_of`."""
    return {part: sum(op[key] for op in ops if part_of(op["op"]) == part) for part in PARTS}


def _decide_t06(n) -> dict[str, bool]:
    same_bytes = lambda part: abs(n[f"{part}_bytes_counted"] / n[f"{part}_bytes_model"] - 1) < 0.01  # noqa: E731
    return {
        # The hand count and PyTorch's flop formulas on the block's own ops: integers, equal or not.
        "matmul_flops_counted": n["matmul_flops_counted"] == n["matmul_flops_model"],
        "attention_flops_counted": n["attention_flops_counted"] == n["attention_flops_model"],
        # The hand count of bytes leaves out biases, γ and β (read once a batch) and LayerNorm's per-row mean
        # and rstd (8 bytes on a row of 1.5 kB): under 1 % of each part.
        "matmul_bytes_counted": same_bytes("matmul"), "layernorm_bytes_counted": same_bytes("layernorm"),
        "elementwise_bytes_counted": same_bytes("elementwise"),
        "flop_share_small": n["flop_share_768"] < 1e-3,
        # Memory-bound: LayerNorm's least time is set by its bytes, more than ten times its FLOPs' time.
        "layernorm_memory_bound": n["layernorm_bytes_over_flops_time"] > 10,
        # Time does not follow FLOPs: the share of time is over ten times the share of FLOPs, also with
        # the tensor cores below peak.
        "time_share_far_above_flop_share": min(n["time_share"], n["time_share_tc70"]) > 10 * n["flop_share_768"],
    }


@claim(
    "T06",
    source=f"{SRC} §complexity",
    claim="LayerNorm costs O(B·L·d), small next to the matrix products.",
    statement=(
        "Holds under conditions: for arithmetic, not for time. Counting FLOPs, a block's two LayerNorms cost "
        "2·7·d per token against 24·d² + 4·L·d for its matrix products and attention (counts PyTorch's "
        "dispatcher confirms), a share of {flop_share_768:.2%} at d = 768, L = 1024. Time is another matter, "
        "because LayerNorm moves memory rather than doing arithmetic. In a roofline model of an H100 fed with "
        "the bytes every ATen op of a bfloat16 block's forward reads and writes (batch 8), the two LayerNorms "
        "take about {time_share:.0%} of the block's time, {time_over_flops:.0f}× their FLOP share, and about "
        "{time_share_tc70:.0%} with the matrix products at 70 % of peak: an estimate, not a bound. The source's "
        "comparison with 'O(L²)' mixes terms: the matrix products grow as L·d² and attention as L²·d."
    ),
    verdict="holds under conditions",
    kind="model",
    assumptions=(
        "H100 SXM5 datasheet figures (3.35 TB/s; 989 TFLOP/s dense bfloat16 on the tensor cores for matrix "
        "products and attention, 67 TFLOP/s float32 for the rest), every ATen op one kernel at its roofline "
        "(FLOPs over peak or bytes over bandwidth, whichever is larger), attention one fused kernel that reads "
        "q, k, v and writes its output, no other fusion; bfloat16, d = 768, L = 1024, batch 8"
    ),
    decide=_decide_t06,
    # A world where LayerNorm's time followed its FLOPs (the source's O(B·L·d) reasoning): compute-bound, its
    # share of time equal to its share of FLOPs.
    null=lambda n: {**n, "time_share": n["flop_share_768"], "time_share_tc70": n["flop_share_768"],
                    "time_over_flops": 1.0, "layernorm_bytes_over_flops_time": 1.0},
)
def t06() -> dict:
    """The evidence for T06. See book/03_transformer.ipynb, section "What it costs"."""
    d, seq, batch = T06_SHAPE["d"], T06_SHAPE["seq"], T06_SHAPE["batch"]
    f = flops_per_token(d, seq)
    ops = block_ops(d, seq, batch)
    flops, nbytes = by_part(ops, "flops"), by_part(ops, "bytes")
    tokens = batch * seq
    weights = 12 * d * d * 2  # QKV 3d², projection d², MLP 8d²: read once per batch, bfloat16
    model_bytes = {k: tokens * v for k, v in bytes_per_token(d).items()}
    ln_ops = [op for op in ops if part_of(op["op"]) == "layernorm"]
    fp32 = {**H100, "flops": H100["fp32_flops"]}
    nums = {"flop_share_768": f["layernorm"] / sum(f.values()), "time_share": layernorm_time_share(ops),
            "time_share_tc70": layernorm_time_share(ops, TENSOR_CORE_EFFICIENCY),
            "layernorm_bytes_over_flops_time": sum(op["bytes"] for op in ln_ops) / fp32["bandwidth"]
            / (sum(op["flops"] for op in ln_ops) / fp32["flops"]),
            "matmul_flops_counted": flops["matmul"], "matmul_flops_model": tokens * f["matmul"],
            "attention_flops_counted": flops["attention"], "attention_flops_model": tokens * f["attention"],
            "matmul_bytes_counted": nbytes["matmul"], "matmul_bytes_model": model_bytes["matmul"] + weights,
            "layernorm_bytes_counted": nbytes["layernorm"], "layernorm_bytes_model": model_bytes["layernorm"],
            "elementwise_bytes_counted": nbytes["elementwise"], "elementwise_bytes_model": model_bytes["elementwise"]}
    nums["time_over_flops"] = nums["time_share"] / nums["flop_share_768"]
    return nums


# ----------------------------------------------------------------------------- T09: inference


def batchnorm_block_diffs(x: torch.Tensor) -> dict[str, float]:
    """T09's null world, measured: the same block with BatchNorm over the features (statistics over the
    batch and positions) in place of each LayerNorm, one batch-1 and one train/eval difference."""
    torch.manual_seed(41)
    block = TransformerBlock(x.shape[-1]).double()
    for sub in block:
        sub.norm = _FeatureBatchNorm(x.shape[-1]).double()
    with torch.no_grad():
        batch1 = max_abs(block.train()(x)[:1], block.train()(x[:1]))
        modes = max_abs(block.train()(x), block.eval()(x))
    return {"bn_batch1_diff": batch1, "bn_train_eval_diff": modes}


class _FeatureBatchNorm(torch.nn.BatchNorm1d):
    """BatchNorm1d on (B, L, d): statistics per feature over the batch and the positions."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


@claim(
    "T09",
    source=f"{SRC} §Transformer, §LN vs BN",
    claim="LayerNorm needs no running statistics at inference and works with batch size 1.",
    statement=(
        "Holds. nn.LayerNorm keeps {ln_buffers} buffers (BatchNorm1d keeps {bn_buffers}: running mean, "
        "variance and a counter). A Pre-LN Transformer block gives a sequence the same output alone "
        "(batch of 1) as inside a batch of 8 (difference {batch1_diff:.2g}) and the same in training and "
        "evaluation mode (difference {train_eval_diff:.2g})."
    ),
    verdict="holds",
    # float64; batched and single-sample matmuls may differ in summation order, hence 1e-12 rather than 0.
    decide=lambda n: {"no_running_stats": n["ln_buffers"] == 0 and n["bn_buffers"] == 3,
                      "batch1_same": n["batch1_diff"] < 1e-12, "modes_same": n["train_eval_diff"] == 0.0},
    # A world where the block's norm were BatchNorm: running statistics kept, and a sequence's output depends
    # on its batch and on the mode (measured with a BatchNorm1d in the block's place).
    null=lambda n: {**n, "ln_buffers": n["bn_buffers"], "batch1_diff": n["bn_batch1_diff"],
                    "train_eval_diff": n["bn_train_eval_diff"]},
)
def t09() -> dict:
    """The evidence for T09. See book/03_transformer.ipynb, section "Inference"."""
    torch.manual_seed(41)
    block = TransformerBlock(32).double()
    x = randn(8, 12, 32, seed=42)
    with torch.no_grad():
        alone = block(x[:1])
        diff = max_abs(block(x)[:1], alone)
        train_eval = max_abs(block.train()(x), block.eval()(x))
    return {"ln_buffers": len(list(torch.nn.LayerNorm(8).buffers())),
            "bn_buffers": len(list(torch.nn.BatchNorm1d(8).buffers())), "batch1_diff": diff,
            "train_eval_diff": train_eval, **batchnorm_block_diffs(x)}


# ----------------------------------------------------------------------------- T10: the unbiased-std pitfall


def ln_unbiased(x: torch.Tensor) -> torch.Tensor:
    """The pitfall: LayerNorm written with torch.std's default, the unbiased (n − 1) estimator."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)


def ln_fixed(x: torch.Tensor) -> torch.Tensor:
    """The fix: correction=0 (unbiased=False in older code), the n in σ² = Σ(x − μ)²/n."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)


def unbiased_gap(widths=(2, 4, 8, 16, 64, 256, 768, 4096), seed: int = 43) -> list[dict[str, float]]:
    """Per width d, on a random row: the elementwise ratio of the buggy version to PyTorch's own layer_norm
    (its fused kernel, ε = 0: a route independent of ``ln_fixed``), its smallest and largest element, and
    the closed form √((d−1)/d). The claim is about every element, so the extremes decide."""
    out = []
    for d in widths:
        x = randn(d, seed=seed + d)
        ratio = ln_unbiased(x) / torch.nn.functional.layer_norm(x, (d,), eps=0.0)  # (d,)
        out.append({"d": d, "min": float(ratio.min()), "max": float(ratio.max()), "closed": math.sqrt((d - 1) / d)})
    return out


@claim(
    "T10",
    source="beyond the source: a common implementation pitfall",
    claim="A LayerNorm written with the unbiased standard deviation (torch.std's default) is a different function.",
    statement=(
        "Holds. On x = (1, 0, 0, 0) the unbiased version gives {buggy_max:.4f} where LayerNorm gives "
        "{correct_max:.4f} (√3); torch.std(correction=0) fixes it (difference from torch's layer_norm "
        "{fixed_vs_torch:.2g}). The two differ by the constant factor √((d−1)/d) for every input: on random rows "
        "from d = 2 to 4096, every element of the unbiased version divided by torch's own layer_norm is within "
        "{ratio_err:.2g} of the closed form. The gap is {gap_4:.1%} at d = 4, {gap_768:.3%} at d = 768. A learned "
        "γ can absorb the factor, so training does not notice; loading weights trained with the other "
        "convention does."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        # Hand arithmetic (tests/test_transformer.py): deviations (3/4, −1/4, −1/4, −1/4), sample std 1/2, population √3/4.
        "buggy_is_1_5": abs(n["buggy_max"] - 1.5) < 1e-12,
        "correct_is_sqrt3": abs(n["correct_max"] - math.sqrt(3)) < 1e-12,
        # float64, two implementations of the population formula: rounding only.
        "fix_matches_torch": n["fixed_vs_torch"] < 1e-12,
        # The buggy version against PyTorch's kernel, element by element, at every width: rounding only.
        "constant_factor": n["ratio_err"] < 1e-12,
    },
    # A world without the pitfall, where torch.std defaulted to the population estimator: the hand-written
    # version is LayerNorm itself, so its ratio to torch's layer_norm is 1, off the closed form by the gap at d = 2.
    null=lambda n: {**n, "buggy_max": n["correct_max"], "ratio_err": n["gap_2"]},
)
def t10() -> dict:
    """The evidence for T10. See book/03_transformer.ipynb, section "A pitfall the source does not mention: the unbiased standard deviation"."""
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)
    gaps = unbiased_gap()
    ratio_err = max(max(g["max"] - g["closed"], g["closed"] - g["min"]) for g in gaps)
    rows = randn(16, 64, seed=44)
    gap = {g["d"]: 1 - g["closed"] for g in gaps}
    return {"buggy_max": float(ln_unbiased(x).max()), "correct_max": float(ln_fixed(x).max()),
            "fixed_vs_torch": max_abs(ln_fixed(rows), torch.nn.functional.layer_norm(rows, (64,), eps=0.0)),
            "ratio_err": ratio_err, "gap_2": gap[2], "gap_4": gap[4], "gap_768": gap[768]}


# ----------------------------------------------------------------------------- exercises


def exercise_answers() -> dict[str, float | int]:
    """The chapter's exercise answers, computed (tests/test_transformer.py checks them by hand)."""
    x32 = torch.tensor(1e8, dtype=torch.float32)
    d = 2
    while 1 - float(ln_unbiased(one_hot(d))[0] / ln_fixed(one_hot(d))[0]) >= 1e-3:  # search, not the closed form
        d += 1
    f = flops_per_token(768, 512)
    return {
        "onehot_768": one_hot_max(768),
        "unbiased_gap_below_0_1pct_at": d,
        "float32_spacing_at_1e8": float(torch.nextafter(x32, torch.tensor(float("inf"))) - x32),
        "ln_flop_share_768_512": f["layernorm"] / (f["matmul"] + f["attention"]),
    }
