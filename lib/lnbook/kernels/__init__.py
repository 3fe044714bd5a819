"""Triton kernels for LayerNorm, RMSNorm and fused residual-add + LayerNorm.

Drop-in replacements for ``torch.nn.functional.layer_norm`` and ``rms_norm`` (plus
``add_layer_norm(x, residual, ...) -> (y, x + residual)``), with autograd.

On a machine without CUDA the same kernels run through Triton's interpreter on CPU tensors
(:mod:`lnbook.kernels.runtime` makes that switch before ``triton`` is imported: import this package
before ``triton``).

Two Triton floors: compiled on a GPU the kernels need what ``pyproject.toml`` declares (Colab's stock
Triton); interpreted on a CPU they need :data:`INTERPRETER_TRITON`. Below it (or with ``triton``
imported first), importing this package says why in one line (:data:`UNAVAILABLE`), :data:`RUNNABLE`
is False and the ops raise that line for CPU tensors: the kernels chapter then shows its stored
records and the compile table instead of running the kernels.

The files, in reading order:

* ``runtime.py``: compiled or interpreted, and whether the kernels can run here;
* ``ops.py``: the three ops, their argument checks and their autograd (reshape to rows);
* ``rownorm.py``: ``OPS`` (each op's flags), the Triton kernels, and the launch plans that
  ``rownorm.forward`` / ``rownorm.backward`` run;
* ``heuristics.py``: block shapes, warps and program counts for those launches;
* ``traffic.py`` counts the bytes of the same launches, and ``aot.py`` compiles them for a GPU.
"""

import sys

# First: runtime chooses the interpreter (without CUDA) before anything here imports triton.
from lnbook.kernels.runtime import INTERPRETED, INTERPRETER_TRITON, RUNNABLE, UNAVAILABLE, interpreter_works

if not RUNNABLE:
    print(UNAVAILABLE, file=sys.stderr)

from lnbook.kernels.ops import add_layer_norm, layer_norm, rms_norm  # noqa: E402  (after runtime's switch)

__all__ = ["INTERPRETED", "INTERPRETER_TRITON", "RUNNABLE", "UNAVAILABLE", "add_layer_norm", "interpreter_works",
           "layer_norm", "rms_norm"]
