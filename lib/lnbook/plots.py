"""One figure style for the whole book.

Chapters call :func:`figure` instead of ``plt.subplots`` so that every plot shares size, fonts and
the colours that mean the same thing everywhere (``COLORS["ln"]`` is always "with LayerNorm").

Figures are sized for the page column, phone included: one panel is :data:`COLUMN_IN` inches wide
and every text is at least :data:`SMALLEST_PT` points at :data:`DPI`. On a 390 px phone the column
is 342 CSS px, so the image is shown at about 342 / (``COLUMN_IN`` × ``DPI``) of its size and
:data:`SMALLEST_PT` comes out at about 12.5 px, above the 12 px (9 pt) a page's small print needs (the
browser test measures it). Panels are therefore stacked, one above the other, never side by side: a row of panels
would be shrunk by its number of columns.

Below the style, four diagrams that draw what they compute (see the comment above :func:`dependence`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

# One colour per idea, used in every chapter.
COLORS = {
    "ln": "#1f77b4",  # with LayerNorm
    "none": "#d62728",  # without normalization
    "rms": "#2ca02c",  # RMSNorm
    "bn": "#ff7f0e",  # BatchNorm
    "ln_eps": "#9467bd",  # with LayerNorm, where ε > 0 matters
    "theory": "#555555",  # a closed-form prediction
}
LABELS = {
    "ln": "with LayerNorm",
    "none": "without normalization",
    "rms": "with RMSNorm",
    "bn": "with BatchNorm",
    "ln_eps": r"with LayerNorm, $\epsilon > 0$",
    "theory": "closed form",
}

COLUMN_IN = 4.0  # width of every figure, in inches
PANEL_HEIGHT_IN = 2.8  # height of one panel
DPI = 150  # 4 in × 150 = 600 px: sharp in a 560-px desktop column, and not much larger than a phone's
SMALLEST_PT = 11  # every text of a figure: ticks, labels, legends, titles

_STYLE = {
    "figure.figsize": (COLUMN_IN, PANEL_HEIGHT_IN),
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": SMALLEST_PT,
    "axes.titlesize": SMALLEST_PT,
    "axes.labelsize": SMALLEST_PT,
    "xtick.labelsize": SMALLEST_PT,
    "ytick.labelsize": SMALLEST_PT,
    "legend.fontsize": SMALLEST_PT,
    "legend.title_fontsize": SMALLEST_PT,
    "figure.titlesize": SMALLEST_PT,
    "legend.frameon": False,
}


def figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None, **kwargs):
    """Axes in the book's style: returns ``(fig, axes)`` with ``axes`` shaped as ``plt.subplots(nrows,
    ncols)`` shapes them, but the panels stacked in one column of the page's width (see the module's
    docstring). ``height`` is that of one panel; ``width`` can only narrow the column."""
    plt.rcParams.update(_STYLE)
    panels = ncols * nrows
    size = (min(width or COLUMN_IN, COLUMN_IN), (height or PANEL_HEIGHT_IN) * panels)
    kwargs.setdefault("layout", "constrained")  # labels of neighbouring axes never overlap
    squeeze = kwargs.pop("squeeze", True)
    fig, axes = plt.subplots(panels, 1, figsize=size, squeeze=False, **kwargs)
    axes = axes.reshape(nrows, ncols)
    if squeeze:
        axes = axes.item() if panels == 1 else axes.reshape(-1) if 1 in (nrows, ncols) else axes
    return fig, axes


def smallest_text_pt(fig) -> float:
    """The size of the smallest visible text in ``fig`` (points): what :data:`SMALLEST_PT` promises."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return float(min(sizes)) if sizes else float("inf")


