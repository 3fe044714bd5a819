"""Colab and Binder, simulated offline: each launch notebook runs top to bottom in a fresh environment.

tools/launch_sim.py builds (once, cached under .venv/launch/) a Colab-like environment without
myst-nb, Sphinx or lnbook, points each notebook's bootstrap at git+file:// of a clone of this working
tree, runs the notebook outside the checkout and samples the kernel's memory; the Binder-like one is
built from environment.yml. The default suite runs the quickest chapter in the Colab-like one; with
LNBOOK_LAUNCH_FULL=1 (set by .ci/run) every page runs in both.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import launch  # tools/launch.py and tools/launch_sim.py (tests/conftest.py puts tools/ on the path)
import launch_sim

FULL = os.environ.get("LNBOOK_LAUNCH_FULL") == "1"
QUICKEST = [("colab", "02_principles")]  # about 30 s with the environment cached
CASES = [(env, name) for env in launch_sim.ENVS for name in launch.pages()] if FULL else QUICKEST

# One xdist group: the cases share the cached environments, which one process must build.
pytestmark = [pytest.mark.xdist_group("launch-sim"),
              pytest.mark.skipif(not pathlib.Path("/proc/self/smaps_rollup").is_file(), reason="needs Linux's /proc")]


@pytest.mark.parametrize("env, name", CASES, ids=[f"{e}-{n}" for e, n in CASES])
def test_launch_notebook_runs_in_a_fresh_environment(env, name):
    (run,) = launch_sim.simulate([name], env)
    assert run.error is None, f"{env}/{name}: a cell failed: {run.error}"
    assert not run.raw_myst, f"{env}/{name}: raw MyST: {run.raw_myst[:5]}"
    assert run.peak_mb <= launch_sim.MEMORY_LIMIT_MB, f"{env}/{name}: peak {run.peak_mb:.0f} MB (PSS) > 1 GB"
    assert run.peak_mb > 100, f"{env}/{name}: {run.peak_mb:.0f} MB: was the kernel measured at all?"


def test_colab_bootstrap_is_pointed_at_the_clone(tmp_path):
    nb = launch.read(launch.LAUNCH / "01_foundations.ipynb")
    url, branch = launch.notebooks_tool.repository()
    cell = next(c for c in launch_sim._colab_notebook(nb, tmp_path)["cells"] if c["cell_type"] == "code")
    assert f"git+file://{tmp_path}@{branch}" in cell["source"] and url not in cell["source"]
    with pytest.raises(ValueError, match="bootstrap cell: expected git\\+"):
        launch_sim._colab_notebook({"cells": [{"cell_type": "code", "source": ["import lnbook"]}]}, tmp_path)


def test_colab_environment_holds_no_book_tooling():
    reqs = " ".join(launch_sim.requirements("colab"))
    assert not any(tool in reqs for tool in ("myst", "sphinx", "jupyter-book", "lnbook")), reqs
    assert all(pkg in reqs for pkg in ("torch", "numpy", "sympy", "matplotlib", "triton", "nbclient"))


def test_one_process_at_a_time_uses_an_environment(tmp_path, monkeypatch):
    """While one process builds the environment or runs a notebook in it, another waits (xdist workers)."""
    monkeypatch.setattr(launch_sim, "CACHE", tmp_path)
    probe = [sys.executable, "-c", "import fcntl, sys; fcntl.flock(open(sys.argv[1], 'w'), fcntl.LOCK_EX | fcntl.LOCK_NB)",
             str(tmp_path / "colab.lock")]
    with launch_sim.exclusive("colab"):
        assert subprocess.run(probe, capture_output=True).returncode != 0, "another process took the held lock"
    assert subprocess.run(probe, capture_output=True).returncode == 0, "the lock outlived its block"
