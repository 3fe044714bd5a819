"""One figure style for the whole book.

Chapters call :func:`figure` instead of ``plt.subplots`` so that every plot shares size, fonts and
the colours that mean the same thing everywhere (``COLORS["ln"]`` is always "with LayerNorm").

Figures are sized for the page column, phone included: one panel is :data:`COLUMN_IN` inches wide
and every text is at least :data:`SMALLEST_PT` points at :data:`DPI`. On a 390 px phone the column
is 342 CSS px, so the image is shown at about 342 / (``COLUMN_IN`` × ``DPI``) of its size and
:data:`SMALLEST_PT` comes out at about 12.5 px, above the 12 px (9 pt) a page's small print needs (the
browser test measures it). Panels are therefore stacked, one above the other, never side by side: a row of panels
would be shrunk by its number of columns.
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