def plain_log_axis(ax, axis: str = "y") -> None:
    """Log scale with ticks written as plain numbers (0.5, 1, 2) instead of powers of ten."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 0.1, 0.2, 0.5, 1, 2, 5, ...
    target.set_major_formatter(FormatStrFormatter("%g"))
    target.set_minor_formatter(NullFormatter())


def line(ax, x, y, key: str, label: str | None = None, **kwargs):
    """Plot one series in the colour and with the label of ``key`` (a key of ``COLORS``)."""
    style = {"color": COLORS[key], "label": label or LABELS[key], "lw": 1.8}
    if key == "theory":
        style.update(ls="--", lw=1.2)
    style.update(kwargs)
    return ax.plot(x, y, **style)


# ------------------------------------------------------------------------------------------ diagrams
# Four pictures drawn into axes made by :func:`figure`. Each computes what it draws (with the library's
# own norms, autograd, or the kernels' launch plan) and returns those numbers, so a test can hold the
# picture to an independent route. Nothing is random: every tensor comes from its own seeded generator.

# One colour per GPU program in the kernels' diagram (ColorBrewer's Set3): none means an idea of COLORS.
PROGRAM_COLORS = ("#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69", "#fccde5", "#bc80bd")
_FACE = {"front": "#f4f4f4", "top": "#e4e4e4", "side": "#d0d0d0"}  # unshaded cells, lit from the front


def _seeded(*shape: int, seed: int):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def dependence(fn, shape: tuple[int, ...], at: tuple[int, ...], seed: int = 0):
    """The entries of a seeded input of ``shape`` that ``fn``'s output at index ``at`` depends on (a
    boolean tensor): where autograd's gradient of that one output is not zero. For a norm they are the
    entries its statistic was taken over."""
    x = _seeded(*shape, seed=seed).requires_grad_(True)
    fn(x)[at].backward()
    return x.grad != 0


def _parallelogram(ax, corner, u, v, **style):
    from matplotlib.patches import Polygon

    (x, y), (ux, uy), (vx, vy) = corner, u, v
    ax.add_patch(Polygon([(x, y), (x + ux, y + uy), (x + ux + vx, y + uy + vy), (x + vx, y + vy)], **style))


def _block(ax, mask, key: str, depth=(0.45, 0.32)) -> None:
    """A (batch, tokens, features) block seen from the front: sample 0 is the front face, tokens run
    down, features right, the batch recedes up and right. Cells in ``mask`` are shaded in ``key``'s colour."""
    B, T, H = mask.shape
    dx, dy = depth
    edge = {"ec": "#666666", "lw": 0.6}
    for t in range(T):  # front face: sample 0
        for h in range(H):
            fc = COLORS[key] if mask[0, t, h] else _FACE["front"]
            _parallelogram(ax, (h, T - 1 - t), (1, 0), (0, 1), fc=fc, **edge)
    for b in range(B):
        for h in range(H):  # top face: token 0 of every sample
            fc = COLORS[key] if mask[b, 0, h] else _FACE["top"]
            _parallelogram(ax, (h + b * dx, T + b * dy), (1, 0), (dx, dy), fc=fc,
                           alpha=0.8 if mask[b, 0, h] else 1, **edge)
        for t in range(T):  # right face: the last feature of every sample
            fc = COLORS[key] if mask[b, t, H - 1] else _FACE["side"]
            _parallelogram(ax, (H + b * dx, T - 1 - t + b * dy), (dx, dy), (0, 1), fc=fc,
                           alpha=0.65 if mask[b, t, H - 1] else 1, **edge)
    ax.annotate("", (H, -0.45), (0, -0.45), arrowprops=dict(arrowstyle="->"))
    ax.text(H / 2, -0.6, f"features (H = {H})", ha="center", va="top")
    ax.annotate("", (-0.3, 0), (-0.3, T), arrowprops=dict(arrowstyle="->"))
    ax.text(-0.45, T / 2, f"tokens (T = {T})", ha="right", va="center", rotation=90)
    ax.annotate("", (H + 0.3 + B * dx, B * dy), (H + 0.3, 0), arrowprops=dict(arrowstyle="->"))
    ax.text(H + 0.45 + B * dx / 2, B * dy / 2 - 0.1, f"batch (B = {B})", ha="left", va="top")
    ax.set(xlim=(-1.3, H + B * dx + 2.2), ylim=(-1.6, T + B * dy + 0.2), aspect="equal")
    ax.axis("off")


