"""Tiny Transformer pieces for the book's experiments.

Modules hold parameters and configuration only; the arithmetic lives in :mod:`lnbook.norms` (or, for
:class:`LayerNorm`, in PyTorch's fused op that the suite checks against it).
Defaults match PyTorch (``eps=1e-5``, weight ones, bias zeros).

A residual block places its norm in one of two ways (T04, F15):

* ``"post"`` (Post-LN, the original Transformer): ``x -> norm(x + sublayer(x))``
* ``"pre"``  (Pre-LN, GPT-2 and most LLMs):      ``x -> x + sublayer(norm(x))``

:class:`TransformerBlock` stacks two such blocks, causal self-attention then the MLP, on (B, L, d).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lnbook import args, norms

PLACEMENTS = ("pre", "post")
NORMS = ("layer", "rms", "none")


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension. It calls PyTorch's fused ``layer_norm``, which the test suite
    checks against :func:`lnbook.norms.layer_norm` (tests/test_norms.py): the reference is written out
    operation by operation for reading and is about three times slower inside a training loop, where
    the chapters' models spend most of their time."""

    def __init__(self, d: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x):
        return nn.functional.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float | None = None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return norms.rms_norm(x, self.weight.shape, self.weight, self.eps)


def make_norm(kind: str, d: int) -> nn.Module:
    if kind not in NORMS:
        raise args.arg_error(ValueError, "make_norm", "norm", f"one of {NORMS}", repr(kind))
    return {"layer": LayerNorm, "rms": RMSNorm}.get(kind, lambda d: nn.Identity())(d)


