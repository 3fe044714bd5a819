"""One test per registered claim: its check must pass, and the registry must be complete and sound."""

from __future__ import annotations

import inspect
import json
import math
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import claim_params

from lnbook import cards, claims

ROOT = pathlib.Path(__file__).resolve().parents[1]

REGISTRY = claims.registry()
A = (("000", "1. 为什么需要归一化？（背景）", "归一化"),)  # an anchor for the throwaway claims of these tests

result_of = claims.run  # cached: each check runs once per test session


@pytest.mark.parametrize("claim_id", claim_params())
def test_claim(claim_id):
    result = result_of(claim_id)
    failed = [name for name, ok in result.evidence.checks.items() if not ok]
    assert not failed, f"{claim_id}: failed checks {failed}; numbers {result.evidence.numbers}"
    assert result.evidence.checks, f"{claim_id}: a claim without checks asserts nothing"


@pytest.mark.parametrize("claim_id", claim_params())
def test_the_decision_rejects_a_world_without_the_effect(claim_id):
    """The null case: the claim's decision, handed the numbers of a world where the claim's effect is absent
    or reversed (its ``null``), fails; handed the measured numbers, it gives the checks the card shows."""
    result = result_of(claim_id)
    c, measured = result.claim, result.evidence.numbers
    assert c.decide is not None and c.null is not None, f"{claim_id}: register decide= and null= with the claim"
    assert c.decide(dict(measured)) == result.evidence.checks
    world = c.null(dict(measured))
    assert set(world) == set(measured), f"{claim_id}: the null world names other numbers"
    changed = {k: (measured[k], world[k]) for k in measured if world[k] != measured[k]}
    assert changed, f"{claim_id}: the null world is the measured one"
    checks = c.decide(world)
    assert set(checks) == set(result.evidence.checks)
    assert not all(checks.values()), f"{claim_id}: the decision accepts the null world {changed}"


@pytest.mark.parametrize("claim_id", claim_params())
def test_numbers_are_plain_python(claim_id):
    # Glue and JSON want plain floats: NumPy/torch scalars format poorly and do not serialize.
    result = result_of(claim_id)
    for name, value in result.evidence.numbers.items():
        assert type(value) in (float, int, str), f"{claim_id}.{name} is {type(value).__name__}"
        # NaN or inf would make --json invalid JSON (json.dumps writes a bare NaN).
        assert not isinstance(value, float) or math.isfinite(value), f"{claim_id}.{name} = {value}"
    assert all(type(ok) is bool for ok in result.evidence.checks.values())


#: A card's sentence carries "about five" numbers at most (issue 22): six leaves room for a mean with its
#: spread and seed count beside one comparison; the rest sit in the card's evidence table.
MAX_NUMBERS = 6


@pytest.mark.parametrize("claim_id", claim_params())
def test_a_card_s_sentence_carries_about_five_numbers_at_most(claim_id):
    fields = claims._fields(claims.registry()[claim_id].statement)
    assert len(fields) <= MAX_NUMBERS, f"{claim_id}: {len(fields)} numbers in its sentence: {fields}"


def test_registry_entries_are_well_formed():
    for c in REGISTRY.values():
        assert c.verdict in claims.VERDICTS
        assert c.anchors and c.claim and c.statement
        assert c.statement[0].isupper(), f"{c.id}: the statement should be a sentence"


@pytest.mark.parametrize("claim_id", claim_params())
def test_card_label_colour_and_opening_words_agree_with_the_verdict(claim_id):
    result = result_of(claim_id)
    verdict, style = result.claim.verdict, cards.STYLES[result.claim.verdict]
    card = cards.markdown_card(result)
    title, options = card.splitlines()[:2]
    assert re.fullmatch(rf"`{{3,}}\{{admonition\}} {claim_id} · {verdict}", title), title
    assert options.split()[1] == style.admonition  # the colour the site shows
    html = cards.html_card(result)
    assert f"border-left:6px solid {style.colour}" in html and f"{claim_id} · {verdict}" in html
    assert result.statement.startswith(claims.OPENING[verdict]), result.statement[:60]
    assert claims.opens_with_verdict(result.statement, verdict)
    row = next(line for line in cards.markdown_table([result]).splitlines() if line.startswith(f"| {claim_id} |"))
    assert f"| {verdict} |" in row  # the ledger says the same