def norm_axes(axes, shape: tuple[int, int, int] = (4, 5, 6), token: int = 2) -> dict:
    """BatchNorm's and LayerNorm's statistics on a (batch, tokens, features) tensor, one block per axes
    (``axes``: two axes from :func:`figure`). Shaded: the entries that one output of each norm depends on
    (sample 0, on the front face; ``token``; the last feature, on the right face), found by autograd
    through :func:`lnbook.norms.batch_norm` (training: per feature, over batch and tokens) and
    :func:`lnbook.norms.layer_norm` (over the features). Returns the two masks and their sizes."""
    from lnbook import norms

    B, T, H = shape
    at = (0, token, H - 1)  # every entry of both sets is on a face the picture shows
    bn = dependence(lambda x: norms.batch_norm(x.transpose(1, 2), None, None, training=True, eps=0.0).transpose(1, 2),
                    shape, at)
    ln = dependence(lambda x: norms.layer_norm(x, (H,), eps=0.0), shape, at)
    out = {"bn_mask": bn, "ln_mask": ln, "bn_count": int(bn.sum()), "ln_count": int(ln.sum())}
    for ax, key, mask, what in ((axes[0], "bn", bn, "one feature, every sample and token"),
                                (axes[1], "ln", ln, "one token of one sample, every feature")):
        _block(ax, mask.numpy(), key)
        ax.set_title(f"{'BatchNorm' if key == 'bn' else 'LayerNorm'}: {what}\n"
                     f"one statistic over {int(mask.sum())} of the {mask.numel()} values", loc="left")
    return out


def orthogonal_step(lr: float = 0.7, n: int = 4, seed: int = 9, eps: float = 0.0) -> dict:
    """One SGD step on a loss of a 2-D weight that sees it only through a LayerNorm: L(w) = cᵀ LN(Xw)
    (X is n × 2, c has n entries, both seeded; w is a seeded unit vector), scale-invariant for ε = 0.
    Returns w, the gradient g (autograd through :func:`lnbook.norms.layer_norm`), the step's end w − ηg,
    ⟨w, g⟩, the three lengths and the angle turned (radians)."""
    import math

    import torch

    from lnbook import norms

    x, c, w = _seeded(n, 2, seed=seed), _seeded(n, seed=seed + 1), _seeded(2, seed=seed + 2)
    w = (w / w.norm()).requires_grad_(True)
    (g,) = torch.autograd.grad((c * norms.layer_norm(x @ w, (n,), eps=eps)).sum(), w)
    w = w.detach()
    end = w - lr * g
    return {"w": w, "g": g, "lr": lr, "end": end, "inner": float(w @ g), "w_norm": float(w.norm()),
            "step_norm": float(lr * g.norm()), "end_norm": float(end.norm()),
            "angle": math.atan2(float(w[0] * end[1] - w[1] * end[0]), float(w @ end))}


