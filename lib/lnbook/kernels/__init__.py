"""Triton kernels for LayerNorm, RMSNorm and fused residual-add + LayerNorm.

Drop-in replacements for ``torch.nn.functional.layer_norm`` and ``rms_norm`` (plus
``add_layer_norm(x, residual, ...) -> (y, x + residual)``), with autograd.

On a machine without CUDA the same kernels run through Triton's interpreter on CPU tensors. The
interpreter is chosen when ``@triton.jit`` decorates a kernel, so the switch has to happen here,
before :mod:`lnbook.kernels.rownorm` is imported. Set ``TRITON_INTERPRET`` yourself to override.

Two Triton floors: compiled on a GPU the kernels need what ``pyproject.toml`` declares (Colab's stock
Triton); interpreted on a CPU they need :data:`INTERPRETER_TRITON`. Below it, importing this package
says so in one line and :data:`RUNNABLE` is False: the kernels chapter then shows its stored records
and the compile table instead of running the kernels.

To trace one op, read in this order: ``layer_norm.py`` (checks, its row of ``flags.OPS``) →
``autograd.py`` (reshape to rows) → ``rownorm.forward`` / ``rownorm.backward`` (the launches) →
the kernels at the top of ``rownorm.py`` → ``heuristics.py`` (block shapes). ``aot.py`` compiles
and ``traffic.py`` counts the same launches.
"""

import os
import re
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402  (after the switch: Triton reads TRITON_INTERPRET when it is imported)

#: The lowest Triton whose CPU interpreter runs these kernels (3.6's fails them: a TypeError in its
#: interpreter.py); compiled on a GPU, the floor of pyproject.toml is enough.
INTERPRETER_TRITON = (3, 7)


def interpreter_works(version: str = triton.__version__) -> bool:
    """Whether Triton ``version``'s interpreter runs the kernels (``"3.7.0"``, ``"3.8.0+git…"``)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"interpreter_works: version: expected a Triton version such as '3.7.0', got {version!r}")
    return tuple(map(int, match.groups())) >= INTERPRETER_TRITON


from lnbook.kernels.add_layer_norm import add_layer_norm  # noqa: E402  (after the switch above, like triton)
from lnbook.kernels.heuristics import INTERPRETED  # noqa: E402  (after the switch above, like triton)
from lnbook.kernels.layer_norm import layer_norm  # noqa: E402  (after the switch above, like triton)
from lnbook.kernels.rms_norm import rms_norm  # noqa: E402  (after the switch above, like triton)

#: Whether the kernels can run here: compiled on a GPU, or interpreted by a Triton whose interpreter works.
RUNNABLE = not INTERPRETED or interpreter_works()
_FLOOR = ".".join(map(str, INTERPRETER_TRITON))
#: The one line said where they cannot (a CPU with an older Triton).
UNAVAILABLE = (f"lnbook.kernels: Triton {triton.__version__}'s CPU interpreter cannot run these kernels (it needs "
               f"Triton >= {_FLOOR}: pip install 'triton>={_FLOOR}', or use a GPU); stored records and the compile "
               "table are shown instead.")
if not RUNNABLE:
    print(UNAVAILABLE, file=sys.stderr)

__all__ = ["INTERPRETED", "INTERPRETER_TRITON", "RUNNABLE", "add_layer_norm", "interpreter_works", "layer_norm",
           "rms_norm"]