def test_every_verdict_has_its_own_colour_and_words():
    assert set(cards.STYLES) == set(claims.VERDICTS) and len(claims.VERDICTS) == 4
    assert len({s.admonition for s in cards.STYLES.values()}) == 4
    assert len({s.colour for s in cards.STYLES.values()}) == 4
    assert all(words.lower() == v for v, words in claims.OPENING.items()) and set(claims.OPENING) == set(cards.STYLES)


def contrast(a: str, b: str) -> float:
    """WCAG's contrast ratio of two ``#rrggbb`` colours."""
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_card_labels_and_text_read_on_the_card_s_background():
    # 4.5: WCAG AA for text of normal size, which the HTML card's bold label is (tests/test_launch_site.py
    # measures the rendered cards; this holds without a browser). Null case: the amber the label had before.
    assert contrast("#000000", "#ffffff") == pytest.approx(21) and contrast("#b26a00", "#fff6e5") < 4.5
    for verdict, style in cards.STYLES.items():
        assert contrast(style.colour, style.background) >= 4.5, verdict
        assert contrast(cards.INK, style.background) >= 4.5, verdict


@pytest.mark.parametrize(("statement", "verdict", "ok"), [
    ("Holds: x.", "holds", True), ("Holds under conditions: x.", "holds", False),
    ("Holds under conditions: x.", "holds under conditions", True), ("Holds for y.", "holds under conditions", False),
    ("Does not hold: x.", "does not hold", True), ("Not established: x.", "not established", True),
    ("Not a fixed number.", "does not hold", False), ("The formula holds.", "holds", False)])
def test_opening_words(statement, verdict, ok):
    assert claims.opens_with_verdict(statement, verdict) is ok


def test_registration_rejects_a_bad_kind_or_a_decision_without_null():
    with pytest.raises(ValueError, match=r"claim F99: kind: expected one of .* got 'guess'"):
        claims.claim("F99", anchors=A, claim="x", statement="Holds.", verdict="holds", kind="guess")
    with pytest.raises(ValueError, match=r"claim F99: assumptions: expected them for a model"):
        claims.claim("F99", anchors=A, claim="x", statement="Holds.", verdict="holds", kind="model")
    with pytest.raises(ValueError, match=r"claim F99: null: expected a null world with the decision"):
        claims.claim("F99", anchors=A, claim="x", statement="Holds.", verdict="holds", decide=lambda n: {})


def test_a_decided_claim_measures_then_decides(monkeypatch):
    monkeypatch.setattr(claims, "_REGISTRY", {})
    claims.claim("F97", anchors=A, claim="x", statement="Holds: {a}.", verdict="holds",
                 decide=lambda n: {"positive": n["a"] > 0}, null=lambda n: {**n, "a": -1.0})(lambda: {"a": 2.0})
    result = claims.run.__wrapped__("F97")
    assert result.evidence.checks == {"positive": True} and result.statement == "Holds: 2.0."
    assert result.claim.decide(result.claim.null({"a": 2.0})) == {"positive": False}


def test_outcomes_name_measured_numbers(monkeypatch):
    monkeypatch.setattr(claims, "_REGISTRY", {})
    claims.claim("F96", anchors=A, claim="x", statement="Holds.", verdict="holds", outcomes=("loss",),
                 decide=lambda n: {"ok": True}, null=lambda n: n)(lambda: {"a": 1.0})
    with pytest.raises(KeyError, match=r"outcomes name \['loss'\]"):
        claims.run.__wrapped__("F96")


def test_registration_rejects_bad_verdict_id_and_opening():
    with pytest.raises(ValueError, match=r"verdict: expected one of .* got 'true'"):
        claims.claim("F99", anchors=A, claim="x", statement="x", verdict="true")
    with pytest.raises(ValueError, match=r"claim F99: statement: expected it to open with 'Does not hold' .*got 'Holds, mostly.'"):
        claims.claim("F99", anchors=A, claim="x", statement="Holds, mostly.", verdict="does not hold")
    with pytest.raises(ValueError, match=r"claim id: expected .* got 'X1'"):
        claims.claim("X1", anchors=A, claim="x", statement="Holds.", verdict="holds")


def test_run_rejects_unknown_id():
    with pytest.raises(KeyError, match=r"got 'Z00'"):
        claims.run("Z00")


def test_statement_missing_number_is_an_error(monkeypatch):
    bad = claims.Claim("F98", "c", "Uses {absent}.", "holds", lambda: claims.Evidence({"x": 1.0}, {"ok": True}))
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