def sphere_step(ax, lr: float = 0.7, n: int = 4, seed: int = 9) -> dict:
    """:func:`orthogonal_step` drawn to scale: the circle of radius ‖w‖, the step −ηg at a right angle
    to w, its end on a larger circle, and the angle Δθ turned. Returns the step's numbers."""
    import math

    from matplotlib.patches import Arc, Circle, Polygon

    s = orthogonal_step(lr, n, seed)
    w, end, step = s["w"].tolist(), s["end"].tolist(), (s["end"] - s["w"]).tolist()
    ax.add_patch(Circle((0, 0), s["w_norm"], fill=False, color=COLORS["theory"], lw=1.2))
    ax.add_patch(Circle((0, 0), s["end_norm"], fill=False, color=COLORS["theory"], lw=1, ls=":"))
    arrow = dict(arrowstyle="-|>", lw=1.8, shrinkA=0, shrinkB=0, mutation_scale=14)
    ax.annotate("", w, (0, 0), arrowprops={**arrow, "color": COLORS["ln"]})
    ax.annotate("", end, (0, 0), arrowprops={**arrow, "color": COLORS["ln"], "ls": "--"})
    ax.annotate("", end, w, arrowprops={**arrow, "color": "black"})
    unit = lambda v: [a / math.hypot(*v) for a in v]
    u, t, r = unit(w), unit(step), 0.1 * s["w_norm"]  # the right angle's square, at w's tip
    corner = [w[0] - r * u[0], w[1] - r * u[1]]
    ax.add_patch(Polygon([corner, [corner[0] + r * t[0], corner[1] + r * t[1]],
                          [w[0] + r * t[0], w[1] + r * t[1]], w], fill=False, lw=1))
    a0, a1 = sorted(math.degrees(math.atan2(v[1], v[0])) for v in (w, end))
    ax.add_patch(Arc((0, 0), 0.6 * s["w_norm"], 0.6 * s["w_norm"], theta1=a0, theta2=a1, lw=1))
    mid = math.radians((a0 + a1) / 2)
    ax.text(0.42 * math.cos(mid), 0.42 * math.sin(mid), r"$\Delta\theta$", ha="center", va="center")
    side = unit([u[1], -u[0]])  # perpendicular to w, away from the step
    if side[0] * t[0] + side[1] * t[1] > 0:
        side = [-side[0], -side[1]]
    ax.text(0.55 * w[0] + 0.12 * side[0], 0.55 * w[1] + 0.12 * side[1], "$w$", ha="center", va="center")
    ax.text(end[0] - 0.05, end[1] + 0.05, r"$w - \eta g$", ha="right", va="bottom")
    ax.text(w[0] + step[0] / 2 + 0.3 * u[0], w[1] + step[1] / 2 + 0.3 * u[1], r"$-\eta g$", ha="center", va="center")
    inner = r"$\langle w, g\rangle = 0$" if abs(s["inner"]) < 1e-12 else rf"$\langle w, g\rangle = {s['inner']:.2g}$"
    lines = [inner, rf"$\|w\| = {s['w_norm']:.2f}$", rf"$\eta\|g\| = {s['step_norm']:.2f}$",
             rf"$\|w - \eta g\| = {s['end_norm']:.2f}$", rf"$\quad = \sqrt{{{s['w_norm']:.2f}^2 + {s['step_norm']:.2f}^2}}$",
             r"$\tan\Delta\theta = \eta\|g\|/\|w\|$", rf"$\quad = {math.tan(abs(s['angle'])):.2f}$"]
    right = 1.1 * s["end_norm"]
    ax.text(right, 0, "\n".join(lines), ha="left", va="center", linespacing=1.5)
    ax.set(xlim=(-1.05 * s["end_norm"], right + 1.6 * s["w_norm"]), ylim=(-1.05 * s["end_norm"], 1.3 * s["end_norm"]),
           aspect="equal")
    ax.axis("off")
    return s


def jacobian_spectrum(n: int = 6, eps: float = 0.0, seed: int = 8, scale: float = 1.0) -> dict:
    """LayerNorm's Jacobian (no affine) at a seeded row x of n values times ``scale``, by autograd
    through :func:`lnbook.norms.layer_norm` in float64, and its spectrum. Returns x, σ (biased std), J,
    its eigenvalues (ascending) and eigenvectors, the orthonormal directions 1/√n and x̂/‖x̂‖ and, for each
    eigenvector, the share of it that lies in their span; also a seeded v, one unit direction e of the
    rest of v (orthogonal to both), and the coordinates of v and of Jv along the three directions."""
    import torch

    from lnbook import norms

    x = scale * _seeded(n, seed=seed)
    jac = torch.autograd.functional.jacobian(lambda v: norms.layer_norm(v, (n,), eps=eps), x)
    values, vectors = torch.linalg.eigh((jac + jac.T) / 2)  # J is symmetric; the mean removes rounding's asymmetry
    ones = torch.ones(n, dtype=x.dtype) / n**0.5
    xhat = x - x.mean()
    xhat = xhat / xhat.norm()
    span = torch.stack([ones, xhat], 1)  # (n, 2), orthonormal: x̂ has mean 0
    v = _seeded(n, seed=seed + 1)
    rest = v - span @ (span.T @ v)
    e = rest / rest.norm() if n > 2 else torch.zeros(n, dtype=x.dtype)
    frame = torch.stack([ones, xhat, e], 1)  # (n, 3)
    return {"x": x, "sigma": float(x.std(correction=0)), "eps": eps, "J": jac, "values": values, "vectors": vectors,
            "span_share": (span.T @ vectors).pow(2).sum(0), "v": v, "v_coords": frame.T @ v,
            "Jv_coords": frame.T @ (jac @ v), "v_rest": float((v - frame @ (frame.T @ v)).norm())}


