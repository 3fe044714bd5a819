"""Chapter 5 (seed 004), book/05_residual: LayerNorm and residual connections, claims R01–R09, R17, R19,
R23, R24.

Sections of the chapter: "The formula, the shapes and the labels" (R02–R04), "The residual
Jacobian" (R01, R09, R19), "Pre-LN and Post-LN at initialization" (R05, R23, R24) and "The residual
stream" (R06–R08, R17). Training is :mod:`lnbook.experiments.residual_training`; the backward pass,
precision, costs and sharding are :mod:`lnbook.experiments.residual_practice`. R11 (fused add +
LayerNorm) belongs to the kernels chapter (:mod:`lnbook.experiments.kernels`).

Every experiment is seeded and small, runs on one thread (the tensors are tiny), and is cached so
that the chapter and the claims share one run. Functions named after a quantity return data for the
figures and the prose; the functions decorated with :func:`lnbook.claims.claim` turn it into evidence.
Quoted constants (GPT-2's initialization, DeepNorm's α and β) name their source where they are
defined. Each claim's function measures and returns its numbers; its ``decide`` turns them into checks and
its ``null`` gives the numbers of a world without the claim's effect, which the decision must reject. No claim
here trains a model: every number is measured at initialization (R24's one random-sign step of every weight
included) or computed, so none is a training outcome.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from lnbook import models
from lnbook.claims import claim
from lnbook.experiments.common import (F64, SeedSpread, ln, loglog_slope, max_abs, one_thread, over_seeds, randn,
                                       semilog_slope)
from lnbook.models import (Block, DeepNormBlock, TransformerBlock, deepnorm_constants, deepnorm_init_, gpt2_init_,
                           zero_branches_)

SRC = "seed 004"
CHAPTER = "book/05_residual"  # the chapter that shows this module's claims
DEPTHS = (6, 12, 24, 48, 96)
STACK = {"d": 32, "heads": 4, "batch": 4, "tokens": 8}

# ----------------------------------------------------------------------------- the formula and the shapes


@claim(
    "R02",
    source=f"{SRC} §3.1",
    claim="LayerNorm is LN(h) = γ·(h − μ)/(σ + ε) + β.",
    statement=(
        "Does not hold as written: frameworks divide by √(σ² + ε), not σ + ε. PyTorch's layer_norm matches "
        "the √(σ² + ε) form to {err_sqrt:.1g} and differs from σ + ε by {err_plus:.2g} on rows of σ = 1; on a "
        "row of σ = 10⁻³ the two forms differ by a factor {ratio_small:.2f}. The source's own code "
        "(manual_layer_norm) uses the correct form."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # float64 on rows of σ = 1: only rounding separates torch from the √(σ² + ε) form.
        "torch_is_sqrt_form": n["err_sqrt"] < 1e-12,
        # 1/√(1+ε) − 1/(1+ε) ≈ ε/2 = 5e-6 times |x| up to about 3.
        "plus_form_differs": n["err_plus"] > 1e-6,
        # σ = 10⁻³ against √ε ≈ 3·10⁻³: the closed form √(s² + ε)/(s + ε) is 3.28.
        "small_sigma_far_apart": n["ratio_small"] > 3,
    },
    # The source's world: torch divides by σ + ε, so the σ + ε form matches and the √ form is the one that differs.
    null=lambda n: {**n, "err_sqrt": n["err_plus"], "err_plus": n["err_sqrt"], "ratio_small": 1.0},
)
def r02() -> dict:
    """The evidence for R02. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    eps = 1e-5
    x = randn(8, 64, seed=2)
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)  # σ = 1 exactly per row
    torch_y = torch.nn.functional.layer_norm(x, (64,), eps=eps)
    sqrt_form, plus_form = x / math.sqrt(1 + eps), x / (1 + eps)
    s = 1e-3  # a nearly constant row of std s: torch's output against the σ + ε form's, s/(s + ε)
    near = s * x[:1]
    torch_small = float(torch.nn.functional.layer_norm(near, (64,), eps=eps).std(correction=0))
    return {"err_sqrt": max_abs(torch_y, sqrt_form), "err_plus": max_abs(torch_y, plus_form),
            "ratio_small": float((near / (s + eps)).std(correction=0)) / torch_small}


def snippet_placements() -> list[tuple[str, str, str]]:
    """Each residual expression in the source's code: (where, the source's label, what it implements)."""
    snippets = [  # (where, source's label, the expression as a function of norm, sublayer, x)
        ("§3.1 SublayerWrapper", "post", lambda n, f, x: n(x + f(x))),
        ("§3.2 SublayerWrapper (comment: norm after the add)", "post", lambda n, f, x: x + f(n(x))),
        ("§3.3 SublayerConnection (docstring and comment: Post-LN)", "post", lambda n, f, x: x + f(n(x))),
        ("§4.3 TransformerBlock (comment: Pre-Norm)", "pre", lambda n, f, x: x + f(n(x))),
        ("§4.2 SublayerConnection (comment: Post-LN variant)", "post", lambda n, f, x: x + f(n(x))),
        ("§4.3 SublayerConnection (comment: Post-LN)", "post", lambda n, f, x: x + f(n(x))),
        ("§4.2 comparison code, scheme one (Post-LN)", "post", lambda n, f, x: x + f(n(x))),
        ("§4.2 comparison code, scheme two (Pre-LN)", "pre", lambda n, f, x: x + n(f(x))),
    ]
    return [(where, label, classify_placement(expr)) for where, label, expr in snippets]