def test_the_registry_finds_the_chapters_through_the_entry_point_alone():
    # A fresh interpreter that imports lnbook.claims only: the registry loads lnbook.experiments through the
    # installed entry point (the ground floor never names the top floor). Null case: the same interpreter
    # with no entry point registered finds no claim, and says how to register them instead of answering {}.
    probe = ("import sys, importlib.metadata as m\n"
             "if sys.argv[1] == 'none': m.entry_points = lambda group: []\n"
             "from lnbook import claims\n"
             "try:\n    print(len(claims.registry()), 'lnbook.experiments' in sys.modules)\n"
             "except LookupError as e:\n    print('LookupError', e)\n")
    found, none = (subprocess.run([sys.executable, "-c", probe, arg], capture_output=True, text=True, check=True).stdout
                   for arg in ("installed", "none"))
    assert found.split() == [str(len(claims.registry())), "True"]
    assert none.startswith("LookupError") and "import lnbook.experiments" in none


def test_cli_json_lists_the_claims_asked_for_with_numbers(capsys):
    assert claims.main(["--json", "F02", "M01"]) == 0  # exit status 0 means every claim passed
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["F02", "M01"]
    for row in rows:
        assert {"id", "anchors", "verdict", "statement", "numbers", "passed"} <= set(row)
        assert row["passed"] is True and row["numbers"], row["id"]


def test_cli_without_ids_runs_the_whole_registry_in_book_order(monkeypatch, capsys):
    # Every claim's own test runs its check; here only the selection is under test.
    asked = []
    monkeypatch.setattr(claims, "run", lambda id: asked.append(id) or result_of("F02"))
    assert claims.main(["--json"]) == 0
    assert asked == list(REGISTRY)


def test_cli_exit_status_reports_a_failing_claim(monkeypatch, capsys):
    failing = claims.Claim("F97", "c", "Fails.", "holds", lambda: claims.Evidence({"x": 1.0}, {"ok": False}))
    monkeypatch.setitem(claims._REGISTRY, "F97", failing)
    assert claims.main(["F97"]) == 1
    assert "failed checks: ok" in capsys.readouterr().out


def test_cli_table_and_markdown_render():
    results = [result_of("F02")]
    assert re.search(r"^F02 +PASS +3/3 +holds ", claims.text_table(results), re.M)
    table = cards.markdown_table(results)
    assert table.count("\n") == 2 and "| F02 |" in table
    card = cards.markdown_card(results[0])
    fence = re.match(r"`{3,}", card).group(0)
    assert card.startswith(f"{fence}{{admonition}} F02 · holds") and card.rstrip().endswith("\n" + fence)


def test_every_card_unfolds_the_code_that_decided_it():
    """Every registered claim's listing is its decorated check as written in lib/ (the @claim with its
    decision and null world, then the measuring function), named by module and line."""
    for cid, c in claims.registry().items():
        where, source = cards.evidence_listing(c)
        measure = getattr(c.check, "__wrapped__", c.check)
        module, line = where.split(", line ")
        path = ROOT / "lib" / (module.replace(".", "/") + ".py")
        n = len(inspect.getsourcelines(measure)[0])
        assert source.splitlines()[:n] == path.read_text().splitlines()[int(line) - 1:int(line) - 1 + n], cid
        assert source.startswith("@claim(") and f'"{cid}"' in source.splitlines()[1], cid
        assert f"def {measure.__name__}(" in source, cid
        assert ("decide=" in source) == (c.decide is not None), cid


def test_a_named_decision_is_listed_beside_its_check():
    named = [c for c in claims.registry().values() if c.decide is not None and c.decide.__name__ != "<lambda>"]
    assert named, "no claim with a named decision: the test proves nothing"
    for c in named:
        assert f"def {c.decide.__name__}(" in cards.evidence_listing(c)[1], c.id


def test_the_card_contract_is_one_call_in_a_cell_of_its_own_with_either_quote():
    assert cards.cards_in(["cards.show('F01');", 'cards.show("M02")', "x = 1"]) == ["F01", "M02"]
    assert cards.card_call("cards.show('F01'); x = 1") is None  # a card cell holds the call alone
    assert cards.card_call("cards.show('Q01');") is None  # Q is no chapter's letter


def test_numbers_are_written_as_a_reader_writes_them():
    assert [claims.as_written(t) for t in ("2.3e-06", "1e-05", "1.5e+04", "-0.498", "0.25")] == \
        ["2.3×10⁻⁶", "10⁻⁵", "1.5×10⁴", "−0.498", "0.25"]
    assert claims.READER.format("{a:.2g}, {b}, {s}", a=2.3e-6, b=-3, s="x-1e-05") == "2.3×10⁻⁶, −3, x-1e-05"
    assert cards.format_number(1.72e-6) == "1.72×10⁻⁶" and cards.format_number(True) == "True"