def jacobian_eigenspaces(axes, n: int = 6, seed: int = 8) -> dict:
    """Two panels (``axes`` from :func:`figure`, stacked) of :func:`jacobian_spectrum` with ε = 0: the
    eigenvalues of the computed J, coloured by whether their eigenvector lies in span{1, x̂}, against
    the closed form (0 twice, 1/σ n − 2 times); then a seeded v and Jv drawn along the three eigenspaces.
    Returns the spectrum's numbers."""
    s = jacobian_spectrum(n, 0.0, seed)
    top, bottom = axes
    inv = 1 / s["sigma"]
    values, share = s["values"].tolist(), s["span_share"].tolist()
    for k, (lam, sh) in enumerate(zip(values, share), start=1):
        key = "theory" if sh > 0.5 else "ln"
        top.vlines(k, 0, lam, color=COLORS[key], lw=2)
        top.plot([k], [lam], "o", color=COLORS[key], ms=7)
    top.axhline(inv, color=COLORS["theory"], ls="--", lw=1.2)
    top.text(1.5, inv, rf"$1/\sigma = {inv:.2f}$", ha="center", va="bottom")
    top.axhline(0, color=COLORS["theory"], lw=0.8)
    zeros, rest = sum(sh > 0.5 for sh in share), sum(sh <= 0.5 for sh in share)
    top.plot([], [], "o", color=COLORS["theory"], label=rf"in span$\{{\mathbf{{1}}, \hat x\}}$: {zeros}")
    top.plot([], [], "o", color=COLORS["ln"], label=f"orthogonal to both: {rest}")
    top.set(xlabel="eigenvalue, in increasing order", ylabel="eigenvalue of $J$", xticks=range(1, n + 1),
            xlim=(0.4, n + 0.6), ylim=(-0.15 * inv, 1.75 * inv), title=f"$J$ of a row of $n = {n}$ values, $\\epsilon = 0$")
    top.legend(loc="upper left")
    _eigenspace_frame(bottom, s)
    return s


