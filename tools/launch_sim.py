"""Launch the launch notebooks as Colab and Binder would, offline, and measure their memory.

The repository URL in _config.yml is a placeholder until the book is published, so this is the proof
that launching works. Three environments, each a virtual environment cached under ``.venv/launch/``
(rebuilt when its requirements change; the wheels pip downloads for them are kept in
``.venv/launch/wheels``):

* ``colab-gpu``: Colab's GPU runtime as far as a CPU machine can hold it: torch 2.11.0 (PyPI's CUDA
  build, with its NVIDIA libraries) and triton 3.6.0, numpy, sympy, matplotlib and Jupyter's runner; no
  myst-nb, no Sphinx, no lnbook. Without a GPU here, the kernels cannot run (3.6's interpreter fails
  them): the kernels chapter shows that it says so and shows what it can.
* ``colab-cpu``: Colab's CPU runtime: torch 2.11.0 without triton. Its +cpu build is not reachable here
  (download.pytorch.org), so the stand-in is the same PyPI build with its metadata made the +cpu
  build's (:func:`cpu_build_metadata`): pip then resolves as on Colab's CPU runtime, where the
  bootstrap brings the Triton lnbook needs and nothing else. It is made from ``colab-gpu`` as hard
  links, so the 4.7 GB of torch and its NVIDIA libraries are installed once for both.
* ``binder``: environment.yml's packages (conda names mapped to PyPI's, torch as here: a CPU build) and
  its pip section, nothing from the checkout; the notebooks run in ``book/launch/`` of a clone, where
  their first cell puts the clone's ``lib/`` on the path, as on Binder.

Each Colab notebook's bootstrap cell is pointed at ``git+file://`` of a local clone of the working tree
instead of the GitHub URL, so it installs ``lnbook`` as it would in Colab (uninstalled again after each
notebook); what it installed is measured (:attr:`Run.installed_mb`).

Each notebook runs top to bottom with nbclient in a folder outside the checkout, while the
proportional set size (PSS) of the kernel and all its descendants is sampled (``tools/memory.py``, run
by path in the simulated environment), against the runtime's memory (:data:`MEMORY_LIMIT_MB`: Binder
guarantees 1 GB). Usage::

    python -m tools.launch_sim [--env colab-gpu|colab-cpu|binder] [pages…]   # default: colab-gpu, every page
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from tools import launch  # pages, raw_myst
from tools import notebooks as notebooks_tool  # repository

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / ".venv" / "launch"
RUNNER = ROOT / "tools" / "memory.py"  # run by path in the simulated environment (see its docstring)

# The memory a page may take, per environment: mybinder.org guarantees 1 GB (and stops a kernel at 2 GB);
# Colab's free runtimes have about 12 GB (torch's CUDA build alone takes more than its CPU build).
MEMORY_LIMIT_MB = {"binder": 1024, "colab-gpu": 12 * 1024, "colab-cpu": 12 * 1024}
ENVS = ("colab-gpu", "colab-cpu", "binder")
CONDA_TO_PIP = {"pytorch-cpu": "torch", "matplotlib-base": "matplotlib", "pip": None, "python": None}
# Colab's runtimes (its published package list, read 2026-08): GPU torch 2.11.0 with triton 3.6.0, CPU
# torch 2.11.0+cpu without triton.
COLAB_TORCH = "torch==2.11.0"
COLAB_TRITON = "triton==3.6.0"
WHEELS = CACHE / "wheels"
# What every process of a simulated environment runs with: no PYTHONPATH (a checkout's lib/ on it would be
# an lnbook the bootstrap never installed) and no user site.
SIMULATED = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONNOUSERSITE": "1"}
# Distributions only torch's CUDA build requires (and triton, which its Linux wheels pin).
CUDA_BUILD_ONLY = ("nvidia-", "cuda-", "triton")


def cpu_build_metadata(lines: list[str]) -> list[str]:
    """torch's METADATA lines as its +cpu build has them: without the CUDA build's requirements."""
    return [line for line in lines if not re.match(rf"Requires-Dist: ({'|'.join(CUDA_BUILD_ONLY)})", line)]


def binder_torch_spec() -> str:
    """The torch Binder's simulation installs: ``$LNBOOK_TORCH_SPEC``, else this interpreter's exact build
    (a CPU build here, found in pip's cache or wheel folder, as conda-forge's pytorch-cpu is one)."""
    import torch

    return os.environ.get("LNBOOK_TORCH_SPEC") or f"torch=={torch.__version__}"


def _environment_yml() -> tuple[list[str], list[str]]:
    """(conda dependencies as PyPI requirements, the pip section) of environment.yml."""
    import yaml

    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda, pip = [d for d in deps if isinstance(d, str)], next((d["pip"] for d in deps if isinstance(d, dict)), [])
    reqs = []
    for dep in conda:
        name = dep.split("=")[0].split(">")[0].split("<")[0].strip()
        pypi = CONDA_TO_PIP.get(name, name)
        if pypi:
            reqs.append(dep.replace(name, pypi, 1))
    return reqs, pip


def requirements(env: str) -> list[str]:
    """What the cached environment holds (lnbook is installed per run, from the clone)."""
    runner = ["nbclient", "ipykernel"]
    if env in ("colab-gpu", "colab-cpu"):
        return [COLAB_TORCH, COLAB_TRITON, "numpy", "sympy", "matplotlib", *runner]
    reqs, pip = _environment_yml()
    return [binder_torch_spec(), *[r for r in reqs if not r.startswith("torch")], *pip, *runner]


def _as_cpu_runtime(folder: pathlib.Path) -> None:
    """Colab's CPU runtime at ``folder``, made from the GPU one: a copy of its files as hard links (no second
    4.7 GB; pip and Python replace files rather than rewrite them, and so does this), triton removed,
    torch's metadata the +cpu build's."""
    with exclusive("colab-gpu"):
        ensure_venv("colab-gpu")
        subprocess.run(["cp", "-al", str(CACHE / "colab-gpu"), str(folder)], check=True)
    (folder / "requirements.json").unlink()  # the GPU runtime's stamp, a link to it
    python = str(folder / "bin" / "python")
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "triton"], check=True, env=SIMULATED)
    out = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.distribution('torch')._path)"],
                         capture_output=True, text=True, check=True, env=SIMULATED).stdout.strip()
    metadata = pathlib.Path(out) / "METADATA"
    head, _, body = metadata.read_text().partition("\n\n")
    metadata.unlink()  # a link to the GPU runtime's file: write a new one
    metadata.write_text("\n".join(cpu_build_metadata(head.splitlines())) + "\n\n" + body)


@contextlib.contextmanager
def exclusive(env: str):
    """``env``'s cached environment to this process alone while the block runs (a file lock): building
    it, or installing lnbook into it and running a notebook, is never done by two processes at once
    (pytest-xdist workers, two shells)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{env}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def ensure_venv(env: str) -> pathlib.Path:
    """The cached virtual environment of ``env``: its python. Built (minutes) when missing or stale.
    Call it inside :func:`exclusive`."""
    reqs = requirements(env)
    folder = CACHE / env
    stamp = folder / "requirements.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == reqs):
        shutil.rmtree(folder, ignore_errors=True)
        if env == "colab-cpu":
            _as_cpu_runtime(folder)
        else:
            _install(folder, reqs)
        stamp.write_text(json.dumps(reqs))
    return folder / "bin" / "python"


