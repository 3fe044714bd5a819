"""Tiny Transformer pieces for the book's experiments.

Modules hold parameters and configuration only; the arithmetic lives in :mod:`lnbook.norms`.
Defaults match PyTorch (``eps=1e-5``, weight ones, bias zeros).

A residual block places its norm in one of two ways (T04, F15):

* ``"post"`` (Post-LN, the original Transformer): ``x -> norm(x + sublayer(x))``
* ``"pre"``  (Pre-LN, GPT-2 and most LLMs):      ``x -> x + sublayer(norm(x))``
"""

from __future__ import annotations

import torch
from torch import nn

from lnbook import norms

PLACEMENTS = ("pre", "post")
NORMS = ("layer", "rms", "none")


class LayerNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x):
        return norms.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float | None = None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return norms.rms_norm(x, self.weight.shape, self.weight, self.eps)


def make_norm(kind: str, d: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"norm: expected one of {NORMS}, got {kind!r}")
    return {"layer": LayerNorm, "rms": RMSNorm}.get(kind, lambda d: nn.Identity())(d)


class MLP(nn.Module):
    """The feed-forward sublayer: d -> hidden -> d with GELU."""

    def __init__(self, d: int, hidden: int | None = None):
        super().__init__()
        self.fc = nn.Linear(d, hidden or 4 * d)
        self.proj = nn.Linear(hidden or 4 * d, d)

    def forward(self, x):
        return self.proj(nn.functional.gelu(self.fc(x)))


class Block(nn.Module):
    """One residual block around ``sublayer`` (an MLP of width ``d`` unless given)."""

    def __init__(self, d: int, placement: str = "pre", norm: str = "layer", sublayer: nn.Module | None = None):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {placement!r}")
        self.placement = placement
        self.norm = make_norm(norm, d)
        self.sublayer = sublayer if sublayer is not None else MLP(d)

    def forward(self, x):
        if self.placement == "post":
            return self.norm(x + self.sublayer(x))
        return x + self.sublayer(self.norm(x))