def classify_placement(expr) -> str:
    """Run ``expr(norm, sublayer, x)`` on a row far from normalized and say where the norm sits:
    'pre' (the sublayer sees normalized input), 'post' (the output is normalized), 'branch' (the
    branch's output is normalized before the add), or 'none'."""
    torch.manual_seed(3)
    x = 5 + 3 * randn(4, 16, seed=3)
    lin = nn.Linear(16, 16).double()
    seen = []
    f = lambda v: seen.append(v) or 2 + lin(v)  # noqa: E731  records what the sublayer sees
    out = expr(lambda v: ln(v, eps=0.0), f, x)  # ε = 0: the output is exactly normalized
    normalized = lambda v: bool(v.mean(-1).abs().max() < 1e-9 and (v.var(-1, correction=0) - 1).abs().max() < 1e-9)  # noqa: E731
    if normalized(out):
        return "post"
    if normalized(seen[0]):
        return "pre"
    return "branch" if normalized(out - x) else "none"


@claim(
    "R03",
    source=f"{SRC} §3.2, §3.3, §4.2, §4.3",
    claim="The code comments label x + dropout(sublayer(norm(x))) as Post-LN; a table gives Pre-LN as "
    "x + Dropout(LayerNorm(Sublayer(x))).",
    statement=(
        "Does not hold: {wrong} of the source's {total} residual expressions carry the wrong label. "
        "x + sublayer(norm(x)) is Pre-LN (the sublayer sees normalized input; the sum is not normalized), "
        "whatever its comment says; norm(x + sublayer(x)) is Post-LN; and the comparison's 'Pre-LN' "
        "x + LayerNorm(Sublayer(x)) is neither: it normalizes the branch's output before the add."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # The classifier itself: it must name the two standard forms before its verdicts count.
        "classifier_knows_post": n["post_form"] == "post",
        "classifier_knows_pre": n["pre_form"] == "pre",
        "some_mislabeled": n["wrong"] > 0,
        "table_pre_is_branch_norm": n["table_pre"] == "branch",
    },
    # The source's world: every label names what its expression does, the table's Pre-LN included.
    null=lambda n: {**n, "wrong": 0, "table_pre": "pre"},
)
def r03() -> dict:
    """The evidence for R03. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    rows = snippet_placements()
    return {"wrong": sum(label != real for _, label, real in rows), "total": len(rows), "table_pre": rows[-1][2],
            "post_form": classify_placement(lambda n, f, x: n(x + f(x))),
            "pre_form": classify_placement(lambda n, f, x: x + f(n(x)))}


@claim(
    "R04",
    source=f"{SRC} §4.2",
    claim="A [16, 512, 768] activation keeps its shape through the sublayer, the add and the LayerNorm.",
    statement=(
        "Holds: a Transformer layer of width 768 with 12 heads maps a {shape} input to {out_shape} through "
        "attention, MLP, adds and norms (checked on PyTorch's meta device: shapes without arithmetic)."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {"all_shapes_equal": n["shapes_equal"] == n["shapes"] and n["out_shape"] == n["shape"]},
    # A world where a shape leaks: the layer returns the MLP's hidden width, 4·768.
    null=lambda n: {**n, "out_shape": "[16, 512, 3072]", "shapes_equal": n["shapes"] - 1},
)
def r04() -> dict:
    """The evidence for R04. See book/05_residual.ipynb, section "The formula, the shapes and the labels"."""
    with torch.device("meta"):
        layer = TransformerBlock(768, heads=12)
        x = torch.empty(16, 512, 768)
        shapes = [tuple(x.shape)]
        for block in layer:
            shapes.append(tuple(block.sublayer(block.norm(x)).shape))
            x = block(x)
            shapes.append(tuple(x.shape))
    return {"shape": str(list(shapes[0])), "out_shape": str(list(shapes[-1])), "shapes": len(shapes),
            "shapes_equal": sum(s == shapes[0] for s in shapes)}


# ----------------------------------------------------------------------------- the residual Jacobian


def block_jacobians(d: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """For one token through a Pre-LN MLP block: the Jacobian of the block and of its branch (d, d)."""
    torch.manual_seed(seed)
    block = Block(d, "pre").double()
    x = randn(d, seed=seed)
    full = torch.autograd.functional.jacobian(block, x)
    branch = torch.autograd.functional.jacobian(lambda v: block.sublayer(block.norm(v)), x)
    return {"block": full, "branch": branch}


@claim(
    "R01",
    source=f"{SRC} §3.1, §6.2",
    claim="The derivative of a residual block y = x + F(x) is I + ∂F/∂x.",
    statement=(
        "Holds, exactly: for a Pre-LN MLP block of width {d} the autograd Jacobian of the block equals "
        "I plus the autograd Jacobian of its branch to {err:.1g}."
    ),
    verdict="holds",
    kind="derivation",
    decide=lambda n: {
        # float64 sums of O(1) terms: rounding only.
        "jacobian_is_identity_plus_branch": n["err"] < 1e-12,
        # A branch whose Jacobian is zero would make the identity trivial: its entries reach 0.01 or more.
        "branch_not_zero": n["branch_max"] > 0.01,
    },
    # A block without its skip, y = F(x): its Jacobian misses the identity, an error of exactly 1.
    null=lambda n: {**n, "err": 1.0},
)
def r01() -> dict:
    """The evidence for R01. See book/05_residual.ipynb, section "The residual Jacobian"."""
    j = block_jacobians()
    d = j["block"].shape[0]
    return {"d": d, "err": max_abs(j["block"], torch.eye(d, dtype=F64) + j["branch"]),
            "branch_max": float(j["branch"].abs().max())}


def sigma_min_cases(d: int = 64, seed: int = 1) -> dict[str, float]:
    """σ_min(I + J) for a small random J, a J with the eigenvalue −0.99, and a J of spectral radius about 1."""
    g = randn(d, d, seed=seed) / math.sqrt(d)  # circular law: eigenvalues fill the unit disc
    small = 0.1 * g / float(torch.linalg.matrix_norm(g, 2))  # ‖J‖₂ = 0.1
    u = randn(d, 1, seed=seed + 1)
    u = u / u.norm()
    adversarial = -0.99 * u @ u.T  # one eigenvalue −0.99, the rest 0
    smin = lambda j: float(torch.linalg.svdvals(torch.eye(len(j), dtype=F64) + j).min())  # noqa: E731
    layers = 20
    return {"small": smin(small), "adversarial": smin(adversarial), "circle": smin(g),
            "depth": layers, "stacked": smin(adversarial) ** layers,
            "blocks": min(smin(block_jacobians(16, s)["branch"]) for s in range(4))}


@claim(
    "R09",
    source=f"{SRC} §6.2",
    claim="Because of the identity, the singular values of the residual Jacobian I + J are bounded below near 1: "
    "gradients are passed back at least unchanged, whatever J is.",
    statement=(
        "Does not hold in general. Weyl's inequality gives σ_min(I + J) ≥ 1 − ‖J‖₂, a bound near 1 only when "
        "the branch is small: with ‖J‖₂ = 0.1, σ_min = {small:.3f}. A branch with an eigenvalue near −1 cancels "
        "the identity: J = −0.99·uuᵀ gives σ_min = {adversarial:.3f}, and {depth} such blocks shrink the "
        "gradient along u by {stacked:.1g}. A random J of spectral radius about 1 (width 64) already gives "
        "σ_min = {circle:.1g}. The bound holds when the branches are small, as they are at PyTorch's default "
        "initialization: over four Pre-LN MLP blocks of width 16 the smallest σ_min(I + J) is {blocks_min:.3f}."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=lambda n: {
        # Weyl: σ_min(I + J) ≥ 1 − ‖J‖₂ = 0.9, up to float64 rounding.
        "weyl_bound": n["small"] >= 0.9 - 1e-12,
        # I − 0.99·uuᵀ has singular values 1 (d − 1 times) and exactly 0.01: float64 rounding only.
        "adversarial_is_0.01": abs(n["adversarial"] - 0.01) < 1e-12,
        "random_circle_near_zero": n["circle"] < 0.2,
        "init_blocks_near_one": n["blocks_min"] > 0.5,
    },
    # The source's world: the identity keeps σ_min near 1 whatever J is, the adversarial and random J included.
    null=lambda n: {**n, "adversarial": 1.0, "circle": 1.0, "stacked": 1.0},
)
def r09() -> dict:
    """The evidence for R09. See book/05_residual.ipynb, section "The residual Jacobian"."""
    c = sigma_min_cases()
    return {"small": c["small"], "adversarial": c["adversarial"], "depth": c["depth"], "stacked": c["stacked"],
            "circle": c["circle"], "blocks_min": c["blocks"]}


# ----------------------------------------------------------------------------- effective depth


@functools.lru_cache(maxsize=None)
def first_layer_gradient(kind: str, depth: int, d: int = 32, seed: int = 12) -> float:
    """‖∂L/∂W₁‖ of the first layer of a ReLU stack, relative to the last layer's: plain (PyTorch default or He
    init) or residual (Pre-LN MLP blocks)."""
    with one_thread():
        torch.manual_seed(seed)
        if kind == "residual":
            layers = [Block(d, "pre") for _ in range(depth)]
            first, last = layers[0].sublayer.fc, layers[-1].sublayer.proj
        else:
            layers = [nn.Sequential(nn.Linear(d, d), nn.ReLU()) for _ in range(depth)]
            if kind == "plain-he":
                for lay in layers:
                    nn.init.kaiming_normal_(lay[0].weight, nonlinearity="relu")
            first, last = layers[0][0], layers[-1][0]
        y = nn.Sequential(*layers)(randn(64, d, seed=seed, dtype=torch.float32))
        (randn(64, d, seed=seed + 1, dtype=torch.float32) * y).sum().backward()
    return float(first.weight.grad.norm() / last.weight.grad.norm())


EFFECTIVE_DEPTHS = (6, 12, 24, 48)


@claim(
    "R19",
    source=f"{SRC} §4.3 table",
    claim="Without residual connections the gradient decays exponentially and the effective depth is under 20 "
    "layers; with them it decays linearly or not at all, and 100–1000+ layers train.",
    statement=(
        "Holds under conditions: exponential decay is a property of the initialization, not of plain stacks. "
        "With PyTorch's default initialization a plain ReLU stack's first-layer gradient is {default_24:.1g} of "
        "its last layer's at depth 24 and {default_48:.1g} at 48, exponential decay; with He initialization the "
        "same plain stack gives {he_24:.2f} and {he_48:.2f}: no decay in expectation at initialization. "
        "A Pre-LN residual stack gives {res_24:.2f} and {res_48:.2f} with the default initialization. The "
        "source's 20 and 100–1000+ layers are not measurable quantities of the architecture."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # Exponential: doubling the depth (24 → 48) squares the ratio, up to a factor 100 of seed noise.
        "default_exponential": n["default_48"] < 100 * n["default_24"] ** 2 and n["default_24"] < 1e-3,
        "he_no_collapse": min(n["he_24"], n["he_48"]) > 0.05,
        "residual_no_collapse": min(n["res_24"], n["res_48"]) > 0.2,
    },
    # A world where the decay belongs to plain stacks whatever their initialization: He decays like the default.
    null=lambda n: {**n, "he_24": n["default_24"], "he_48": n["default_48"]},
)
def r19() -> dict:
    """The evidence for R19. See book/05_residual.ipynb, section "The residual Jacobian"."""
    g = {k: [first_layer_gradient(k, L) for L in EFFECTIVE_DEPTHS] for k in ("plain", "plain-he", "residual")}
    i24, i48 = EFFECTIVE_DEPTHS.index(24), EFFECTIVE_DEPTHS.index(48)
    return {"default_24": g["plain"][i24], "default_48": g["plain"][i48], "he_24": g["plain-he"][i24],
            "he_48": g["plain-he"][i48], "res_24": g["residual"][i24], "res_48": g["residual"][i48]}


# ----------------------------------------------------------------------------- gradients in depth


def _stack(placement: str, depth: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    d, h = STACK["d"], STACK["heads"]
    layers = [TransformerBlock(d, h, placement) for _ in range(depth)]
    if placement == "pre":  # Pre-LN stacks end in a LayerNorm (GPT-2's ln_f; Xiong et al.'s setting)
        layers.append(nn.LayerNorm(d))
    return nn.Sequential(*layers)


@functools.lru_cache(maxsize=None)
def layer_gradients(placement: str, depth: int, seed: int = 0) -> dict[str, list[float]]:
    """At initialization: ‖∂L/∂θ‖ of every layer's parameters, and of its last feed-forward weight W².

    L = ⟨c, y⟩/√(size) with c fixed and random: a loss whose gradient at the output has a fixed size,
    so what varies with depth is the stack alone.
    """
    with one_thread():
        model = _stack(placement, depth, seed)
        x = randn(STACK["batch"], STACK["tokens"], STACK["d"], seed=seed, dtype=torch.float32)
        y = model(x)
        (randn(*y.shape, seed=seed + 1, dtype=torch.float32) * y).sum().div(y.numel() ** 0.5).backward()
        layers = [m for m in model if isinstance(m, TransformerBlock)]
        norm = lambda ps: float(torch.sqrt(sum(p.grad.pow(2).sum() for p in ps)))  # noqa: E731
        return {"layer": [norm(list(m.parameters())) for m in layers],
                "w2": [float(m[1].sublayer.proj.weight.grad.norm()) for m in layers]}


SEEDS = (0, 1, 2, 3, 4)


def _mean_over_seeds(placement: str, depth: int, key: str) -> list[float]:
    runs = [layer_gradients(placement, depth, s)[key] for s in SEEDS]
    return [sum(v) / len(v) for v in zip(*runs)]


def last_w2_gradients() -> dict[str, list[float]]:
    """Xiong et al.'s Theorem 1 quantity, ‖∂L/∂W^{2,L}‖ of the last layer, per depth in :data:`DEPTHS`."""
    return {p: [_mean_over_seeds(p, L, "w2")[-1] for L in DEPTHS] for p in ("post", "pre")}


