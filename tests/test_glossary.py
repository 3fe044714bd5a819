"""One glossary for the whole book (issue 22): every term once, in English and Chinese, defined in one
sentence and tied to the chapter where a reader first meets it; the glossary page and the Chinese page
render the same list."""

from __future__ import annotations

import pathlib
import re

import pytest

from lnbook import glossary, readers
from lnbook.glossary import CHAPTERS, TERMS, Term

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The jargon the chapters use before issue 22 defined it (the list and its brief), each the start of
# a word in some English term.
JARGON = ("roofline", "memory-bound", "machine balance", "arithmetic intensity", "ulp", "unit in the last place",
          "Chan's update", "Welford's algorithm", "cp.async", "circular law", "Weyl's inequality",
          "He initialization", "tensor core", "CUDA core", "streaming multiprocessor", "SM", "L2 cache", "warp",
          "program (Triton)", "bfloat16", "float16", "float32", "Lipschitz", "effective learning rate",
          "weight decay", "residual stream", "autograd")


def test_the_chapters_are_the_book_s():
    assert sorted(CHAPTERS) == sorted(p.stem for p in (ROOT / "book").glob("0[0-9]_*.ipynb"))
    assert sorted(CHAPTERS.values()) == [int(name[:2]) for name in sorted(CHAPTERS)]


def test_every_term_once_in_english_and_in_chinese():
    english = [t.en.casefold() for t in TERMS]
    chinese = [t.zh for t in TERMS]
    assert len(english) == len(set(english)), sorted({e for e in english if english.count(e) > 1})
    assert len(chinese) == len(set(chinese)), sorted({z for z in chinese if chinese.count(z) > 1})
    assert all(glossary.CJK.search(t.zh) for t in TERMS)
    assert len(TERMS) >= 39 + len(JARGON) - 4  # the 39 terms of the Chinese page, and the jargon (some share a term)


def test_every_definition_is_one_sentence_ending_with_a_period():
    for t in TERMS:
        assert t.definition.endswith(".") and t.definition[0].isupper(), t.en
        assert not glossary.SENTENCE_BREAK.search(t.definition), f"{t.en}: more than one sentence"
        assert len(t.definition) <= 300, f"{t.en}: a definition is one plain sentence"


def test_every_chapter_is_a_page_of_the_book():
    for t in TERMS:
        assert (ROOT / "book" / f"{t.chapter}.ipynb").is_file(), t.en


def test_terms_are_sorted_for_readers():
    key = [glossary.sort_key(t) for t in TERMS]
    assert key == sorted(key) and key == [t.en.lower().replace("²", "2") for t in TERMS]
    r2, random = (Term(en, "术语", "A term.", "05_residual") for en in ("R² x", "random"))
    assert glossary.sort_key(r2) < glossary.sort_key(random)


@pytest.mark.parametrize("word", JARGON)
def test_the_jargon_is_defined(word):
    starts = re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w])", re.I if word != "SM" else 0)
    assert any(starts.search(t.en) for t in TERMS), f"no glossary term for {word!r}"


def test_a_term_is_checked_when_made():
    good = dict(en="warp", zh="线程束", definition="A group of 32 threads.", chapter="06_kernels")
    Term(**good)
    for field, value, message in (("zh", "warp", "Chinese"), ("definition", "Two. Sentences.", "one sentence"),
                                  ("definition", "no period", "one sentence"), ("chapter", "07_more", "chapter"),
                                  ("en", " warp", "non-empty")):
        with pytest.raises(ValueError, match=message):
            Term(**{**good, field: value})


def test_the_glossary_page_shows_every_term_in_a_row_of_its_own():
    rows = readers.glossary_table().splitlines()
    assert rows[0] == "| term | 中文 | definition | first used in |" and len(rows) == 2 + len(TERMS)
    for t, row in zip(TERMS, rows[2:]):
        assert row.startswith(f"| {t.en} | {t.zh} | {t.definition} | ")
        assert row.endswith(f"[chapter {CHAPTERS[t.chapter]}]({t.chapter}.ipynb) |")
        assert row.count(" | ") == 3  # no unescaped pipe inside a cell


def test_the_chinese_page_shows_the_same_terms():
    rows = readers.zh_glossary_table().splitlines()
    assert rows[0] == "| English | 中文 |" and rows[2:] == [f"| {t.en} | {t.zh} |" for t in TERMS]


def test_both_pages_show_the_tables_and_the_glossary_is_in_the_toc():
    import json

    def code(name):
        cells = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())["cells"]
        return [c for c in cells if c["cell_type"] == "code"]

    (table,) = [c for c in code("glossary") if "glossary_table()" in "".join(c["source"])]
    assert {"remove-input", "launch-stored"} <= set(table["metadata"]["tags"])
    assert any("zh_glossary_table()" in "".join(c["source"]) for c in code("zh"))
    toc = (ROOT / "_toc.yml").read_text()
    assert toc.index("file: book/zh\n") < toc.index("file: book/glossary\n")