def _eigenspace_frame(ax, s: dict) -> None:
    """v and Jv along three orthogonal axes in oblique projection: span{1} and span{x̂} (J sends both to
    0) and the direction of the rest of v (J scales it by 1/σ). Each axis points the way v's coordinate
    along it is positive (a span has no sign)."""
    screen = [(-0.5, -0.35), (1.0, 0.0), (0.0, 1.0)]  # screen directions of the three axes
    signs = [1.0 if a >= 0 else -1.0 for a in s["v_coords"].tolist()]
    v = [a * g for a, g in zip(s["v_coords"].tolist(), signs)]
    jv = [a * g for a, g in zip(s["Jv_coords"].tolist(), signs)]
    project = lambda c: (sum(a * d[0] for a, d in zip(c, screen)), sum(a * d[1] for a, d in zip(c, screen)))
    reach = 1.2 * max(v + jv)
    names = [r"span$\{\mathbf{1}\}$: $\times 0$", r"span$\{\hat x\}$: $\times 0$",
             r"the other $n-2$ directions: $\times 1/\sigma$"]
    places = [dict(ha="right", va="top"), dict(ha="right", va="top"), dict(ha="left", va="center")]
    for d, name, place in zip(screen, names, places):
        end = (reach * d[0], reach * d[1])
        ax.annotate("", end, (0, 0), arrowprops=dict(arrowstyle="->", color=COLORS["theory"]))
        at = (end[0], end[1] - 0.06 * reach) if d == (1.0, 0.0) else (end[0] + 0.05 * reach, end[1]) if d == (0.0, 1.0) else end
        ax.text(*at, name, **place)
    for p, q in (((v[0], 0, 0), (v[0], v[1], 0)), ((0, v[1], 0), (v[0], v[1], 0)), ((v[0], v[1], 0), v)):
        (x0, y0), (x1, y1) = project(p), project(q)
        ax.plot([x0, x1], [y0, y1], ls=":", color="black", lw=1.2)  # v's coordinates, as a box's edges
    arrow = dict(arrowstyle="-|>", lw=1.8, shrinkA=0, shrinkB=0, mutation_scale=14)
    for c, color, label in ((v, "black", "$v$"), (jv, COLORS["ln"], "$Jv$")):
        tip = project(c)
        ax.annotate("", tip, (0, 0), arrowprops={**arrow, "color": color})
        ax.text(tip[0] + 0.05 * reach, tip[1], label, ha="left", va="center", color=color)
    low = project((reach, 0, 0))
    ax.set(xlim=(low[0] - 0.05 * reach, 1.05 * reach), ylim=(low[1] - 0.1 * reach, 1.1 * reach), aspect="equal",
           title=r"$Jv$ keeps only the rest of $v$, times $1/\sigma$")
    ax.axis("off")


def kernel_plan(M: int, N: int, slots: int, op: str = "layer_norm") -> dict:
    """What :func:`lnbook.kernels.rownorm.launches_for` launches for an (M, N) bfloat16 input with rows of
    one block, on a device with ``slots`` backward program slots (one per SM): rows per forward program
    and forward programs, backward programs and the rows each takes, and the partial rows the sum adds."""
    import torch

    from lnbook.kernels import rownorm

    (fwd,) = rownorm.launches_for(op, "forward", M, N, torch.bfloat16, slots)
    bwd, total = rownorm.launches_for(op, "backward", M, N, torch.bfloat16, slots)
    if "BLOCK_M" not in fwd.args or "rows_per_program" not in bwd.args:
        raise ValueError(f"kernel_plan: rows of {N} values are split across programs; the picture is of rows of one block")
    return {"M": M, "N": N, "slots": slots, "forward_rows": fwd.args["BLOCK_M"], "forward_programs": fwd.grid[0],
            "backward_rows": bwd.args["rows_per_program"], "backward_programs": bwd.grid[0], "partials": total.args["P"]}


def _rows(ax, left: float, top: float, width: float, owners, label: str, height: float = 0.3, hatch=None) -> list:
    """A stack of row bars from ``top`` down, bar i coloured by program ``owners[i]``; returns each bar's middle y."""
    from matplotlib.patches import Rectangle

    mids = []
    for i, p in enumerate(owners):
        y = top - (i + 1) * height
        ax.add_patch(Rectangle((left, y), width, height, fc=PROGRAM_COLORS[p % len(PROGRAM_COLORS)], ec="#555555",
                               lw=0.6, hatch=hatch))
        mids.append(y + height / 2)
    ax.text(left + width / 2, top + 0.08, label, ha="center", va="bottom")
    return mids


def _programs(ax, x: float, mids: list, owners) -> None:
    """Program numbers beside the rows they own, once per program."""
    for p in sorted(set(owners)):
        ys = [m for m, o in zip(mids, owners) if o == p]
        ax.text(x, sum(ys) / len(ys), str(p), ha="right", va="center")