@claim(
    "R23",
    source="new (Xiong et al. 2020, Theorem 1)",
    claim="At initialization the gradient of the last feed-forward weight is O(d·√(ln d)) for Post-LN and "
    "O(d·√(ln d / L)) for Pre-LN: constant in depth L for Post-LN, shrinking like 1/√L for Pre-LN.",
    statement=(
        "Holds at this scale. Over depths {depths} (width 32, mean of {seeds} seeds), the last layer's W² gradient "
        "changes with depth as $L^{{{post_slope:.2f}}}$ for Post-LN and $L^{{{pre_slope:.2f}}}$ for Pre-LN "
        "(the theorem: $L^0$ and $L^{{-1/2}}$); at depth {deepest} Pre-LN's is {ratio:.2f}× Post-LN's."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # Five depths, five seeds: a slope within 0.15 of the theorem's exponent.
        "post_flat": abs(n["post_slope"]) < 0.15,
        "pre_inverse_sqrt": abs(n["pre_slope"] + 0.5) < 0.15,
        "pre_smaller_when_deep": n["ratio"] < 0.5,
    },
    # A world without the theorem's 1/√L: Pre-LN's gradient is as flat in depth as Post-LN's, so the ratio
    # at the deepest stack stays what it is at the shallowest.
    null=lambda n: {**n, "pre_slope": n["post_slope"], "ratio": n["ratio_shallowest"]},
)
def r23() -> dict:
    """The evidence for R23. See book/05_residual.ipynb, section "Pre-LN and Post-LN at initialization"."""
    g = last_w2_gradients()
    return {"depths": ", ".join(map(str, DEPTHS)), "seeds": len(SEEDS), "post_slope": loglog_slope(DEPTHS, g["post"]),
            "pre_slope": loglog_slope(DEPTHS, g["pre"]), "deepest": DEPTHS[-1], "ratio": g["pre"][-1] / g["post"][-1],
            "ratio_shallowest": g["pre"][0] / g["post"][0]}


