"""Tests for lnbook.args, the argument-checking vocabulary: the message shape, the single-argument
checks, and the shared check of the row norms. The errors each op raises are tested with the op
(test_norms.py for the reference norms, test_kernels.py for the kernels, and so on)."""

from __future__ import annotations

import re

import pytest
import torch

from lnbook import args

X = torch.ones(2, 8)
W8 = torch.ones(8)


def test_arg_error_builds_one_message_shape():
    err = args.arg_error(TypeError, "op", "name", "what was wanted", "what came")
    assert type(err) is TypeError and str(err) == "op: name: expected what was wanted, got what came"


@pytest.mark.parametrize("value, integral, exc, message", [
    (3, True, None, None),
    (0.5, False, None, None),
    (0, True, ValueError, "op: n: expected an int > 0, got 0"),
    (True, True, TypeError, "op: n: expected an int, got bool"),
    (2.0, True, TypeError, "op: n: expected an int, got float"),
    ("1", False, TypeError, "op: n: expected a real number, got str"),
    (float("nan"), False, ValueError, "op: n: expected an int > 0, got nan"),  # NaN fails every comparison
])
def test_check_number(value, integral, exc, message):
    check = lambda: args.check_number("op", "n", value, lambda v: v > 0, "an int > 0", integral=integral)
    if exc is None:
        check()
    else:
        with pytest.raises(exc, match=re.escape(message)):
            check()


@pytest.mark.parametrize("value, message", [
    ([1.0], "op: t: expected a torch.Tensor, got list"),
    (torch.ones(2, dtype=torch.int64),
     "op: t: expected a floating dtype (float16, bfloat16, float32, float64), got torch.int64"),
])
def test_check_float_tensor(value, message):
    args.check_float_tensor("op", "t", torch.ones(2, dtype=torch.bfloat16))  # every floating dtype passes
    with pytest.raises(TypeError, match=re.escape(message)):
        args.check_float_tensor("op", "t", value)


def test_check_norm_args_returns_the_shape_as_a_tuple():
    assert args.check_norm_args(X, 8) == (8,)
    assert args.check_norm_args(X, torch.Size([2, 8]), W8.expand(2, 8)) == (2, 8)
    assert args.check_norm_args(X, [8], eps=None, op="rms_norm") == (8,)
    assert args.check_norm_args(X, 8, eps=0) == (8,)  # eps = 0 is allowed: the book studies it


def test_check_norm_args_names_the_calling_op():
    # The kernels and lnbook.distributed share the check under their own names.
    with pytest.raises(ValueError, match=re.escape("my_kernel: normalized_shape: expected the trailing dimensions "
                                                   "of x.shape = (2, 8), got (4,)")):
        args.check_norm_args(X, 4, op="my_kernel")
