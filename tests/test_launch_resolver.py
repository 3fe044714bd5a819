"""Launching on Colab keeps Colab's torch: pip's own resolver, asked to install lnbook (a dry run) into an
environment that holds Colab's versions, installs lnbook and at most a Triton, never torch or its NVIDIA
libraries.

The environments are stand-ins: a virtual environment without pip whose site-packages hold only the
metadata (``*.dist-info/METADATA``) of Colab's distributions, from tests/data/colab.json (see its
``about``). pip reads installed distributions from that metadata alone, so the resolver meets what it
would meet on Colab. lnbook is a stand-in wheel too, its metadata (name, version, Python, requirements)
the [project] table of pyproject.toml, which is all the resolver reads of it (that the package builds is
tested by tests/test_book.py). One resolver call per runtime; only the CPU runtime's needs the index (its
list of Triton releases). The null case runs offline.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from lnbook.kernels import INTERPRETER_TRITON
from tools import launch_sim  # the +cpu build's metadata

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = json.loads((ROOT / "tests" / "data" / "colab.json").read_text())
LARGE = ("torch", "nvidia-", "cuda-")  # what a torch reinstall brings: gigabytes
# pip run without this process's PYTHONPATH: a checkout's lib/ (and the lnbook.egg-info a build leaves
# there) would look like an installed lnbook.
PIP_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def runtime(kind: str) -> dict[str, list[str]]:
    """Colab's ``kind`` runtime (``"gpu"`` or ``"cpu"``): ``{distribution: METADATA lines}``."""
    if kind not in ("gpu", "cpu"):
        raise ValueError(f"runtime: kind: expected 'gpu' or 'cpu', got {kind!r}")
    dists = {**COLAB["gpu"], **COLAB["both"]}
    if kind == "cpu":  # the +cpu build: no NVIDIA libraries, no triton, and torch requiring neither
        dists = {n: m for n, m in dists.items() if not n.startswith(launch_sim.CUDA_BUILD_ONLY)}
        dists["torch"] = launch_sim.cpu_build_metadata(dists["torch"])
    return dists


def stub_environment(folder: pathlib.Path, dists: dict[str, list[str]]) -> pathlib.Path:
    """A virtual environment at ``folder`` holding only the metadata of ``dists``; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    purelib = sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)})
    for name, lines in dists.items():
        version = next(line.split(": ", 1)[1] for line in lines if line.startswith("Version: "))
        info = pathlib.Path(purelib) / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\n" + "\n".join(lines) + "\n")
        (info / "INSTALLER").write_text("colab-stand-in\n")
    return folder / "bin" / "python"


def stand_in_wheel(folder: pathlib.Path, name: str, version: str, requires: list[str], python: str = "") -> pathlib.Path:
    """A wheel at ``folder`` that holds only the metadata of ``name`` ``version`` (its requirements and
    supported Pythons): what pip's resolver reads of a distribution."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Python: {python}"] * bool(python) + [f"Requires-Dist: {r}" for r in requires]
    info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{info}/METADATA", "\n".join(lines) + "\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: lnbook-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


@pytest.fixture
def wheel(tmp_path) -> pathlib.Path:
    """lnbook as pip's resolver sees it: the metadata pyproject.toml declares."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    folder = tmp_path / "wheels"
    folder.mkdir()
    return stand_in_wheel(folder, project["name"], project["version"], project["dependencies"],
                          project["requires-python"])


def dry_run(python: pathlib.Path, wheel: pathlib.Path, report: pathlib.Path, *index: str) -> dict[str, str]:
    """What ``pip install lnbook`` would install into ``python``'s environment: ``{name: version}``.
    ``index``: pip's options for where to look (PyPI when none)."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "--quiet",
                    "--report", str(report), *index, str(wheel)], check=True, timeout=300, env=PIP_ENV)
    items = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in items}


@pytest.mark.parametrize("kind", ["gpu", "cpu"])
def test_launching_on_colab_installs_lnbook_and_keeps_colab_s_torch(kind, wheel, tmp_path):
    python = stub_environment(tmp_path / "env", runtime(kind))
    installs = dry_run(python, wheel, tmp_path / "report.json")
    assert "lnbook" in installs, installs
    large = sorted(n for n in installs if n.startswith(LARGE))
    assert not large, f"Colab's {kind} runtime: the bootstrap would reinstall {large}"
    if kind == "gpu":  # Colab's triton 3.6.0 compiles the kernels: kept
        assert set(installs) == {"lnbook"}, installs
    else:  # no triton on the CPU runtime: one whose interpreter runs the kernels, torch untouched
        assert set(installs) == {"lnbook", "triton"}, installs
        assert tuple(map(int, installs["triton"].split(".")[:2])) >= INTERPRETER_TRITON, installs


def test_the_resolver_would_replace_a_torch_below_the_floors(wheel, tmp_path):
    """The null case: the same dry run against a torch older than pyproject's floor does reinstall torch,
    so the test above can fail. Offline: a stand-in torch at the floor is on offer (and any pip's
configuration adds)."""
    dists = runtime("gpu")
    dists["torch"] = [line.replace("Version: 2.11.0", "Version: 2.10.0") for line in dists["torch"]]
    stand_in_wheel(wheel.parent, "torch", "2.11.0", [])
    installs = dry_run(stub_environment(tmp_path / "env", dists), wheel, tmp_path / "report.json",
                       "--no-index", "--find-links", str(wheel.parent))
    assert set(installs) == {"lnbook", "torch"}, installs


def test_stand_ins_are_colab_s_versions():
    assert runtime("gpu")["torch"][:2] == ["Name: torch", "Version: 2.11.0"]
    assert "Version: 3.6.0" in runtime("gpu")["triton"] and "triton" not in runtime("cpu")
    assert not any("nvidia" in line or "triton" in line for line in runtime("cpu")["torch"])
    with pytest.raises(ValueError, match="runtime: kind: expected 'gpu' or 'cpu', got 'tpu'"):
        runtime("tpu")
