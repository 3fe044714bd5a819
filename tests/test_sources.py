"""Readers of the sources: every claim points to the sentences it answers (anchors), says it in Chinese
too, and the statements the book does not test are listed with their reasons (issue 20).

These tests run offline: the seeds themselves live outside the repository, and
``../shared/tools/anchors.py`` checks during development that each phrase occurs in its seed under its
heading (CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
import string

import pytest

from lnbook import claims, readers, sources, untested
from lnbook.sources import PHRASE_MAX, SOURCES, VERDICTS_ZH, Anchor

REGISTRY = claims.registry()
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_claim_points_to_at_least_one_sentence_of_its_chapter_s_seed():
    missing = [id for id, c in REGISTRY.items() if not c.anchors]
    assert not missing, f"claims without anchors: {missing}"
    for id, c in REGISTRY.items():
        seeds = {a.seed for a in c.anchors}
        chapter = claims.chapter_of(c).removeprefix("book/")
        own = {s.seed for s in SOURCES.values() if s.chapter == chapter}
        # The kernels chapter answers seed 004's implementation sections; every other chapter its own seed.
        assert seeds & (own or {"004"}), f"{id}: anchors in seeds {seeds}, none in its chapter's ({chapter})"


def test_every_claim_answers_in_chinese_opening_with_its_verdict():
    for id, c in REGISTRY.items():
        assert c.answer_zh.startswith(VERDICTS_ZH[c.verdict]), f"{id}: answer_zh {c.answer_zh[:20]!r}"
        assert CJK.search(c.answer_zh[len(VERDICTS_ZH[c.verdict]):]), f"{id}: the answer after the verdict is not Chinese"
        fields = set(claims._fields(c.answer_zh))
        assert fields <= set(claims._fields(c.statement)), \
            f"{id}: answer_zh quotes {sorted(fields - set(claims._fields(c.statement)))}, which the statement does not"


def test_a_chinese_answer_formats_from_the_same_numbers_as_the_statement():
    """Each number the Chinese answer quotes is printed there as the English statement prints it."""
    result = claims.run("M01")
    fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(result.claim.answer_zh) if name]
    assert fields, "M01's answer quotes no number: the test proves nothing"
    for name, spec in fields:
        printed = claims.READER.format_field(result.evidence.numbers[name], spec)
        assert printed in result.answer_zh and printed in result.statement, f"{name}: {printed}"
    assert "{" not in result.answer_zh
    assert result.to_dict()["answer_zh"] == result.answer_zh


@pytest.mark.parametrize(("args", "match"), [
    (("007", "h", "p"), "seed: expected one of"),
    (("004", "", "p"), "heading: expected a non-empty string"),
    (("004", "h", "x" * (PHRASE_MAX + 1)), f"phrase: expected at most {PHRASE_MAX} characters, got {PHRASE_MAX + 1}"),
    (("004", "h", "**LN**"), "without markup"),
])
def test_a_bad_anchor_is_refused_naming_what_is_wrong(args, match):
    with pytest.raises(ValueError, match=match):
        Anchor(*args)


def test_a_claim_without_anchors_or_with_a_chinese_answer_of_another_verdict_is_refused():
    anchor = (("000", "1. 为什么需要归一化？（背景）", "归一化"),)
    with pytest.raises(ValueError, match="answer_zh: expected it to open with '成立'"):
        claims.claim("F99", anchors=anchor, claim="c", statement="Holds.", verdict="holds", answer_zh="不成立。")(lambda: None)
    with pytest.raises(ValueError, match="claim F99: anchors: expected one or more"):
        claims.claim("F99", anchors=(), claim="c", statement="Holds.", verdict="holds")(lambda: None)
    assert "F99" not in claims._REGISTRY


def test_untested_statements_have_anchors_and_a_reason():
    listed = untested.statements()
    for u in listed:
        assert u.anchors and u.reason.strip()
    with pytest.raises(ValueError, match="untested: reason"):
        sources.untested(("004", "h", "p"), reason=" ")
    with pytest.raises(ValueError, match="untested: anchors"):
        sources.Untested((), "a reason")


def test_cli_prints_anchors_and_the_untested_list_without_running_checks(capsys):
    assert claims.main(["--json", "--no-run"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == list(REGISTRY)
    assert all({"seed", "heading", "phrase"} == set(a) for r in rows for a in r["anchors"])
    assert claims.main(["--json", "--untested"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed) == len(untested.statements()) and all(set(u) == {"anchors", "reason"} for u in printed)
    with pytest.raises(SystemExit):
        claims.main(["--untested"])  # JSON only: argparse names the missing --json


def test_cli_json_of_a_run_carries_the_anchors(capsys):
    assert claims.main(["--json", "F01"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["anchors"] == [a.to_dict() for a in REGISTRY["F01"].anchors]


def test_the_sources_page_names_five_texts_and_the_chinese_page_every_claim():
    table = readers.sources_table().splitlines()
    assert len(table) == 2 + len(SOURCES) == 7
    assert any("Cv大法代码酱" in row and "zhihu.com" in row for row in table)
    assert any("自动生成" in row for row in table)  # seed 004 says it was generated automatically
    results = [claims.run(id) for id in ("F01", "M01")]
    rows = readers.zh_verdict_table(results).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| F01", "| M01"]
    assert all(VERDICTS_ZH[r.claim.verdict] in row for r, row in zip(results, rows))
    assert sum(readers.zh_verdict_counts(results).values()) == 2

