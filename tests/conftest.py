"""Shared test setup: claim IDs as parameters grouped for pytest-xdist, and what a test does when the
built book or the browser is missing.

The suite runs on two processes (pytest-xdist, ``--dist loadgroup`` in pyproject.toml). Each process
keeps its own cache of claim results, so every test about one claim carries that claim's group and
runs in the same process: each check runs once per session. Claims whose checks share a cached
computation share a group.
"""

import contextlib
import importlib.util
import os

import pytest

# lnbook.kernels before any test module imports triton (test_aot.py does): without CUDA it switches
# Triton to its interpreter, which Triton reads once, when it is first imported (lnbook.kernels.runtime).
from lnbook import claims, kernels
from tools import browser as browser_tool

# Claims that reuse another's cached computation, by the ID whose group they join.
SHARED = {"T08": "T07", "R23": "R05", "W02": "F11", "R08": "R07"}


def claim_params() -> list:
    """Every registered claim ID as a pytest parameter in its xdist group."""
    return [pytest.param(cid, marks=pytest.mark.xdist_group(f"claim-{SHARED.get(cid, cid)}"))
            for cid in claims.registry()]


def missing(what: str) -> None:
    """Skip a test whose input is not here (the built book, Chromium), saying what; under CI, which
    builds the book and installs Chromium and the test extra first, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI builds the book and installs Chromium and the test extra before the tests)")
    pytest.skip(what)


@contextlib.contextmanager
def chromium(*args: str):
    """tools/browser.py's headless Chromium, or :func:`missing` when it or Playwright is not installed."""
    if browser_tool.chromium_path() is None:
        missing(browser_tool.MISSING)
    if importlib.util.find_spec("playwright") is None:
        missing("no Playwright (the test extra)")
    with browser_tool.chromium(*args) as browser:
        yield browser


# Test modules that run the Triton kernels through the CPU interpreter (without CUDA): marked
# `interpreter` and skipped where this Triton's interpreter cannot run them (below
# lnbook.kernels.INTERPRETER_TRITON, as at the floors: `make floors`). On a GPU they run compiled.
INTERPRETER_MODULES = {"test_kernels.py", "test_kernel_lessons.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in INTERPRETER_MODULES:
            item.add_marker(pytest.mark.interpreter)
        if not kernels.RUNNABLE and item.get_closest_marker("interpreter"):
            item.add_marker(pytest.mark.skip(reason=kernels.UNAVAILABLE))
