"""Two runs of every claim give identical numbers: the book build's and this session's.

Each chapter of a book build records the results it shows under _build/claims/ (lnbook.claims.record).
CI builds the book with two CPU-bound processes running beside it (.ci/run); this session runs every
check again on an idle or busy machine. If any check read a clock, used unseeded randomness or
depended on the load, the two would differ. Without a build these tests skip, except under CI.
"""

from __future__ import annotations

import json

import pytest
from conftest import claim_params, missing

from lnbook import claims

REGISTRY = claims.registry()


def _record(claim_id: str) -> dict:
    folder = claims.results_dir()
    path = folder / f"{claim_id}.json" if folder else None
    if path is None or not path.is_file():
        missing(f"no recorded result of {claim_id} under {folder}: run `make book` first")
    data = json.loads(path.read_text())
    if data["fingerprint"] != claims.source_fingerprint():
        missing(f"{path} was recorded by another version of lnbook: rebuild the book")
    return data


@pytest.mark.parametrize("claim_id", claim_params())
def test_build_and_suite_compute_identical_numbers(claim_id):
    built, now = _record(claim_id), claims.run(claim_id).to_dict()
    assert built["numbers"] == now["numbers"], claim_id
    assert built["checks"] == now["checks"] and built["statement"] == now["statement"], claim_id


def test_a_record_from_another_source_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LNBOOK_RESULTS", str(tmp_path))
    result = claims.run("F02")
    claims.record(result)
    assert claims.recorded("F02").evidence == result.evidence
    data = json.loads((tmp_path / "F02.json").read_text())
    data["fingerprint"] = "0" * 64
    (tmp_path / "F02.json").write_text(json.dumps(data))
    assert claims.recorded("F02") is None


def test_built_ledger_runs_what_no_chapter_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("LNBOOK_RESULTS", str(tmp_path))  # empty: nothing recorded
    monkeypatch.setattr(claims, "registry", lambda: {"F02": REGISTRY["F02"]})
    assert [r.claim.id for r in claims.built_ledger()] == ["F02"]
