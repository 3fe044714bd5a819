"""The pages for readers of the sources: the five texts, the statements the book does not test, the
Chinese page (每条论断的判定与回答, the five sources, the terms) and the glossary. Tables as Markdown, from
:mod:`lnbook.sources`, :mod:`lnbook.glossary` and the claims' results; the pages are book/sources.ipynb,
book/zh.ipynb and book/glossary.ipynb."""

from __future__ import annotations

from lnbook import cards, claims, untested
from lnbook.glossary import CHAPTERS, TERMS
from lnbook.sources import SOURCES, VERDICTS_ZH, Anchor


def _chapter_link(chapter: str) -> str:
    return f"[{chapter}]({chapter}.ipynb)"


def _origin(s) -> str:
    """Author or origin, with the link the text gives shown by its host (a full URL does not wrap)."""
    if not s.link:
        return cards.table_cell(s.origin)
    host = s.link.split("//", 1)[-1].split("/", 1)[0]
    return f"{cards.table_cell(s.origin)} ([{host}]({s.link}))"


def sources_table() -> str:
    """The five texts: seed, title, author or origin, kind, length, the chapter that answers it."""
    rows = ["| seed | title (as the text gives it) | author or origin | kind of text | length (characters) | answered in |",
            "|---|---|---|---|---|---|"]
    for s in SOURCES.values():
        rows.append(f"| {s.seed}<br>`{s.file}` | {cards.table_cell(s.title)} | {_origin(s)} | {cards.table_cell(s.kind)} | "
                    f"{s.characters:,} | {_chapter_link(s.chapter)} |")
    return "\n".join(rows)


def anchor_cell(anchors: tuple[Anchor, ...]) -> str:
    """Anchors as one table cell: seed, heading, the phrase to search for."""
    return "<br>".join(cards.table_cell(f"{a.seed} · {a.shown_heading} · “{a.phrase}”") for a in anchors)


def untested_table() -> str:
    """Every statement the book does not test: where it is, and why not."""
    rows = ["| where (seed · heading · phrase) | why the book does not test it |", "|---|---|"]
    rows += [f"| {anchor_cell(u.anchors)} | {cards.table_cell(u.reason)} |" for u in untested.statements()]
    return "\n".join(rows)


def counts() -> dict[str, int]:
    """How many claims have anchors, how many anchors there are, how many statements are untested."""
    registry = claims.registry()
    return {"claims": len(registry), "anchored": sum(bool(c.anchors) for c in registry.values()),
            "anchors": sum(len(c.anchors) for c in registry.values()), "untested": len(untested.statements())}


def zh_verdict_table(results: list[claims.Result]) -> str:
    """每条论断：编号、出处（锚点）、判定、一句话回答 (the answer built from the same numbers as the statement)."""
    rows = ["| 编号 | 出处（种子 · 标题 · 原文短语） | 判定 | 回答 |", "|---|---|---|---|"]
    for r in results:
        c = r.claim
        rows.append(f"| {c.id} | {anchor_cell(c.anchors)} | {VERDICTS_ZH[c.verdict]} | {cards.table_cell(r.answer_zh)} |")
    return "\n".join(rows)


def zh_sources_table() -> str:
    rows = ["| 种子 | 标题 | 作者或来源 | 字数 | 对应章节 |", "|---|---|---|---|---|"]
    for s in SOURCES.values():
        rows.append(f"| {s.seed} | {cards.table_cell(s.title)} | {_origin(s)} | {s.characters:,} | {_chapter_link(s.chapter)} |")
    return "\n".join(rows)


def _chapter_number_link(chapter: str) -> str:
    """A chapter by its number, linked as the other tables link pages (a plain link, which the launch
    notebooks keep as it is: a stored output is not converted, so no ``{doc}`` role)."""
    return f"[chapter {CHAPTERS[chapter]}]({chapter}.ipynb)"


def glossary_table() -> str:
    """The glossary page: every term, in English and Chinese, its one-sentence definition and the chapter
    that first uses it, alphabetical by the English term."""
    rows = ["| term | 中文 | definition | first used in |", "|---|---|---|---|"]
    rows += [f"| {cards.table_cell(t.en)} | {cards.table_cell(t.zh)} | {cards.table_cell(t.definition)} | "
             f"{_chapter_number_link(t.chapter)} |" for t in TERMS]
    return "\n".join(rows)


def zh_glossary_table() -> str:
    """The Chinese page's terms: the glossary's English and Chinese columns, in the same order."""
    rows = ["| English | 中文 |", "|---|---|"]
    rows += [f"| {cards.table_cell(t.en)} | {cards.table_cell(t.zh)} |" for t in TERMS]
    return "\n".join(rows)


def zh_verdict_counts(results: list[claims.Result]) -> dict[str, int]:
    """How many claims have each verdict, keyed by the Chinese verdict."""
    return {VERDICTS_ZH[v]: sum(r.claim.verdict == v for r in results) for v in claims.VERDICTS}
