"""One test per registered claim: its check must pass, and the registry must be complete and sound."""

from __future__ import annotations

import json
import math
import pathlib
import re
import subprocess
import sys

import pytest

from lnbook import claims

INVENTORY = pathlib.Path(__file__).resolve().parents[2] / "shared" / "claims-inventory.md"
REGISTRY = claims.registry()

result_of = claims.run  # cached: each check runs once per test session


@pytest.mark.parametrize("claim_id", list(REGISTRY))
def test_claim(claim_id):
    result = result_of(claim_id)
    failed = [name for name, ok in result.evidence.checks.items() if not ok]
    assert not failed, f"{claim_id}: failed checks {failed}; numbers {result.evidence.numbers}"
    assert result.evidence.checks, f"{claim_id}: a claim without checks asserts nothing"


@pytest.mark.parametrize("claim_id", list(REGISTRY))
def test_numbers_are_plain_python(claim_id):
    # Glue and JSON want plain floats: NumPy/torch scalars format poorly and do not serialize.
    result = result_of(claim_id)
    for name, value in result.evidence.numbers.items():
        assert type(value) in (float, int, str), f"{claim_id}.{name} is {type(value).__name__}"
        # NaN or inf would make --json invalid JSON (json.dumps writes a bare NaN).
        assert not isinstance(value, float) or math.isfinite(value), f"{claim_id}.{name} = {value}"
    assert all(type(ok) is bool for ok in result.evidence.checks.values())


@pytest.mark.skipif(not INVENTORY.exists(), reason="shared/claims-inventory.md is not beside this checkout")
def test_every_f_claim_of_the_inventory_is_registered():
    ids = set(re.findall(r"^\| (F\d\d) \|", INVENTORY.read_text(), re.M))
    assert ids, "no F-claims found in the inventory: has its format changed?"
    assert ids <= set(REGISTRY), f"not registered: {sorted(ids - set(REGISTRY))}"


def test_registry_entries_are_well_formed():
    for c in REGISTRY.values():
        assert c.verdict in claims.VERDICTS
        assert c.source and c.claim and c.statement
        assert c.statement[0].isupper(), f"{c.id}: the statement should be a sentence"


def test_registration_rejects_bad_verdict_and_id():
    with pytest.raises(ValueError, match=r"verdict: expected one of .* got 'true'"):
        claims.claim("F99", source="x", claim="x", statement="x", verdict="true")
    with pytest.raises(ValueError, match=r"claim id: expected .* got 'X1'"):
        claims.claim("X1", source="x", claim="x", statement="x", verdict="holds")


def test_run_rejects_unknown_id():
    with pytest.raises(KeyError, match=r"got 'Z00'"):
        claims.run("Z00")


def test_statement_missing_number_is_an_error(monkeypatch):
    bad = claims.Claim("F98", "s", "c", "Uses {absent}.", "holds", lambda: claims.Evidence({"x": 1.0}, {"ok": True}))
    monkeypatch.setitem(claims._REGISTRY, "F98", bad)
    with pytest.raises(KeyError, match="absent"):
        claims.run("F98")


def test_evidence_without_checks_does_not_pass():
    assert not claims.Evidence({"x": 1.0}, {}).passed
    assert not claims.Evidence({"x": 1.0}, {"a": True, "b": False}).passed


def test_cli_entry_point_runs():
    # The documented command in a fresh interpreter (one cheap claim: the entry point is under test here).
    out = subprocess.run([sys.executable, "-m", "lnbook.claims", "--json", "F02"],
                         capture_output=True, text=True, check=True).stdout
    assert [r["id"] for r in json.loads(out)] == ["F02"]


def test_cli_json_lists_every_claim_with_numbers(capsys):
    assert claims.main(["--json"]) == 0  # exit status 0 means every claim passed
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == list(REGISTRY)
    for row in rows:
        assert {"id", "source", "verdict", "statement", "numbers", "passed"} <= set(row)
        assert row["passed"] is True and row["numbers"], row["id"]


def test_cli_exit_status_reports_a_failing_claim(monkeypatch, capsys):
    failing = claims.Claim("F97", "s", "c", "Fails.", "holds", lambda: claims.Evidence({"x": 1.0}, {"ok": False}))
    monkeypatch.setitem(claims._REGISTRY, "F97", failing)
    assert claims.main(["F97"]) == 1
    assert "failed checks: ok" in capsys.readouterr().out


def test_cli_table_and_markdown_render():
    results = [result_of("F02")]
    assert re.search(r"^F02 +PASS +3/3 +holds ", claims.text_table(results), re.M)
    table = claims.markdown_table(results)
    assert table.count("\n") == 2 and "| F02 |" in table
    card = claims.markdown_card(results[0])
    assert card.startswith("```{admonition} F02 · holds") and card.rstrip().endswith("```")
