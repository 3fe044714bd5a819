"""Another machine, simulated. A processor with other vector units or another BLAS changes the last digits
of floating-point results, and training amplifies them into other trajectories. As a stand-in, every
training run starts one unit in the last place (ulp) away from its seeded weights
(``LNBOOK_PERTURB_INIT=1``, :func:`lnbook.experiments.common.seeded_start`): every claim must keep its
checks, and only the numbers a claim declares as ``outcomes`` of training may move.

Rerunning every training run costs as much as the training claims themselves (minutes of CPU), so the
default suite leaves it to CI: ``.ci/run`` sets ``LNBOOK_PERTURB_TEST=1`` (set it to run it here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from lnbook import claims
from lnbook.experiments import common

# Every claim, with its training runs, in one process: about 7 minutes of one idle core (2026-12-04: T07 105 s,
# W01 88 s, F11 47 s, R22 about 350 s); CI runs it beside the other half of the suite on a 2-core machine
# that is busy, where it took more than the 900 s this limit once was. The limit catches a hang, not slowness.
PERTURB_TIMEOUT_S = 3600


@pytest.fixture(scope="module")
def perturbed() -> dict[str, dict]:
    """Every claim's result with perturbed starting weights, from a fresh interpreter (the caches of this
    one hold the unperturbed runs)."""
    env = {**os.environ, common.PERTURB_ENV: "1"}
    out = subprocess.run([sys.executable, "-m", "lnbook.claims", "--json"], env=env, capture_output=True,
                         text=True, timeout=PERTURB_TIMEOUT_S)
    assert out.stdout, out.stderr[-3000:]
    return {r["id"]: r for r in json.loads(out.stdout)}


@pytest.mark.xdist_group("perturbation")
@pytest.mark.skipif(os.environ.get("LNBOOK_PERTURB_TEST") != "1",
                    reason="reruns every training run (minutes of CPU): CI runs it; set LNBOOK_PERTURB_TEST=1")
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