def relu_mlp(depth: int, width: int, norm: str | Callable[[int], nn.Module] = "none", d_in: int = 32,
             d_out: int = 4, seed: int = 0) -> nn.Sequential:
    """A float64 ReLU MLP, d_in -> width (``depth`` hidden layers) -> d_out, with He initialization (so
    that the un-normalized network trains too) and a norm before each ReLU.

    ``norm`` is one of :data:`NORMS` ("none": no norm) or a factory called with the width once per
    hidden layer, in order. The weights come from ``torch.manual_seed(seed)`` whatever the norm, so
    networks that differ only in their norm start from the same weights.
    """
    op = "relu_mlp"
    args.check_number(op, "depth", depth, lambda v: v >= 1, "an int >= 1", integral=True)
    args.check_number(op, "width", width, lambda v: v >= 1, "an int >= 1", integral=True)
    if not callable(norm) and norm not in NORMS:
        raise args.arg_error(ValueError, op, "norm", f"one of {NORMS} or a callable", repr(norm))
    make = norm if callable(norm) else (lambda w: make_norm(norm, w))
    torch.manual_seed(seed)
    layers, d = [], d_in
    for _ in range(depth):
        lin = nn.Linear(d, width)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)
        layers += [lin] if norm == "none" else [lin, make(width)]
        layers.append(nn.ReLU())
        d = width
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers).double()


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
            raise args.arg_error(ValueError, "Block", "placement", f"one of {PLACEMENTS}", repr(placement))
        self.placement = placement
        self.norm = make_norm(norm, d)
        self.sublayer = sublayer if sublayer is not None else MLP(d)

    def forward(self, x):
        if self.placement == "post":
            return self.norm(x + self.sublayer(x))
        return x + self.sublayer(self.norm(x))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention on (B, L, d): each position attends to itself and earlier ones."""

    def __init__(self, d: int, heads: int = 4):
        super().__init__()
        if not isinstance(heads, int) or heads <= 0 or d % heads:
            raise args.arg_error(ValueError, "CausalSelfAttention", "heads", f"a positive divisor of d = {d}", repr(heads))
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, l, d = x.shape
        # (B, L, 3d) -> three (B, heads, L, d/heads)
        q, k, v = self.qkv(x).view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, L, d/heads)
        return self.proj(y.transpose(1, 2).reshape(b, l, d))


class TransformerBlock(nn.Sequential):
    """A Transformer layer: an attention :class:`Block`, then an MLP :class:`Block`, same placement and norm.

    Post-LN: ``h = norm1(x + attn(x)); y = norm2(h + mlp(h))`` (Vaswani et al. 2017).
    Pre-LN:  ``h = x + attn(norm1(x)); y = h + mlp(norm2(h))`` (GPT-2).
    """

    def __init__(self, d: int, heads: int = 4, placement: str = "pre", norm: str = "layer", hidden: int | None = None):
        super().__init__(Block(d, placement, norm, CausalSelfAttention(d, heads)),
                         Block(d, placement, norm, MLP(d, hidden)))


# ----------------------------------------------------------------------------- chapter 5: residual variants


class PlainBlock(Block):
    """A :class:`Block` without the skip connection: ``x -> sublayer(norm(x))`` (chapter 5's control)."""

    def forward(self, x):
        return self.sublayer(self.norm(x))


class DeepNormBlock(Block):
    """DeepNorm (Wang et al. 2022): a Post-LN block that up-weights the skip, ``x -> norm(α·x + sublayer(x))``.

    The paper pairs α with an initialization that scales the branch's projections by β
    (:func:`deepnorm_init_`); :func:`deepnorm_constants` gives both for a depth.
    """

    def __init__(self, d: int, alpha: float = 1.0, norm: str = "layer", sublayer: nn.Module | None = None):
        super().__init__(d, "post", norm, sublayer)
        args.check_number("DeepNormBlock", "alpha", alpha, lambda v: v > 0, "a number > 0")
        self.alpha = float(alpha)

    def forward(self, x):
        return self.norm(self.alpha * x + self.sublayer(x))


def deepnorm_constants(layers: int) -> tuple[float, float]:
    """(α, β) of DeepNorm for an encoder-only (or decoder-only) stack of ``layers`` layers:
    α = (2N)^(1/4), β = (8N)^(−1/4) (Wang et al. 2022, their Figure 2)."""
    args.check_number("deepnorm_constants", "layers", layers, lambda v: v > 0, "an int > 0", integral=True)
    return (2 * layers) ** 0.25, (8 * layers) ** -0.25


def _branch_outputs(module: nn.Module) -> list[nn.Linear]:
    # The last linear layer of every residual branch: what writes into the residual stream.
    return [m.proj for m in module.modules() if isinstance(m, (MLP, CausalSelfAttention))]


def zero_branches_(module: nn.Module) -> nn.Module:
    """Zero the weight and bias of the last linear layer of every residual branch, in place."""
    with torch.no_grad():
        for lin in _branch_outputs(module):
            lin.weight.zero_()
            lin.bias.zero_()
    return module


def gpt2_init_(module: nn.Module, n_layer: int, std: float = 0.02, scaled: bool = True) -> nn.Module:
    """GPT-2's initialization, in place: every linear weight N(0, std²), biases zero, and the branch
    output projections N(0, (std/√(2·n_layer))²), two residual branches per layer (GPT-2, as in
    OpenAI's and nanoGPT's code). ``scaled=False`` leaves out the 1/√(2·n_layer) (chapter 5's control)."""
    args.check_number("gpt2_init_", "n_layer", n_layer, lambda v: v > 0, "an int > 0", integral=True)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                m.bias.zero_()
        for lin in _branch_outputs(module) if scaled else ():
            lin.weight.mul_(1 / (2 * n_layer) ** 0.5)
    return module


def deepnorm_init_(module: nn.Module, beta: float) -> nn.Module:
    """DeepNorm's initialization, in place: Xavier-normal weights, scaled by β for the feed-forward
    layers and the attention's value and output projections (gain 1 for queries and keys)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                fan_out, fan_in = m.weight.shape
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / (fan_in + fan_out)) ** 0.5)
                m.bias.zero_()
        for m in module.modules():
            if isinstance(m, MLP):
                m.fc.weight.mul_(beta)
                m.proj.weight.mul_(beta)
            elif isinstance(m, CausalSelfAttention):
                m.qkv.weight[2 * m.proj.in_features:].mul_(beta)  # the value rows of (q, k, v)
                m.proj.weight.mul_(beta)
    return module