def test_card_folds_its_evidence_and_its_check_in_markdown_and_html():
    result = result_of("F02")
    card = cards.markdown_card(result)
    assert card.count(":class: dropdown") == 2 and "```python\n@claim(\n    \"F02\"" in card
    assert "lnbook.experiments.foundations, line " in card and "[**Source**](sources.ipynb)" in card
    html = cards.html_card(result)
    assert html.count("<details") == 2 and "\n" not in html, "one line: a blank line ends a Markdown cell's HTML"
    assert "def f02()" in re.sub(r"<[^>]+>", "", html).replace("&#10;", "\n")
    # Fences outgrow the backticks inside: a source that holds ``` gets a longer code fence.
    assert cards._fence("a ```` b") == "`````" and cards._fence("plain") == "```"


def test_card_displays_as_myst_for_the_book_and_html_for_jupyter():
    card = cards.Card(result_of("F02"))
    assert card._repr_markdown_() == cards.markdown_card(card.result)
    html = card._repr_html_()
    assert html.startswith('<div class="claim-card"') and "```" not in html and ":class:" not in html
    assert repr(card).startswith("F02 · holds: Holds")


def test_html_card_escapes_markup():
    bad = claims.Claim("F96", "a < b & c", "Holds: <script>.", "holds", lambda: claims.Evidence({"x": 1.0}, {"ok": True}))
    html = cards.html_card(claims.Result(bad, bad.check()))
    assert "<script>" not in html and "&lt;script&gt;" in html and "a &lt; b &amp; c" in html


def test_card_is_anchored_and_shows_its_evidence_as_a_table():
    result = result_of("F02")
    card = cards.markdown_card(result)
    assert ":name: claim-f02" in card.splitlines()[2]
    assert "| quantity | value |" in card
    for name, value in result.evidence.numbers.items():
        assert f"| {cards.number_label(name)} | {cards.format_number(value)} |" in card
    assert cards.number_label("ln_batch_diff") == "LayerNorm batch difference"
    assert cards.number_label("gnc_vs_in") == "GroupNorm (C groups) vs. InstanceNorm"
    assert cards.number_label("ln_bf16_input") == "LayerNorm bfloat16 input"
    assert cards.number_label("fit_ratio_gmean") == "fit ratio geometric mean"
    assert cards.number_label("rel_err_eps0") == "relative error (ε = 0)"
    assert 'id="claim-f02"' in cards.html_card(result)
    assert cards.card_anchor("F02") == "claim-f02" and cards.ledger_anchor("F02") == "ledger-f02"


def test_ledger_table_has_no_symbols_and_one_row_per_claim():
    table = cards.markdown_table([result_of("F02"), result_of("M01")])
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["F02", "M01"]
    assert "✓" not in table and "3/3 passed" in table


def test_chapters_partition_the_registry():
    chapters = claims.chapters()
    assert chapters == sorted(chapters) and len(chapters) == 6  # book/01_… to book/06_…
    results = [result_of("F02"), result_of("M01")]
    assert [r.claim.id for r in claims.in_chapter(results, "book/02_principles")] == ["M01"]
    assert sum(sum(1 for c in REGISTRY.values() if claims.chapter_of(c) == ch) for ch in chapters) == len(REGISTRY)


@pytest.mark.parametrize("chapter", claims.chapters())
def test_verdict_summary_counts_and_names_every_claim_of_its_chapter(chapter):
    summary = cards.verdict_summary(chapter)
    mine = [c for c in REGISTRY.values() if claims.chapter_of(c) == chapter]
    assert f"{len(mine)} in all" in summary
    assert sorted(re.findall(r"\b[FMTWR]\d\d\b", summary)) == sorted(c.id for c in mine)
    counts = {v: sum(c.verdict == v for c in mine) for v in claims.VERDICTS}
    found = {int(n) for n in re.findall(r"\*\*(\d+) ", summary)}
    assert found == {n for n in counts.values() if n}


def test_verdict_summary_rejects_an_unknown_chapter():
    with pytest.raises(ValueError, match=r"chapter: expected one of .* got 'book/99_none'"):
        cards.verdict_summary("book/99_none")


def test_listing_is_a_highlighted_python_block():
    listing = cards.Listing(cards.card_anchor, cards.ledger_anchor)
    text = listing._repr_markdown_()
    assert text.startswith("```python\ndef card_anchor(") and text.endswith("\n```")
    assert "def ledger_anchor(" in text and repr(listing).startswith("def card_anchor(")
