"""One figure style for the whole book.

Chapters call :func:`figure` instead of ``plt.subplots`` so that every plot shares size, fonts and
the colours that mean the same thing everywhere (``COLORS["ln"]`` is always "with LayerNorm").
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

_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
}


def figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None, **kwargs):
    """A grid of axes in the book's style: returns ``(fig, axes)`` as ``plt.subplots`` does."""
    plt.rcParams.update(_STYLE)
    w, h = _STYLE["figure.figsize"]
    size = (width or w * (1 + 0.55 * (ncols - 1)), height or h * (1 + 0.75 * (nrows - 1)))
    kwargs.setdefault("layout", "constrained")  # labels of neighbouring axes never overlap
    return plt.subplots(nrows, ncols, figsize=size, **kwargs)


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
