"""Where the kernels run, and whether they can run here.

On a CUDA GPU Triton compiles them. Without CUDA they run on CPU tensors through Triton's
interpreter, which is chosen when ``@triton.jit`` decorates a function: Triton's own library
functions (``tl.sum``, ``tl.max``, …) when ``triton`` is first imported, ours when
:mod:`lnbook.kernels.rownorm` is. So the switch happens here, before this module imports
``triton``, and :mod:`lnbook.kernels` imports this module first. Set ``TRITON_INTERPRET`` yourself to
override.

The kernels cannot run on a CPU in two cases, each said in one line (:data:`UNAVAILABLE`), with
:data:`RUNNABLE` False: a Triton below :data:`INTERPRETER_TRITON`, whose interpreter fails them; and a
``triton`` imported before :mod:`lnbook.kernels` without ``TRITON_INTERPRET=1``, whose own functions
are then compiled-only (a kernel calling ``tl.sum`` would fail with "Cannot call @triton.jit'd outside
of the scope of a kernel").
"""

from __future__ import annotations

import os
import re

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402  (after the switch: Triton reads TRITON_INTERPRET when it is imported)
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402  (as above)


def _interpreting() -> bool:
    # Read the variable as Triton does; ``triton.knobs`` would say the same, but only from Triton 3.4.
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on", "y")


#: True when the kernels run on the CPU through Triton's interpreter (no CUDA).
INTERPRETED = _interpreting()

#: The lowest Triton whose CPU interpreter runs these kernels (3.6's fails them: a TypeError in its
#: interpreter.py); compiled on a GPU, the floor of pyproject.toml is enough.
INTERPRETER_TRITON = (3, 7)


def interpreter_works(version: str = triton.__version__) -> bool:
    """Whether Triton ``version``'s interpreter runs the kernels (``"3.7.0"``, ``"3.8.0+git…"``)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"interpreter_works: version: expected a Triton version such as '3.7.0', got {version!r}")
    return tuple(map(int, match.groups())) >= INTERPRETER_TRITON


def triton_interpreted() -> bool:
    """Whether Triton's own functions were decorated for the interpreter, i.e. whether ``triton`` was
    first imported with ``TRITON_INTERPRET`` on (False when something imported it before the switch)."""
    return isinstance(triton.language.sum, InterpretedFunction)


def why_unavailable() -> str | None:
    """The one line that says why the kernels cannot run here, or None where they can."""
    if not INTERPRETED:
        return None
    if not interpreter_works():
        floor = ".".join(map(str, INTERPRETER_TRITON))
        return (f"lnbook.kernels: Triton {triton.__version__}'s CPU interpreter cannot run these kernels (it needs "
                f"Triton >= {floor}: pip install 'triton>={floor}', or use a GPU); the kernels chapter shows its "
                "stored GPU records and compile table instead of running them.")
    if not triton_interpreted():
        return ("lnbook.kernels: triton was imported before lnbook.kernels without TRITON_INTERPRET=1, so its own "
                "functions (tl.sum, ...) cannot run in the CPU interpreter: import lnbook.kernels first, or set "
                "TRITON_INTERPRET=1 before anything imports triton.")
    return None


#: The one line said where the kernels cannot run (None where they can).
UNAVAILABLE = why_unavailable()
#: Whether the kernels can run here: compiled on a GPU, or interpreted by a Triton that can.
RUNNABLE = UNAVAILABLE is None