def kernel_data_flow(axes, M: int = 8, N: int = 8192, slots: int = 4) -> dict:
    """The kernels' data flow for (M, N) rows of one block, three panels (``axes`` from :func:`figure`,
    stacked): the forward's programs, each normalizing its rows and storing y and the rows' mean and
    rstd; the backward's programs, each writing dx for its rows and one row of dW and dB partials; the
    sum of those partial rows, in a fixed order, into dW and dB. Colours are programs; the counts come
    from :func:`kernel_plan`, and the last line gives them for an H100 at 4096 × 8192. Returns both plans."""
    from lnbook import hardware

    plan = kernel_plan(M, N, slots)
    h100 = kernel_plan(4096, 8192, hardware.H100.sms)
    fwd, bwd, total = axes
    rows = range(M)
    top = 0.3 * M
    owners = [r // plan["forward_rows"] for r in rows]
    mids = _rows(fwd, 0.6, top, 3.0, owners, f"x ({M} × {N})")
    _programs(fwd, 0.45, mids, owners)
    fwd.annotate("", (4.35, top / 2), (3.75, top / 2), arrowprops=dict(arrowstyle="-|>", lw=1.5))
    _rows(fwd, 4.5, top, 2.5, owners, "y")
    _rows(fwd, 7.25, top, 0.55, owners, "mean")
    _rows(fwd, 8.75, top, 0.55, owners, "rstd")
    fwd.set_title(f"forward: {plan['forward_programs']} programs, {plan['forward_rows']} "
                  f"row{'s' if plan['forward_rows'] > 1 else ''} each", loc="left")
    owners = [r // plan["backward_rows"] for r in rows]
    mids = _rows(bwd, 0.6, top, 3.0, owners, "x, dy")
    _programs(bwd, 0.45, mids, owners)
    bwd.annotate("", (4.35, top / 2), (3.75, top / 2), arrowprops=dict(arrowstyle="-|>", lw=1.5))
    _rows(bwd, 4.5, top, 2.5, owners, "dx")
    parts = list(range(plan["backward_programs"]))
    part_top = top / 2 + 0.15 * len(parts)
    part_mids = _rows(bwd, 7.9, part_top, 1.6, parts, "dW, dB\npartials")
    for p, part_mid in zip(parts, part_mids):  # each program's rows end in its own partial row
        ys = [m for m, o in zip(mids, owners) if o == p]
        bwd.plot([7.05, 7.85], [sum(ys) / len(ys), part_mid], color="#555555", lw=0.8)
    bwd.set_title(f"backward on {slots} SMs: {plan['backward_programs']} programs, {plan['backward_rows']} rows each",
                  loc="left")
    from matplotlib.patches import Rectangle

    parts_top = 0.3 * plan["partials"] + 0.95
    for left, name in ((0.6, "dW"), (5.4, "dB")):
        _rows(total, left, parts_top, 4.0, parts, f"{name} partials")
        total.annotate("", (left + 2.0, 0.42), (left + 2.0, parts_top - 0.3 * len(parts) - 0.05),
                       arrowprops=dict(arrowstyle="-|>", lw=1.5))
        total.text(left + 2.15, (parts_top - 0.3 * len(parts) + 0.4) / 2, r"$\Sigma$", ha="left", va="center")
        total.add_patch(Rectangle((left, 0.1), 4.0, 0.3, fc="#dddddd", ec="#555555", lw=0.6))
        total.text(left + 2.0, 0.05, name, ha="center", va="top")
    total.set_title("the sum: partial rows added in a fixed order", loc="left")
    total.text(0, -0.4, f"H100 ({h100['slots']} SMs), 4096 × 8192: {h100['backward_programs']} backward\n"
               f"programs of {h100['backward_rows']} rows, {h100['partials']} partial rows", ha="left", va="top")
    for ax, height in ((fwd, top), (bwd, top), (total, parts_top)):
        ax.set(xlim=(0, 10), ylim=(-1.25 if ax is total else -0.1, height + 0.6))
        ax.axis("off")
    return {"plan": plan, "h100": h100}
