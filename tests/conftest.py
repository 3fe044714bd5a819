"""Shared test setup: tools/ on the path, and claim IDs as parameters grouped for pytest-xdist.

The suite runs on two processes (pytest-xdist, ``--dist loadgroup`` in pyproject.toml). Each process
keeps its own cache of claim results, so every test about one claim carries that claim's group and
runs in the same process: each check runs once per session. Claims whose checks share a cached
computation share a group.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))

from lnbook import claims  # noqa: E402  (after the path set-up, as tools/ must come first)

# Claims that reuse another's cached computation, by the ID whose group they join.
SHARED = {"T08": "T07", "R23": "R05", "W02": "F11", "R08": "R07"}


def claim_params() -> list:
    """Every registered claim ID as a pytest parameter in its xdist group."""
    return [pytest.param(cid, marks=pytest.mark.xdist_group(f"claim-{SHARED.get(cid, cid)}"))
            for cid in claims.registry()]
