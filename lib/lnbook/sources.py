"""The five source texts, the anchors that tie a claim to one of their sentences, and the verdicts as the
Chinese page says them (the terms the book shares with Chinese readers are in :mod:`lnbook.glossary`).

An :class:`Anchor` names a seed (its file's three digits), the heading the sentence sits under as the seed
writes it, and a short phrase of that sentence, verbatim (at most 30 characters, markup such as ``**`` or
``[term](@article_id:…)`` dropped), so that a reader finds the sentence with a text search. The book never
reads the seeds (they live outside the repository); ``../shared/tools/anchors.py`` checks the phrases
against them during development (CONTRIBUTING.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PHRASE_MAX = 30  # characters: long enough to be unique in a seed, short enough to be a quotation, not a copy
# Emoji and the variation selector: seed 004 puts them in its headings. The book shows headings without them
# (a reader's system may have no emoji font, tests/test_site.py); the anchor keeps the heading as written.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


@dataclass(frozen=True)
class Source:
    """One source text as it presents itself."""

    seed: str  # the first three digits of its file name
    file: str
    title: str  # as the text gives it; "(untitled)" and its first heading where it gives none
    origin: str  # author or origin, as the text states it
    kind: str  # what kind of text it is
    characters: int  # its length in characters (Unicode code points, markup included)
    chapter: str  # the chapter that answers it
    link: str = ""  # where the text gives one


SOURCES = {s.seed: s for s in (
    Source("000", "000_2c5c4a78a2d2f884.txt", "(untitled; opens with “在现代深度学习…”, then questions Q2 and Q3)",
           "not stated", "an explainer in numbered sections, followed by two questions answered (Q2, Q3) and "
           "notes on Pre-LN and Post-LN", 12651, "01_foundations"),
    Source("001", "001_3542609d81eaa4d3.txt", "(untitled; first heading “引言”)", "not stated (its terms link to "
           "references written @article_id and @problem_id)",
           "an essay on principles and mechanisms", 5046, "02_principles"),
    Source("002", "002_e300946712c6c3a4.txt", "Transformer的层归一化（Layer Normalization）", "not stated",
           "a tutorial with formulas and PyTorch code", 4209, "03_transformer"),
    Source("003", "003_7983b2ac25b62fcd.txt", "为什么Transformer要用LayerNorm？", "Cv大法代码酱, an answer on Zhihu",
           "a question-and-answer post", 5571, "04_why",
           "https://www.zhihu.com/question/487766088/answer/1976682564862355377"),
    Source("004", "004_de7dcf3368c6e8ca.txt", "Layer Normalization & 残差连接", "says of itself that it was "
           "generated automatically (“本文由ContentForge AI自动生成”)", "a long blog-style article with code, "
           "tables and exercises", 45908, "05_residual"),
)}


def _check_text(owner: str, name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner}: {name}: expected a non-empty string, got {value!r}")


@dataclass(frozen=True)
class Anchor:
    """Where a seed says what a claim answers: seed, heading, a verbatim phrase of the sentence."""

    seed: str
    heading: str
    phrase: str

    def __post_init__(self):
        if self.seed not in SOURCES:
            raise ValueError(f"anchor: seed: expected one of {sorted(SOURCES)}, got {self.seed!r}")
        _check_text("anchor", "heading", self.heading)
        _check_text("anchor", "phrase", self.phrase)
        if len(self.phrase) > PHRASE_MAX:
            raise ValueError(f"anchor: phrase: expected at most {PHRASE_MAX} characters, got {len(self.phrase)} "
                             f"({self.phrase!r})")
        if "**" in self.phrase or "`" in self.phrase or "@article_id" in self.phrase:
            raise ValueError(f"anchor: phrase: expected it without markup (** ` [..](@..)), got {self.phrase!r}")

    def to_dict(self) -> dict[str, str]:
        return {"seed": self.seed, "heading": self.heading, "phrase": self.phrase}

    @property
    def shown_heading(self) -> str:
        """The heading as the book shows it: without leading #'s and emoji."""
        return " ".join(EMOJI.sub("", self.heading).strip("# ").split())

    def text(self) -> str:
        """How a card cites it: seed 004, under “heading”: “phrase”."""
        return f"seed {self.seed}, under “{self.shown_heading}”: “{self.phrase}”"


def anchors(*triples: tuple[str, str, str]) -> tuple[Anchor, ...]:
    """``anchors(("004", "heading", "phrase"), …)``: the anchors of a claim or of an untested statement."""
    return tuple(a if isinstance(a, Anchor) else Anchor(*a) for a in triples)


@dataclass(frozen=True)
class Untested:
    """A sentence of a seed that states something but that the book does not test, and why."""

    anchors: tuple[Anchor, ...]
    reason: str

    def __post_init__(self):
        if not self.anchors or not all(isinstance(a, Anchor) for a in self.anchors):
            raise ValueError(f"untested: anchors: expected one or more Anchor, got {self.anchors!r}")
        _check_text("untested", "reason", self.reason)

    def to_dict(self) -> dict:
        return {"anchors": [a.to_dict() for a in self.anchors], "reason": self.reason}


def untested(*triples: tuple[str, str, str], reason: str) -> Untested:
    return Untested(anchors(*triples), reason)


# The four verdicts as the Chinese page says them.
VERDICTS_ZH = {"holds": "成立", "holds under conditions": "有条件成立", "does not hold": "不成立",
               "not established": "未确定"}
