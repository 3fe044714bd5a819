"""Colab and Binder, simulated offline: each launch notebook runs top to bottom in a fresh environment.

tools/launch_sim.py builds (once, cached under .venv/launch/) two environments with Colab's versions
(GPU runtime: torch 2.11.0 and triton 3.6.0; CPU runtime: torch 2.11.0 without triton), without myst-nb,
Sphinx or lnbook, points each notebook's bootstrap at git+file:// of a clone of this working tree, runs
the notebook outside the checkout and samples the kernel's memory; the Binder-like one is built from
environment.yml. Colab's torch is PyPI's CUDA build (about 4.7 GB installed), so the default suite runs
the quickest chapter in the Binder-like one only (tests/test_launch_resolver.py shows, without
installing, that the bootstrap keeps Colab's torch); with LNBOOK_LAUNCH_FULL=1 (set by .ci/run) every
page runs in all three.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tools import launch, launch_sim
from tools import notebooks as notebooks_tool

FULL = os.environ.get("LNBOOK_LAUNCH_FULL") == "1"
QUICKEST = [("binder", "02_principles")]  # about 30 s with the environment cached
# LNBOOK_LAUNCH_ENVS narrows the full set to some environments (.ci/run: binder; see there why).
ENVS = [e for e in os.environ.get("LNBOOK_LAUNCH_ENVS", ",".join(launch_sim.ENVS)).split(",") if e]
CASES = [(env, name) for env in ENVS for name in launch.pages()] if FULL else QUICKEST


def test_the_environments_asked_for_exist():
    assert set(ENVS) <= set(launch_sim.ENVS), f"LNBOOK_LAUNCH_ENVS: expected some of {launch_sim.ENVS}, got {ENVS}"

# One xdist group: the cases share the cached environments, which one process must build.
pytestmark = [pytest.mark.xdist_group("launch-sim"),
              pytest.mark.skipif(not pathlib.Path("/proc/self/smaps_rollup").is_file(), reason="needs Linux's /proc")]


@pytest.mark.parametrize("env, name", CASES, ids=[f"{e}-{n}" for e, n in CASES])
def test_launch_notebook_runs_in_a_fresh_environment(env, name):
    (run,) = launch_sim.simulate([name], env)
    assert run.error is None, f"{env}/{name}: a cell failed: {run.error}"
    assert not run.raw_myst, f"{env}/{name}: raw MyST: {run.raw_myst[:5]}"
    limit = launch_sim.MEMORY_LIMIT_MB[env]
    assert run.peak_mb <= limit, f"{env}/{name}: peak {run.peak_mb:.0f} MB (PSS) > {limit} MB"
    # A kernel that was measured takes some tens of MB even when it imports nothing (the ledger's, the sources' and
    # the Chinese page's launch notebooks show stored tables: about 40 MB); 0 means none was found.
    assert run.peak_mb > 20, f"{env}/{name}: {run.peak_mb:.0f} MB: was the kernel measured at all?"


def test_colab_bootstrap_is_pointed_at_the_clone(tmp_path):
    nb = launch.read(launch.LAUNCH / "01_foundations.ipynb")
    url, branch = notebooks_tool.repository()
    cell = next(c for c in launch_sim._colab_notebook(nb, tmp_path)["cells"] if c["cell_type"] == "code")
    assert f"git+file://{tmp_path}@{branch}" in cell["source"] and url not in cell["source"]
    with pytest.raises(ValueError, match="bootstrap cell: expected git\\+"):
        launch_sim._colab_notebook({"cells": [{"cell_type": "code", "source": ["import lnbook"]}]}, tmp_path)


@pytest.mark.parametrize("env", ["colab-gpu", "colab-cpu"])
def test_colab_environment_holds_colab_s_versions_and_no_book_tooling(env):
    reqs = launch_sim.requirements(env)
    assert not any(tool in " ".join(reqs) for tool in ("myst", "sphinx", "jupyter-book", "lnbook")), reqs
    assert {"torch==2.11.0", "triton==3.6.0", "numpy", "sympy", "matplotlib", "nbclient"} <= set(reqs)


def test_binder_environment_names_nothing_from_the_checkout():
    reqs = launch_sim.requirements("binder")
    assert not any(r.startswith(("-e", ".", "/", "file:", "git+")) for r in reqs), reqs
    assert "triton>=3.7" in reqs, "Binder runs the kernels interpreted"


def test_cpu_build_metadata_drops_what_only_the_cuda_build_requires():
    lines = ["Name: torch", "Requires-Dist: sympy>=1.13.3", 'Requires-Dist: triton==3.6.0; platform_system == "Linux"',
             "Requires-Dist: nvidia-nccl-cu13==2.28.9", "Requires-Dist: cuda-bindings<14,>=13.0.3"]
    assert launch_sim.cpu_build_metadata(lines) == lines[:2]


def test_one_process_at_a_time_uses_an_environment(tmp_path, monkeypatch):
    """While one process builds the environment or runs a notebook in it, another waits (xdist workers)."""
    monkeypatch.setattr(launch_sim, "CACHE", tmp_path)
    probe = [sys.executable, "-c", "import fcntl, sys; fcntl.flock(open(sys.argv[1], 'w'), fcntl.LOCK_EX | fcntl.LOCK_NB)",
             str(tmp_path / "colab-gpu.lock")]
    with launch_sim.exclusive("colab-gpu"):
        assert subprocess.run(probe, capture_output=True).returncode != 0, "another process took the held lock"
    assert subprocess.run(probe, capture_output=True).returncode == 0, "the lock outlived its block"


@pytest.mark.skipif(not (FULL and {"colab-gpu", "colab-cpu"} <= set(ENVS)),
                    reason="the Colab environments are built by the full simulation (LNBOOK_LAUNCH_FULL=1)")
def test_cpu_runtime_is_a_copy_that_leaves_the_gpu_runtime_as_it_was():
    """colab-cpu is colab-gpu's files as hard links: its torch metadata rewritten (no triton, no NVIDIA
    libraries), the GPU runtime's left requiring them, as the CUDA build does."""
    requires = {}
    for env in ("colab-gpu", "colab-cpu"):
        with launch_sim.exclusive(env):
            info = launch_sim.distributions(launch_sim.ensure_venv(env))["torch"]
        requires[env] = [line for line in (info / "METADATA").read_text().splitlines() if line.startswith("Requires-Dist: ")]
    assert any("triton" in line for line in requires["colab-gpu"]), requires["colab-gpu"]
    assert requires["colab-cpu"] == launch_sim.cpu_build_metadata(requires["colab-gpu"]) != requires["colab-gpu"]
