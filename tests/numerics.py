"""Numerical helpers shared by the test modules: seeded data and the error rule against torch."""

from __future__ import annotations

import torch

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape, dtype=F64, seed=0, scale=2.0, shift=0.5) -> torch.Tensor:
    # Drawn in float64 and then rounded, so every dtype sees the same data. The shift makes
    # centring matter; scale 2 keeps float16 far from overflow.
    return (shift + scale * torch.randn(shape, generator=gen(seed), dtype=F64)).to(dtype)


def params(shape, dtype, weight: bool, bias: bool, seed=1):
    w = (1 + 0.5 * torch.randn(shape, generator=gen(seed), dtype=F64)).to(dtype) if weight else None
    b = torch.randn(shape, generator=gen(seed + 1), dtype=F64).to(dtype) if bias else None
    return w, b


def assert_no_worse_than_torch(ours, theirs, ref, dtype):
    """The rule for float16 / bfloat16 / float32 results, against a float64 reference:

        err(ours) <= 2 * err(torch) + 2 ulp,   ulp = finfo(dtype).eps * max(|ref|, 1).

    Both implementations round a float32 (or float64) value once to the result dtype, so each is
    within half an ulp of its own unrounded value; where torch lands on the correctly rounded
    value by luck and ours rounds the other way, err(torch) is ~0 and only the ulp term absorbs
    the one-ulp difference. The factor 2 leaves room for a different but equally good summation
    order; statistics accumulated in float16 would exceed the bound by orders of magnitude.
    """
    err_ours = (ours.to(F64) - ref).abs().max().item()
    err_torch = (theirs.to(F64) - ref).abs().max().item()
    ulp = torch.finfo(dtype).eps * max(ref.abs().max().item(), 1.0)
    assert err_ours <= 2 * err_torch + 2 * ulp, (err_ours, err_torch, ulp)