def depth_profile(placement: str, depth: int) -> list[float]:
    """Per-layer gradient norms, normalized by the last layer's (mean of :data:`SEEDS`)."""
    g = _mean_over_seeds(placement, depth, "layer")
    return [v / g[-1] for v in g]


def first_to_last() -> dict[str, list[float]]:
    return {p: [depth_profile(p, L)[0] for L in DEPTHS] for p in ("post", "pre")}


def decay_rate(placement: str, depth: int, seed: int) -> float:
    """How fast the per-layer gradient norm falls from the top layer down: the least-squares slope of
    ln ‖∂L/∂θ_l‖ against the layer index l (1 at the bottom). A gradient q^(L − l) that decays from the top
    down by a factor q < 1 per layer has rate −ln q > 0; a negative rate means it grows downwards."""
    g = layer_gradients(placement, depth, seed)["layer"]
    return semilog_slope(range(1, len(g) + 1), g)


def r_squared(x, y) -> float:
    """R² of the least-squares straight line through (x, y): the share of y's variance the line explains."""
    x, y = torch.tensor([float(v) for v in x], dtype=F64), torch.tensor([float(v) for v in y], dtype=F64)
    xc, yc = x - x.mean(), y - y.mean()
    residual = yc - (xc * yc).sum() / (xc * xc).sum() * xc
    return float(1 - (residual * residual).sum() / (yc * yc).sum())