def _install(folder: pathlib.Path, reqs: list[str]) -> None:
    """A virtual environment at ``folder`` holding ``reqs``, their wheels kept in :data:`WHEELS`."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip"]
    WHEELS.mkdir(parents=True, exist_ok=True)
    subprocess.run([*pip, "download", "-q", "-d", str(WHEELS), *reqs], check=True, env=SIMULATED)
    subprocess.run([*pip, "install", "-q", "--find-links", str(WHEELS), *reqs], check=True, env=SIMULATED)


def clone(dest: pathlib.Path) -> pathlib.Path:
    """A git repository at ``dest`` holding the working tree as it is (tracked and untracked files that
    git does not ignore), committed on the branch _config.yml names: what ``git+file://`` installs."""
    _, branch = notebooks_tool.repository()
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=launch-sim", "-c", "user.email=launch-sim@localhost",
           "-c", f"init.defaultBranch={branch}"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "launch simulation"]):
        subprocess.run([*git, *args], cwd=dest, check=True)
    return dest


@dataclasses.dataclass
class Run:
    name: str
    env: str
    error: str | None  # the failing cell's error, None when every cell passed
    peak_mb: float  # peak PSS of the kernel and its descendants
    raw_myst: list[str]  # MyST left in the Markdown cells
    installed_mb: float = 0.0  # what the bootstrap added to site-packages (lnbook, and triton on colab-cpu)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.raw_myst and self.peak_mb <= MEMORY_LIMIT_MB[self.env]


