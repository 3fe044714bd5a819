"""Another machine, simulated. A processor with other vector units or another BLAS changes the last digits
of floating-point results, and training amplifies them into other trajectories. As a stand-in, every
training run starts one unit in the last place (ulp) away from its seeded weights
(``LNBOOK_PERTURB_INIT=1``, :func:`lnbook.experiments.common.seeded_start`): every claim must keep its
checks, and only the numbers a claim declares as ``outcomes`` of training may move."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from lnbook import claims
from lnbook.experiments import common


@pytest.fixture(scope="module")
def perturbed() -> dict[str, dict]:
    """Every claim's result with perturbed starting weights, from a fresh interpreter (the caches of this
    one hold the unperturbed runs)."""
    env = {**os.environ, common.PERTURB_ENV: "1"}
    out = subprocess.run([sys.executable, "-m", "lnbook.claims", "--json"], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.stdout, out.stderr[-3000:]
    return {r["id"]: r for r in json.loads(out.stdout)}


@pytest.mark.xdist_group("perturbation")
def test_one_ulp_at_the_start_changes_no_check_and_moves_only_outcomes(perturbed):
    moved_any = []
    for cid, c in claims.registry().items():
        base = claims.recorded(cid) or claims.run(cid)
        now = perturbed[cid]
        assert now["checks"] == base.evidence.checks, f"{cid}: a check flips on another machine"
        assert now["verdict"] == c.verdict
        moved = sorted(k for k, v in base.evidence.numbers.items() if now["numbers"][k] != v)
        assert set(moved) <= set(c.outcomes), f"{cid}: {moved} move with the start but are not declared outcomes"
        moved_any += moved
    # The null case of this test: a perturbation that reached no training run would prove nothing.
    assert len(moved_any) >= 10, f"the perturbation moved only {moved_any}"


def test_seeded_start_moves_each_weight_by_one_ulp(monkeypatch):
    w = torch.tensor([1.0, -2.0, 0.0, 3e-8], dtype=torch.float32)
    monkeypatch.delenv(common.PERTURB_ENV, raising=False)
    assert torch.equal(common.seeded_start(w.clone()), w)  # off: the seeded weights as they are
    monkeypatch.setenv(common.PERTURB_ENV, "1")
    layer = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in layer.parameters()]
    common.seeded_start(layer)
    for b, p in zip(before, layer.parameters()):
        assert torch.equal(p.detach(), torch.nextafter(b, torch.full_like(b, float("inf"))))
    nudged = common.seeded_start(w.clone())
    assert (nudged > w).all() and torch.equal(torch.nextafter(w, nudged), nudged)  # one step, no more