def profile_fits(placement: str, depth: int, seed: int) -> dict[str, float]:
    """One seed's per-layer gradient norms g_l (l = 1 at the bottom) in a stack of ``depth`` layers: the R² of an
    exponential (ln g_l linear in l) and of a linear (g_l linear in l) fit, and the bottom layer's g over the top's."""
    g = layer_gradients(placement, depth, seed)["layer"]
    layers = range(1, len(g) + 1)
    return {"r2_exp": r_squared(layers, [math.log(v) for v in g]), "r2_lin": r_squared(layers, g),
            "bottom_over_top": g[0] / g[-1]}


def _decide_r05(n: dict) -> dict[str, bool]:
    return {
        "post_falls_downwards": n["post_rate_min"] > 0,
        # The source's exponential form would need the exponential fit to beat the linear one beyond the seed
        # spread: by more than 3 standard errors, or on every seed.
        "exponential_not_preferred": not (n["r2_gain"] - 3 * n["r2_gain_se"] > 0 or n["r2_gain_min"] > 0),
        # Vanishing would be orders of magnitude; 0.2 is a factor 5 at most over 96 layers.
        "post_no_vanishing": n["post_first_min"] > 0.2,
        "pre_grows_downwards": n["pre_first_min"] > 1,
        # |ln(bottom/top)| larger for Pre-LN than for Post-LN on every seed (paired: same weights' seed).
        "pre_more_uneven": n["uneven_gap_min"] > 0,
    }


def _source_world_r05(n: dict) -> dict:
    # The source's world: Post-LN's exponential fit beats the linear one on every seed, and Pre-LN's gradient
    # decays towards the bottom (its measured bottom/top ratios inverted), so it is the more even of the two.
    return {**n, "r2_gain_min": abs(n["r2_gain_min"]) + n["r2_gain_se"], "r2_gain": n["r2_gain"] + 6 * n["r2_gain_se"],
            "pre_first": 1 / n["pre_first"], "pre_first_min": 1 / n["pre_first_max"],
            "pre_first_max": 1 / n["pre_first_min"], "uneven_gap_min": -abs(n["uneven_gap_min"])}