def _colab_notebook(nb: dict, repo: pathlib.Path) -> dict:
    """The bootstrap's ``git+https://…`` replaced by ``git+file://`` of the clone."""
    url, branch = notebooks_tool.repository()
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(cell["source"])
    if f"git+{url}@{branch}" not in source:
        raise ValueError(f"bootstrap cell: expected git+{url}@{branch} in it, got {source!r}")
    cell["source"] = source.replace(f"git+{url}", f"git+file://{repo}")
    return nb


def simulate(names: list[str], env: str = "colab-gpu") -> list[Run]:
    """Run the launch notebooks of ``names`` in the simulated ``env``; one :class:`Run` each."""
    return list(runs(names, env))


def runs(names: list[str], env: str = "colab-gpu"):
    """:func:`simulate`, yielding each :class:`Run` as its notebook finishes."""
    if env not in ENVS:
        raise ValueError(f"simulate: env: expected one of {ENVS}, got {env!r}")
    with tempfile.TemporaryDirectory(prefix="lnbook-launch-") as tmp:
        work = pathlib.Path(tmp)
        repo = clone(work / "repo")
        for name in names:
            with exclusive(env):
                run = _run(name, env, ensure_venv(env), repo, work)
            yield run  # the lock released: the caller may take its time


def distributions(python: pathlib.Path) -> dict[str, pathlib.Path]:
    """``{name: its .dist-info folder}`` of every distribution installed in ``python``'s environment."""
    script = "import importlib.metadata as m, json; print(json.dumps({d.name: str(d._path) for d in m.distributions()}))"
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True, env=SIMULATED).stdout
    return {name: pathlib.Path(path) for name, path in json.loads(out).items()}


def installed_bytes(info: pathlib.Path) -> int:
    """The bytes of the files a distribution's RECORD lists (what installing it put on disk)."""
    base, total = info.parent, 0
    for line in (info / "RECORD").read_text().splitlines():
        path = base / line.split(",", 1)[0]
        total += path.stat().st_size if path.is_file() else 0
    return total


def _remove(python: pathlib.Path, names: list[str]) -> None:
    """Uninstall ``names`` (the bootstrap's installs) so that the next notebook meets the runtime as shipped."""
    if names:
        subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", *names], check=True, capture_output=True,
                       env=SIMULATED)


def _run(name: str, env: str, python: pathlib.Path, repo: pathlib.Path, work: pathlib.Path) -> Run:
    """One launch notebook run in ``env`` (its ``python``) with lnbook from ``repo``, the clone."""
    _remove(python, ["lnbook"] if "lnbook" in distributions(python) else [])  # a run that was interrupted
    before = distributions(python)
    nb = launch.read(repo / launch.launch_path(name))
    if env == "binder":
        folder = repo / "book" / "launch"  # the bootstrap finds the clone's lib/ above it
    else:
        folder = work / "colab"  # outside any checkout: the bootstrap must install lnbook
        folder.mkdir(exist_ok=True)
        nb = _colab_notebook(nb, repo)
    path = folder / f"{name}.ipynb"
    launch.write(nb, path)
    summary = folder / f"{name}.json"
    subprocess.run([str(python), "-I", str(RUNNER), str(path), str(summary)], cwd=folder, check=True, env=SIMULATED)
    result = json.loads(summary.read_text())
    raw = [f"cell {c.get('id')}: {r}" for c in nb["cells"] if c["cell_type"] == "markdown"
           for r in launch.raw_myst("".join(c["source"]))]
    added = {n: info for n, info in distributions(python).items() if n not in before}
    installed_mb = sum(installed_bytes(info) for info in added.values()) / 2**20
    _remove(python, sorted(added))  # before the clone (an install's source) is deleted
    return Run(name, env, result["error"], result["peak_mb"], raw, installed_mb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.launch_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=ENVS, default="colab-gpu")
    parser.add_argument("names", nargs="*", help="pages (default: every page with a launch notebook)")
    args = parser.parse_args(argv)
    ok, start = True, time.monotonic()  # the time is reported, never checked
    for r in runs(args.names or launch.pages(), args.env):
        ok &= r.ok
        status = "ok" if r.ok else "FAILED"
        elapsed, start = time.monotonic() - start, time.monotonic()
        print(f"{r.env:9} {r.name:18} {status:7} peak {r.peak_mb:6.0f} MB  installed {r.installed_mb:6.1f} MB  "
              f"{elapsed:5.0f} s  {r.error or ''} "
              f"{r.raw_myst or ''}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