@claim(
    "R05",
    source=f"{SRC} §5.2–5.3, §4.3 table",
    claim="Post-LN's gradient decays exponentially with depth, Pre-LN's only linearly, and under a suitable "
    "initialization not at all; this makes Pre-LN the necessary choice for very deep (1,000-layer) models "
    "(attributed to DeepNet's proof).",
    statement=(
        "Does not hold: neither form is what the gradients show. At initialization, in stacks of {deepest} layers "
        "of width 32 ({seeds} seeds), Post-LN's per-layer gradient falls from the top layer down, but slowly: the "
        "bottom layer gets {post_first:.2f} of the top layer's ({post_first_min:.2f}–{post_first_max:.2f} per "
        "seed). An exponential fits that fall no better than a straight line: R² {r2_exp:.2f} against "
        "{r2_lin:.2f} (mean over seeds; {r2_min:.2f}–{r2_max:.2f} per seed), the exponential's advantage "
        "{r2_gain:+.2f} ± {r2_gain_se:.2f} lying within its spread. Pre-LN's gradient does not decay at all, "
        "linearly or otherwise: it grows towards the bottom, which gets {pre_first:.1f}× the top layer's "
        "({pre_first_min:.1f}–{pre_first_max:.1f}× per seed), more uneven than Post-LN's on every seed. Nothing "
        "vanishes in either stack; Liu et al. (2020) likewise found that vanishing gradients do not explain "
        "Post-LN's difficulty, its training dynamics do (R22), and DeepNet itself trains 1,000-layer Post-LN "
        "models (R24)."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=_decide_r05,
    null=_source_world_r05,
)
def r05() -> dict:
    """The evidence for R05. See book/05_residual.ipynb, section "Pre-LN and Post-LN at initialization"."""
    L = DEPTHS[-1]
    fits = {p: [profile_fits(p, L, s) for s in SEEDS] for p in ("post", "pre")}
    rates = over_seeds(decay_rate("post", L, s) for s in SEEDS)
    gain = over_seeds(f["r2_exp"] - f["r2_lin"] for f in fits["post"])
    ratios = {p: [f["bottom_over_top"] for f in fits[p]] for p in ("post", "pre")}
    r2 = [f[k] for f in fits["post"] for k in ("r2_exp", "r2_lin")]
    return {"deepest": L, "seeds": len(SEEDS), "post_rate": rates.mean, "post_rate_se": rates.se,
            "post_rate_min": min(rates.values), "post_first": depth_profile("post", L)[0],
            "post_first_min": min(ratios["post"]), "post_first_max": max(ratios["post"]),
            "r2_exp": sum(f["r2_exp"] for f in fits["post"]) / len(SEEDS),
            "r2_lin": sum(f["r2_lin"] for f in fits["post"]) / len(SEEDS), "r2_min": min(r2), "r2_max": max(r2),
            "r2_gain": gain.mean, "r2_gain_se": gain.se, "r2_gain_min": min(gain.values),
            "pre_first": depth_profile("pre", L)[0], "pre_first_min": min(ratios["pre"]),
            "pre_first_max": max(ratios["pre"]),
            "uneven_gap_min": min(abs(math.log(b)) - abs(math.log(a)) for a, b in zip(ratios["post"], ratios["pre"]))}


# ----------------------------------------------------------------------------- the residual stream


@functools.lru_cache(maxsize=None)
def stream_variance(placement: str, depth: int, init: str = "default", seed: int = 0) -> list[float]:
    """Var of the residual stream x_0 … x_depth of a stack of Transformer layers at initialization.

    ``init``: "default" (PyTorch), "gpt2" (:func:`gpt2_init_`, x_0 of std 0.02 like GPT-2's embeddings),
    "gpt2-unscaled" (the same without the 1/√(2·n_layer) factor).
    """
    with one_thread(), torch.no_grad():
        torch.manual_seed(seed)
        layers = [TransformerBlock(STACK["d"], STACK["heads"], placement) for _ in range(depth)]
        model = nn.Sequential(*layers)
        scale = 1.0
        if init.startswith("gpt2"):
            gpt2_init_(model, depth, scaled=init == "gpt2")
            scale = 0.02
        h = scale * randn(STACK["batch"], 4 * STACK["tokens"], STACK["d"], seed=seed, dtype=torch.float32)
        out = [float(h.var(correction=0))]
        for layer in layers:
            h = layer(h)
            out.append(float(h.var(correction=0)))
    return out


GPT2_DEPTHS = (12, 48)


@claim(
    "R07",
    source=f"{SRC} §5.4.2",
    claim="GPT-2 scales the initialization of the residual projections with depth to keep the residual stream's scale.",
    statement=(
        "Holds, with the factor stated exactly: GPT-2 scales the weights of the residual layers by 1/√N with N "
        "the number of residual layers, two per Transformer layer, so the branch output projections start at "
        "std 0.02/√(2·n_layer) (OpenAI's and nanoGPT's code). Each Pre-LN branch adds about the same variance to "
        "the stream, whatever the stream's size, so without the factor the variance grows linearly: "
        "{unscaled_12:.1f}× x₀'s after 12 layers, {unscaled_48:.1f}× after 48. With it the total added variance "
        "no longer depends on depth: {scaled_12:.2f}× and {scaled_48:.2f}×."
    ),
    verdict="holds",
    kind="measurement",
    decide=lambda n: {
        # Linear growth: the added variance quadruples from 12 to 48 layers (±25 % for a width-32 sample).
        "unscaled_linear": 3 < n["linear_ratio"] < 5,
        # Depth-independent: 48 layers add within 25 % of what 12 add.
        "scaled_flat": abs((n["scaled_48"] - 1) / (n["scaled_12"] - 1) - 1) < 0.25,
        "scaled_smaller": n["scaled_48"] < n["unscaled_48"] / 4,
    },
    # A world where GPT-2's factor does nothing: the scaled stream grows as the unscaled one does.
    null=lambda n: {**n, "scaled_12": n["unscaled_12"], "scaled_48": n["unscaled_48"]},
)
def r07() -> dict:
    """The evidence for R07. See book/05_residual.ipynb, section "The residual stream"."""
    growth = lambda init, L: (lambda v: v[-1] / v[0])(stream_variance("pre", L, init))  # noqa: E731
    nums = {f"{k}_{L}": growth(init, L) for k, init in (("unscaled", "gpt2-unscaled"), ("scaled", "gpt2"))
            for L in GPT2_DEPTHS}
    nums["linear_ratio"] = (nums["unscaled_48"] - 1) / (nums["unscaled_12"] - 1)
    return nums


@claim(
    "R08",
    source=f"{SRC} §6.1",
    claim="With LN and residual connections, Var(x_{l+1}) ≈ Var(x_l) at initialization, across 100 layers.",
    statement=(
        "Holds under conditions: for Post-LN only, where it is forced: every layer ends in a LayerNorm, so the stream's variance is "
        "1 after every layer (largest deviation {post_dev:.2g} over {depth} layers). In a Pre-LN stack nothing "
        "renormalizes the stream: with PyTorch's default initialization its variance grows to {pre_growth:.1f}× "
        "x₀'s over {depth} layers, which is why GPT-2 scales its initialization (R07) and ends "
        "with a final LayerNorm."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        # A LayerNorm output has variance σ²/(σ² + ε) of its row ≈ 1 − 1e-5; float32 sums over 1024 values.
        "post_renormalized": n["post_dev"] < 1e-4,
        "pre_grows": n["pre_growth"] > 2,
    },
    # A world where not even Post-LN keeps the variance: its stream drifts as far as Pre-LN's.
    null=lambda n: {**n, "post_dev": n["pre_growth"] - 1},
)
def r08() -> dict:
    """The evidence for R08. See book/05_residual.ipynb, section "The residual stream"."""
    depth = 48
    post, pre = stream_variance("post", depth), stream_variance("pre", depth)
    return {"depth": depth, "post_dev": max(abs(v - 1) for v in post[1:]), "pre_growth": pre[-1] / pre[0]}


# ----------------------------------------------------------------------------- initialization


def identity_at_init(seed: int = 4) -> dict[str, float]:
    """max |block(x) − x| for zero-initialized branches and for γ = 0, with and without sublayer biases."""
    x = randn(2, 8, 16, seed=seed, dtype=torch.float32)
    out = {}
    with torch.no_grad():
        for placement in ("pre", "post"):
            out.update(_identity_cases(placement, x, seed))
    out["x_max"] = float(x.abs().max())
    return out


def _identity_cases(placement: str, x: torch.Tensor, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    out = {f"zero_{placement}": max_abs(zero_branches_(TransformerBlock(16, 4, placement))(x), x)}
    for biases in (True, False):
        torch.manual_seed(seed)
        layer = TransformerBlock(16, 4, placement)
        for m in layer.modules():
            if isinstance(m, (models.LayerNorm, models.RMSNorm)):
                m.weight.zero_()  # γ = 0
            elif isinstance(m, nn.Linear) and not biases:
                m.bias.zero_()
        out[f"gamma0_{placement}_{'bias' if biases else 'nobias'}"] = max_abs(layer(x), x)
    return out


@claim(
    "R06",
    source=f"{SRC} §5.4.1",
    claim="Zero-initializing the last linear layer of each residual branch makes the block the identity at initialization.",
    statement=(
        "Holds under conditions: for Pre-LN: with the attention's and the MLP's output projections zeroed (weights and biases), a "
        "Pre-LN Transformer layer returns its input exactly (largest change {zero_pre:.1g}). In a Post-LN layer the "
        "same initialization gives LN(LN(x)), not x (largest change {zero_post:.2f} on an input up to "
        "{x_max:.2f}): the identity needs the norm off the stream."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {"pre_identity": n["zero_pre"] == 0.0,
                      # LN(LN(x)) against x of entries up to about 3: far above float32 rounding.
                      "post_not_identity": n["zero_post"] > 0.1},
    # A world where zeroed branches do not give the identity even in Pre-LN: it changes its input as Post-LN does.
    null=lambda n: {**n, "zero_pre": n["zero_post"]},
)
def r06() -> dict:
    """The evidence for R06. See book/05_residual.ipynb, section "The residual stream"."""
    m = identity_at_init()
    return {k: m[k] for k in ("zero_pre", "zero_post", "x_max")}


@claim(
    "R17",
    source=f"{SRC} §7.3",
    claim="Initializing LayerNorm's γ to zero makes the network the identity at the start.",
    statement=(
        "Holds under conditions: only for Pre-LN with bias-free branches. With γ = 0 a Pre-LN branch sees β = 0, and returns "
        "sublayer(0): exactly 0 without biases (largest change {gamma0_pre_nobias:.1g}), but the biases' output "
        "with them (largest change {gamma0_pre_bias:.2f}). In Post-LN γ = 0 does the opposite of the identity: "
        "the layer outputs β = 0 and erases its input (largest change {gamma0_post_bias:.2f}, the input's own size)."
    ),
    verdict="holds under conditions",
    kind="measurement",
    decide=lambda n: {
        "pre_nobias_identity": n["gamma0_pre_nobias"] == 0.0,
        # The biases' output is of the order of PyTorch's default bias init, 1/√fan_in: far above 1e-3.
        "pre_bias_not_identity": n["gamma0_pre_bias"] > 1e-3,
        # Output 0 everywhere: the change is exactly |x|'s maximum.
        "post_erases": n["gamma0_post_bias"] == n["x_max"],
    },
    # A world where γ = 0 does not give the identity even without biases: the layer changes its input as with them.
    null=lambda n: {**n, "gamma0_pre_nobias": n["gamma0_pre_bias"]},
)
def r17() -> dict:
    """The evidence for R17. See book/05_residual.ipynb, section "The residual stream"."""
    m = identity_at_init()
    return {k: m[k] for k in ("gamma0_pre_nobias", "gamma0_pre_bias", "gamma0_post_bias", "x_max")}


DEEPNORM_LAYERS = (6, 24, 96)  # N: Transformer layers, two sublayers each
UPDATE_STEP = 1e-3  # η: every weight moves by ±η, the size of Adam's first step


@functools.lru_cache(maxsize=None)
def model_update(kind: str, layers: int, seed: int) -> float:
    """‖ΔF‖/‖F‖: how far a stack's output moves when every weight moves by ±η (random signs, the size of an
    Adam step), at initialization. ``kind``: "post" (Post-LN MLP blocks, PyTorch's default initialization) or
    "deepnorm" (DeepNorm blocks with α and β for ``layers`` layers); a stack of ``layers`` Transformer layers is
    2·``layers`` sublayers, here all MLPs. DeepNet bounds this update independently of depth; the seed draws the
    input, the update's signs and Post-LN's weights (``deepnorm_init_`` draws its own, from a fixed generator)."""
    with one_thread(), torch.no_grad():
        torch.manual_seed(seed)
        d = STACK["d"]
        if kind == "post":
            model = nn.Sequential(*[Block(d, "post") for _ in range(2 * layers)])
        else:
            alpha, beta = deepnorm_constants(layers)
            model = deepnorm_init_(nn.Sequential(*[DeepNormBlock(d, alpha) for _ in range(2 * layers)]), beta)
        x = ln(randn(64, d, seed=seed, dtype=torch.float32), eps=0.0)
        before = model(x)
        gen = torch.Generator().manual_seed(seed + 1)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                signs = torch.randint(0, 2, m.weight.shape, generator=gen).mul(2).sub(1)
                m.weight.add_(UPDATE_STEP * signs.to(m.weight.dtype))
        return float((model(x) - before).norm() / before.norm())


def update_growth(kind: str) -> SeedSpread:
    """Per seed, the log-log slope of the model update against the depth N over :data:`DEEPNORM_LAYERS`."""
    return over_seeds(loglog_slope(DEEPNORM_LAYERS, [model_update(kind, n, s) for n in DEEPNORM_LAYERS])
                      for s in SEEDS)


def _decide_r24(n: dict) -> dict[str, bool]:
    return {
        "deepnet_is_post_ln": n["placement"] == "post",
        # Bounded in depth: DeepNorm's update grows more slowly than N^0.15 (Post-LN's grows about as √N), with
        # three standard errors to spare.
        "deepnorm_update_flat": abs(n["deepnorm_slope"]) + 3 * n["deepnorm_slope_se"] < 0.15,
        # Post-LN's update grows with depth: slope above a quarter, with three standard errors to spare.
        "post_update_grows": n["post_slope"] - 3 * n["post_slope_se"] > 0.25,
        "deepnorm_smaller_when_deep": n["deepnorm_deepest"] < n["post_deepest"] / 2,
    }


def _source_world_r24(n: dict) -> dict:
    # The source's world: DeepNet moved to Pre-LN, and its α, β do nothing: its stack updates as Post-LN's does.
    return {**n, "placement": "pre", "deepnorm_slope": n["post_slope"], "deepnorm_slope_se": n["post_slope_se"],
            "deepnorm_shallowest": n["post_shallowest"], "deepnorm_deepest": n["post_deepest"]}


@claim(
    "R24",
    source=f"{SRC} §5.3.2",
    claim="DeepNet proved Pre-Norm superior, and models such as DeepNet moved to Pre-Norm.",
    statement=(
        "Does not hold: DeepNet (Wang et al. 2022) keeps Post-LN and fixes it. Its DeepNorm computes "
        "LN(α·x + G(x)), a LayerNorm after the add (our placement test: {placement}), and initializes the "
        "branch's feed-forward, value and output projections scaled by β, with $\\alpha = (2N)^{{1/4}}$ and "
        "$\\beta = (8N)^{{-1/4}}$ for an $N$-layer encoder (the paper's formulas; for N = {depth}, α = {alpha:.2f} "
        "and β = {beta:.2f}). The paper derives them to bound the model update independently of depth, and "
        "that is what they do: when every weight moves by ±{step:g} (an Adam step), the output of a stack of "
        "N layers (2N MLP sublayers, width 32, {seeds} seeds) moves by {deepnorm_shallowest:.2g} of its norm at "
        "N = {shallowest} and {deepnorm_deepest:.2g} at N = {depth} with DeepNorm (growth exponent "
        "{deepnorm_slope:+.3f} ± {deepnorm_slope_se:.3f}), against {post_shallowest:.2g} and {post_deepest:.2g} "
        "in plain Post-LN (exponent {post_slope:.2f} ± {post_slope_se:.2f})."
    ),
    verdict="does not hold",
    kind="measurement",
    decide=_decide_r24,
    null=_source_world_r24,
)
def r24() -> dict:
    """The evidence for R24. See book/05_residual.ipynb, section "Pre-LN and Post-LN at initialization"."""
    shallow, deep = DEEPNORM_LAYERS[0], DEEPNORM_LAYERS[-1]
    alpha, beta = deepnorm_constants(deep)
    growth = {k: update_growth(k) for k in ("post", "deepnorm")}
    mean = lambda kind, n: sum(model_update(kind, n, s) for s in SEEDS) / len(SEEDS)  # noqa: E731
    nums = {"placement": classify_placement(lambda n, f, x: n(alpha * x + f(x))), "depth": deep, "alpha": alpha,
            "beta": beta, "step": UPDATE_STEP, "seeds": len(SEEDS), "shallowest": shallow}
    for k in ("post", "deepnorm"):
        nums.update({f"{k}_shallowest": mean(k, shallow), f"{k}_deepest": mean(k, deep),
                     f"{k}_slope": growth[k].mean, f"{k}_slope_se": growth[k].se})
    return nums
