"""The claims registry and the ledger.

Every checkable statement of the five source texts (:mod:`lnbook.sources`) has an ID. Here each ID gets
one entry: its anchors (where the sources say it), the source's claim in our words, what the
book asserts instead (its *statement*), a verdict, and a *check* that computes the evidence.

A check returns :class:`Evidence`: named numbers (plain Python floats, glued into the prose) and
named sub-checks (booleans computed from those numbers against an independent expectation).
The statement is a format string over the numbers, so the sentence the reader sees and the value
the tests assert come from the same call.

``python -m lnbook.claims`` prints the ledger; ``--json`` prints it as JSON.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import importlib
import inspect
import json
import math
import os
import pathlib
import pkgutil
import re
import string
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from lnbook.sources import VERDICTS_ZH, Anchor, untested_list
from lnbook.sources import anchors as make_anchors

VERDICTS = ("holds", "holds under conditions", "does not hold", "not established")
# What kind of evidence decides a claim: a measurement (an experiment that could have come out otherwise),
# a derivation (an identity proved or computed exactly, checked against an independent route), or a model
# (arithmetic on stated assumptions such as datasheet figures, which the card names).
KINDS = ("measurement", "derivation", "model")
# Chapters in book order; an ID's letter says which chapter it belongs to.
PREFIX_ORDER = "FMTWR"
#: A claim's ID: a letter of PREFIX_ORDER and two digits.
ID_PATTERN = rf"[{PREFIX_ORDER}]\d\d"
#: The card contract, the one way a chapter shows a card: a code cell ``claims.show('F01');`` (either
#: quote). The build, the launch notebooks, the tests and the Sphinx extension find cards by it.
CARD_CALL = re.compile(rf"claims\.show\((['\"])({ID_PATTERN})\1\);?")


def card_call(source: str) -> str | None:
    """The ID of the card a code cell's ``source`` shows, if the cell is a card (and nothing else)."""
    match = CARD_CALL.fullmatch(source.strip())
    return match.group(2) if match else None


def cards_in(sources) -> list[str]:
    """The IDs of the cards shown by code cells' ``sources``, in order."""
    return [id for id in map(card_call, sources) if id]


@dataclass(frozen=True)
class VerdictStyle:
    """How a verdict looks, in one place: the words a statement opens with, the MyST admonition class
    that colours the card on the site, and the same colour for the HTML card of plain Jupyter."""

    opening: str
    admonition: str
    colour: str  # border and label: a contrast of at least 4.5 on the background (the label is normal-sized text)
    background: str


STYLES = {
    "holds": VerdictStyle("Holds", "tip", "#2e7d32", "#edf7ee"),
    "holds under conditions": VerdictStyle("Holds under conditions", "warning", "#9a5d00", "#fff6e5"),
    "does not hold": VerdictStyle("Does not hold", "error", "#c62828", "#fdecec"),
    "not established": VerdictStyle("Not established", "note", "#546e7a", "#eef2f4"),
}


def opens_with_verdict(statement: str, verdict: str) -> bool:
    """True when ``statement`` opens with its verdict's words, and not with a longer verdict's
    ("Holds under conditions" is not a plain "Holds")."""
    words = STYLES[verdict].opening
    longer = [s.opening for s in STYLES.values() if s.opening != words and s.opening.startswith(words)]
    return statement.startswith(words) and not any(statement.startswith(w) for w in longer)


@dataclass(frozen=True)
class Evidence:
    """What a check computed: ``numbers`` to show, ``checks`` that must all be true."""

    numbers: dict[str, float | int | str]
    checks: dict[str, bool]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


Numbers = dict  # named plain Python numbers (float, int or str), as a check measures them
Decision = Callable[[Numbers], "dict[str, bool]"]


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # the source's claim, in our words, at the source's strength
    statement: str  # what the book asserts; ``{name}`` fields are filled from the evidence
    verdict: str
    check: Callable[[], Evidence]
    # The decision: the checks as a function of the numbers alone, so that a test can hand it the numbers
    # of a world without the claim's effect (``null``) and see it fail.
    decide: Decision | None = None
    null: Callable[[Numbers], Numbers] | None = None  # the measured numbers -> those of a world without the effect
    kind: str = "measurement"  # one of KINDS
    assumptions: str = ""  # a model's assumptions, shown on its card
    # Numbers that are outcomes of training: another processor moves them by up to their seed spread, so they
    # are compared across machines by the checks they feed, never digit by digit (tests/test_perturbation.py).
    outcomes: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...] = ()  # the sentences of the seeds the claim answers (lnbook.sources)
    answer_zh: str = ""  # one Chinese sentence over the same numbers as the statement, for the Chinese page


@dataclass(frozen=True)
class Result:
    claim: Claim
    evidence: Evidence

    @property
    def passed(self) -> bool:
        return self.evidence.passed

    @property
    def statement(self) -> str:
        return READER.format(self.claim.statement, **self.evidence.numbers)

    @property
    def answer_zh(self) -> str:
        return READER.format(self.claim.answer_zh, **self.evidence.numbers)

    def to_dict(self) -> dict:
        c = self.claim
        return {
            "id": c.id,
            "anchors": [a.to_dict() for a in c.anchors],
            "claim": c.claim,
            "verdict": c.verdict,
            "kind": c.kind,
            **({"assumptions": c.assumptions} if c.assumptions else {}),
            "statement": self.statement,
            **({"answer_zh": self.answer_zh} if c.answer_zh else {}),
            "numbers": self.evidence.numbers,
            "outcomes": list(c.outcomes),
            "checks": self.evidence.checks,
            "passed": self.passed,
        }


_REGISTRY: dict[str, Claim] = {}


def claim(id: str, *, anchors, claim: str, statement: str, verdict: str,
          decide: Decision | None = None, null: Callable[[Numbers], Numbers] | None = None, kind: str = "measurement",
          assumptions: str = "", outcomes: tuple[str, ...] = (), answer_zh: str = ""):
    """Register the decorated zero-argument function as the check of claim ``id``.

    With ``decide``, the function measures and returns the numbers, and ``decide(numbers)`` returns the
    checks; ``null(numbers)`` gives the numbers of a world where the claim's effect is absent or reversed,
    which the decision must reject (tests/test_claims.py). Without ``decide`` the function returns
    :class:`Evidence` itself (kept for claims not yet split).

    ``anchors``: ``(seed, heading, phrase)`` triples or :class:`lnbook.sources.Anchor`, the sentences the
    claim answers; ``answer_zh``: the Chinese page's one-sentence answer, a format string over the numbers
    that opens with the verdict in Chinese."""
    if verdict not in VERDICTS:
        raise ValueError(f"claim {id}: verdict: expected one of {VERDICTS}, got {verdict!r}")
    if not opens_with_verdict(statement, verdict):
        raise ValueError(f"claim {id}: statement: expected it to open with {STYLES[verdict].opening!r} "
                         f"(its verdict), got {statement[:40]!r}")
    if len(id) != 3 or id[0] not in PREFIX_ORDER or not id[1:].isdigit():
        raise ValueError(f"claim id: expected a letter of {PREFIX_ORDER!r} and two digits, got {id!r}")
    if kind not in KINDS:
        raise ValueError(f"claim {id}: kind: expected one of {KINDS}, got {kind!r}")
    if (kind == "model") != bool(assumptions):
        raise ValueError(f"claim {id}: assumptions: expected them for a model and only for one, got {assumptions!r} "
                         f"for kind {kind!r}")
    anchors = make_anchors(*anchors)
    if not anchors:
        raise ValueError(f"claim {id}: anchors: expected one or more (seed, heading, phrase), got none")
    if answer_zh and not answer_zh.startswith(VERDICTS_ZH[verdict]):
        raise ValueError(f"claim {id}: answer_zh: expected it to open with {VERDICTS_ZH[verdict]!r} (its verdict), "
                         f"got {answer_zh[:20]!r}")
    if (decide is None) != (null is None):
        raise ValueError(f"claim {id}: null: expected a null world with the decision and only with it, got "
                         f"decide={decide!r}, null={null!r}")

    def register(measure: Callable[[], Evidence | Numbers]) -> Callable:
        if id in _REGISTRY and _REGISTRY[id].check.__qualname__ != measure.__qualname__:
            raise ValueError(f"claim {id}: registered twice ({_REGISTRY[id].check.__qualname__})")
        check = measure if decide is None else _decided(measure, decide)
        _REGISTRY[id] = Claim(id, claim, statement, verdict, check, decide, null, kind, assumptions,
                              tuple(outcomes), anchors, answer_zh)
        return measure

    return register


def _decided(measure: Callable[[], Numbers], decide: Decision) -> Callable[[], Evidence]:
    """The check of a claim whose decision is apart from its measurement."""

    @functools.wraps(measure)
    def check() -> Evidence:
        numbers = measure()
        return Evidence(numbers, decide(numbers))

    return check


def chapter_of(c: Claim) -> str:
    """The chapter that shows claim ``c``: the ``CHAPTER`` of the module that registers its check."""
    return sys.modules[c.check.__module__].CHAPTER


def _sort_key(id: str) -> tuple[int, int]:
    return PREFIX_ORDER.index(id[0]), int(id[1:])


def registry() -> dict[str, Claim]:
    """All registered claims in book order (importing every experiments module registers them)."""
    import lnbook.experiments as experiments

    for mod in pkgutil.iter_modules(experiments.__path__):
        importlib.import_module(f"{experiments.__name__}.{mod.name}")
    return {id: _REGISTRY[id] for id in sorted(_REGISTRY, key=_sort_key)}


@functools.cache
def run(id: str) -> Result:
    """Run the check of claim ``id`` (once per process: checks are seeded and deterministic)."""
    claims = registry()
    if id not in claims:
        raise KeyError(f"claim id: expected one of {list(claims)}, got {id!r}")
    c = claims[id]
    evidence = c.check()
    missing = set(_fields(c.statement)) - set(evidence.numbers)
    if missing:
        raise KeyError(f"claim {id}: statement uses {sorted(missing)} but the check computed none")
    unknown = set(c.outcomes) - set(evidence.numbers)
    if unknown:
        raise KeyError(f"claim {id}: outcomes name {sorted(unknown)} but the check computed none")
    return Result(c, evidence)


def entry(c: Claim) -> dict:
    """A claim's registry entry without running its check: ID, anchors, the source's claim, verdict, kind."""
    return {"id": c.id, "anchors": [a.to_dict() for a in c.anchors], "claim": c.claim, "verdict": c.verdict,
            "kind": c.kind}


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def ledger(ids: list[str] | None = None) -> list[Result]:
    return [run(id) for id in (ids or registry())]


# ----------------------------------------------------------------------------- results of a book build
# Each chapter records the results it shows under _build/claims/; the ledger page reads them instead of
# running every check a second time in the same build, and the test suite compares them with its own
# run (two runs, one under the build's load: identical numbers). A record counts only if it was made by
# the same library source and torch; anything else is run afresh.


def _checkout() -> pathlib.Path | None:
    """The book's checkout that the working directory is in (where _config.yml and lib/lnbook are)."""
    here = pathlib.Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "_config.yml").is_file() and (p / "lib" / "lnbook").is_dir()), None)


def results_dir() -> pathlib.Path | None:
    """Where a build records claim results: ``$LNBOOK_RESULTS``, else _build/claims of the checkout."""
    if os.environ.get("LNBOOK_RESULTS"):
        return pathlib.Path(os.environ["LNBOOK_RESULTS"])
    root = _checkout()
    return root / "_build" / "claims" if root else None


@functools.cache
def source_fingerprint() -> str:
    """A hash of every module of the installed lnbook and of torch's version: what a result depends on."""
    import torch

    package = pathlib.Path(__file__).resolve().parent
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def record(result: Result) -> None:
    """Write ``result`` under :func:`results_dir` (nothing outside a checkout)."""
    folder = results_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": source_fingerprint(), **result.to_dict()}
    (folder / f"{result.claim.id}.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))


def recorded(id: str) -> Result | None:
    """The result a chapter of this build recorded for ``id``, if made by this very source; else None."""
    folder = results_dir()
    path = folder / f"{id}.json" if folder else None
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("fingerprint") != source_fingerprint():
        return None
    return Result(registry()[id], Evidence(data["numbers"], data["checks"]))


def built_ledger() -> list[Result]:
    """Every claim's result, as recorded by the chapters of this build, running any that is missing."""
    return [recorded(id) or run(id) for id in registry()]


# ----------------------------------------------------------------------------- rendering


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_E_NOTATION = re.compile(r"(\d(?:\.\d+)?)e([+-])(\d+)")


def as_written(text: str) -> str:
    """A formatted number as a reader writes it: ``2.3e-06`` becomes 2.3×10⁻⁶, ``1e-05`` 10⁻⁵, a leading
    hyphen a minus sign (−0.5)."""
    def power(m: re.Match) -> str:
        exponent = int(m.group(3)) * (-1 if m.group(2) == "-" else 1)
        mantissa = "" if m.group(1) == "1" else f"{m.group(1)}×"
        return f"{mantissa}10{str(exponent).translate(SUPERSCRIPT)}"

    text = _E_NOTATION.sub(power, text)
    return "−" + text[1:] if text.startswith("-") else text


class _ReaderFormatter(string.Formatter):
    """``str.format`` whose numbers are written :func:`as_written` (statements and Chinese answers)."""

    def format_field(self, value, format_spec: str) -> str:
        text = super().format_field(value, format_spec)
        return as_written(text) if isinstance(value, (int, float)) and not isinstance(value, bool) else text


READER = _ReaderFormatter()


def format_number(value) -> str:
    """Four significant figures, as powers of ten when very small or large; strings pass through."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or isinstance(value, int):
        return as_written(str(value))
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return as_written(f"{value:.2e}")
    return as_written(f"{value:.4g}")


def card_anchor(id: str) -> str:
    """The HTML id of claim ``id``'s card in its chapter (``claim-f01``): what links to a card point at."""
    return f"claim-{id.lower()}"


def ledger_anchor(id: str) -> str:
    """The HTML id of claim ``id``'s row in the ledger (``ledger-f01``): where a card links back to."""
    return f"ledger-{id.lower()}"


# The abbreviations the experiments use in the names of their numbers, as a reader reads them.
WORDS = {
    "ln": "LayerNorm", "bn": "BatchNorm", "gn": "GroupNorm", "rms": "RMSNorm", "err": "error",
    "diff": "difference", "rel": "relative", "max": "largest", "min": "smallest", "var": "variance",
    "std": "std. dev.", "sd": "std. dev.", "se": "std. error", "dev": "deviation", "eps": "ε",
    "eps0": "(ε = 0)", "none": "without norm", "post": "Post-LN", "pre": "Pre-LN", "vs": "vs.",
    "lr": "learning rate", "cos": "cosine", "params": "parameters", "prod": "product",
    "gmean": "geometric mean", "f32": "float32", "fp32": "float32", "sigma": "σ", "gamma": "γ",
    "beta": "β", "dgamma": "dγ", "dbeta": "dβ", "gamma0": "(γ = 0)", "lam0": "(λ → 0)",
    "lam100": "(λ = 100)", "offdiag": "off-diagonal", "ld": "log-det", "iid": "i.i.d.", "flop": "FLOP",
    "sqrt": "√", "r2": "R²", "in": "InstanceNorm", "gn1": "GroupNorm (1 group)", "gnc": "GroupNorm (C groups)",
    "bn2d": "BatchNorm2d", "n1": "(N = 1)", "bf16": "bfloat16", "fp16": "float16", "f64": "float64",
    "tbs": "TB/s", "kb": "kB", "mb": "MB", "acc": "accuracy", "act": "activation", "jac": "Jacobian", "mu": "μ",
    "naive16": "naive float16", "naive32": "naive float32", "two16": "two-pass float16",
    "two32": "two-pass float32", "wel16": "Welford float16", "wel32": "Welford float32", "batch1": "batch of 1",
    "b2": "(batch 2)", "b4": "(batch 4)", "b128": "(batch 128)", "b256": "(batch 256)",
    "err2": "error (2 ranks)", "err4": "error (4 ranks)", "fwd4": "forward (4 ranks)", "bwd4": "backward (4 ranks)",
}


def number_label(name: str) -> str:
    """A number's name as a reader reads it: ``ln_batch_diff`` becomes "LayerNorm batch difference"."""
    return " ".join(WORDS.get(word, word) for word in name.split("_"))


def _evidence_table(result: Result) -> str:
    rows = ["| quantity | value |", "|---|---|"]
    rows += [f"| {table_cell(number_label(k))} | {table_cell(format_number(v))} |" for k, v in result.evidence.numbers.items()]
    return "\n".join(rows)


def kind_text(c: Claim) -> str:
    """What kind of evidence decides claim ``c``, as its card says it."""
    return {"measurement": "measurement",
            "derivation": "derivation (an identity, checked against an independent route)",
            "model": f"model, assuming {c.assumptions}"}[c.kind]


def source_text(c: Claim) -> str:
    """Where the sources say what claim ``c`` answers: its anchors (seed, heading, phrase)."""
    return "; ".join(a.text() for a in c.anchors)


def card_label(result: Result) -> str:
    """The card's title: the claim's ID and its verdict."""
    return f"{result.claim.id} · {result.claim.verdict}"


def evidence_listing(c: Claim) -> tuple[str, str]:
    """Where claim ``c``'s check is written and its source as it is in ``lib/``: the decorated measuring
    function (its ``@claim`` carries the decision and the null world) and, when they are named functions
    rather than lambdas, the decision and the null world themselves. Returns ``(where, source)``, e.g.
    ``("lnbook.experiments.foundations, line 38", "@claim(...)\ndef f01(): ...")``."""
    measure = getattr(c.check, "__wrapped__", c.check)
    lines, first = inspect.getsourcelines(measure)
    parts = ["".join(lines)]
    parts += [inspect.getsource(f) for f in (c.decide, c.null) if f is not None and f.__name__ != "<lambda>"]
    return f"{measure.__module__}, line {first}", "\n\n".join(p.rstrip() for p in parts) + "\n"


def _checks_text(result: Result) -> str:
    mark = "passed" if result.passed else "FAILED"
    return f"{sum(result.evidence.checks.values())} of {len(result.evidence.checks)} checks {mark}"


def _fence(text: str, char: str = "`", least: int = 3) -> str:
    """A fence longer than any run of ``char`` in ``text``."""
    runs = [len(r) for r in re.findall(f"{re.escape(char)}+", text)]
    return char * max([least, *(r + 1 for r in runs)])


def markdown_card(result: Result) -> str:
    """A MyST admonition for one claim, as the book shows it (coloured by the verdict's class, named
    :func:`card_anchor` so that the claim's ID anywhere in the book links here, see _ext/claim_links.py).
    Its evidence table and the code that decided it are folded (toggle admonitions): the sentence states
    the result, a reader unfolds the numbers and the check."""
    c = result.claim
    where, source = evidence_listing(c)
    code = _fence(source)
    fold = _fence(code + "`")
    evidence = [f"{fold}{{admonition}} Evidence ({_checks_text(result)})", ":class: dropdown claim-evidence",
                _evidence_table(result), fold]
    listing = [f"{fold}{{admonition}} How it was checked: {where}", ":class: dropdown claim-listing",
               f"{code}python", source.rstrip(), code, fold]
    outer = _fence(fold + "`")
    return "\n".join(
        [
            f"{outer}{{admonition}} {card_label(result)}",
            f":class: {STYLES[c.verdict].admonition} claim-card",
            f":name: {card_anchor(c.id)}",
            f"[**Source**](sources.ipynb) ({source_text(c)}): {c.claim}",
            "",
            f"**The book:** {result.statement}",
            "",
            f"**Kind of evidence:** {kind_text(c)}",
            "",
            *evidence,
            "",
            *listing,
            outer,
        ]
    )


#: The HTML card's text colour, set wherever its background is: on a dark theme (JupyterLab's, Colab's)
#: the inherited text is light, and would vanish on the card's light background.
INK = "#1f1f1f"


def highlighted_html(source: str) -> str:
    """Python source as HTML with inline colours (Pygments, which IPython brings), on a light background
    with dark text set explicitly; plain escaped text where Pygments is missing or styles are stripped.
    One line of HTML: its line breaks are written ``&#10;``, since a launch notebook holds the card in a
    Markdown cell, where a blank line would end the HTML block and the rest would be read as Markdown."""
    pre = f"background:#f8f8f8;color:{INK};padding:0.5em;overflow-x:auto;font-size:85%"
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        body = html.escape(source)
    else:
        body = highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, nowrap=True, style="default"))
    # Braces as character references too: a Markdown cell's ``{{…}}`` reads as a template to some renderers.
    body = body.rstrip("\n").replace("\n", "&#10;").replace("{", "&#123;").replace("}", "&#125;")
    return f'<pre style="{pre}">{body}</pre>'


def html_card(result: Result) -> str:
    """The same card as self-contained HTML: what plain Jupyter and Colab show. Inline styles colour
    it; without them (Colab drops some) it still reads: a bold title, labelled paragraphs, a table.
    Every element that has a background also has the text colour (tables and rows included, which
    JupyterLab's dark theme colours on its own)."""
    c, style = result.claim, STYLES[result.claim.verdict]
    esc = html.escape
    box = f"background:{style.background};color:{INK}"
    cell = f'<td style="padding:0.1em 0.8em 0.1em 0;{box}">'
    numbers = "".join(f'<tr style="{box}">{cell}{esc(number_label(k))}</td>{cell}{esc(format_number(v))}</td></tr>'
                      for k, v in result.evidence.numbers.items())
    para = f'<p style="margin:0.4em 0;color:{INK}">'
    where, source = evidence_listing(c)
    summary = f'<summary style="cursor:pointer;color:{INK}">'
    return (
        f'<div class="claim-card" id="{card_anchor(c.id)}" style="border-left:6px solid {style.colour};'
        f'{box};padding:0.5em 1em;margin:1em 0;border-radius:4px">'
        f'<p style="margin:0.2em 0;color:{style.colour}"><b>{esc(card_label(result))}</b></p>'
        f"{para}<b>Source</b> ({esc(source_text(c))}): {esc(c.claim)}</p>"
        f"{para}<b>The book:</b> {esc(result.statement)}</p>"
        f"{para}<b>Kind of evidence:</b> {esc(kind_text(c))}</p>"
        f'<details class="claim-evidence">{summary}<b>Evidence</b> ({_checks_text(result)})</summary>'
        f'<table style="{box}">{numbers}</table></details>'
        f'<details class="claim-listing">{summary}<b>How it was checked</b>: {esc(where)}</summary>'
        f"{highlighted_html(source)}</details></div>"
    )


class Card:
    """A claim card for IPython's display: MyST for the book (its build prefers ``text/markdown``,
    see ``nb_mime_priority_overrides`` in _config.yml), HTML for Jupyter and Colab, text elsewhere."""

    def __init__(self, result: Result):
        self.result = result

    def _repr_markdown_(self) -> str:
        return markdown_card(self.result)

    def _repr_html_(self) -> str:
        return html_card(self.result)

    def __repr__(self) -> str:
        return f"{card_label(self.result)}: {self.result.statement}"


def table_cell(text: str) -> str:
    """Text for one cell of a Markdown table: pipes escaped, one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: list[Result]) -> str:
    """The ledger (or one chapter's part of it) as a Markdown table; _ext/claim_links.py links each ID to
    its card, anchors each row at :func:`ledger_anchor` and colours it by its verdict."""
    rows = ["| ID | source | verdict | the book's statement | checks |", "|---|---|---|---|---|"]
    for r in results:
        checks = f"{sum(r.evidence.checks.values())}/{len(r.evidence.checks)}"
        status = f"{checks} passed" if r.passed else f"{checks} FAILED"
        rows.append(
            f"| {r.claim.id} | {table_cell(source_text(r.claim))} | {r.claim.verdict} | {table_cell(r.statement)} | {status} |"
        )
    return "\n".join(rows)


def chapters() -> list[str]:
    """The chapters that show claims (``book/01_foundations``, …), in book order."""
    return list(dict.fromkeys(chapter_of(c) for c in registry().values()))


def in_chapter(results: list[Result], chapter: str) -> list[Result]:
    """The results of the claims ``chapter`` shows."""
    return [r for r in results if chapter_of(r.claim) == chapter]


def verdict_summary(chapter: str) -> str:
    """One line for the top of ``chapter``: how many of its claims have each verdict, with their IDs
    (which _ext/claim_links.py links to the cards)."""
    if chapter not in chapters():
        raise ValueError(f"chapter: expected one of {chapters()}, got {chapter!r}")
    mine = [c for c in registry().values() if chapter_of(c) == chapter]
    plural = {"holds": "hold", "holds under conditions": "hold under conditions", "does not hold": "do not hold"}
    parts = []
    for verdict in VERDICTS:
        ids = [c.id for c in mine if c.verdict == verdict]
        if ids:
            words = verdict if len(ids) == 1 else plural.get(verdict, verdict)
            parts.append(f"**{len(ids)} {words}** ({', '.join(ids)})")
    return f"**The claims of this chapter:** {len(mine)} in all; " + "; ".join(parts) + "."


def text_table(results: list[Result], width: int = 110) -> str:
    """The ledger for a terminal: a table whose last column, the book's statement, wraps."""
    head = ("ID", "result", "checks", "verdict", "statement")
    rows = []
    for r in results:
        checks = f"{sum(r.evidence.checks.values())}/{len(r.evidence.checks)}"
        failed = [k for k, ok in r.evidence.checks.items() if not ok]
        text = r.statement + (f" [failed checks: {', '.join(failed)}]" if failed else "")
        rows.append((r.claim.id, "PASS" if r.passed else "FAIL", checks, r.claim.verdict, text))
    widths = [max(len(row[k]) for row in [head, *rows]) for k in range(4)]
    indent = sum(widths) + 2 * 4
    rule = "-" * width

    def block(row) -> list[str]:
        prefix = "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  "
        wrapped = textwrap.wrap(row[4], max(width - indent, 30)) or [""]
        return [prefix + wrapped[0], *(" " * indent + line for line in wrapped[1:])]

    lines = [*block(head), rule]
    for row in rows:
        lines += block(row)
    n_pass = sum(r.passed for r in results)
    lines += [rule, f"{n_pass} of {len(results)} claims pass"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnbook.claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="claim IDs to run (default: all)")
    parser.add_argument("--json", action="store_true", help="print the ledger as a JSON list")
    parser.add_argument("--untested", action="store_true",
                        help="with --json: print the statements the book does not test (anchors and reason)")
    parser.add_argument("--no-run", action="store_true",
                        help="with --json: print the registry (anchors, claims, verdicts) without running any check")
    args = parser.parse_args(argv)
    if args.untested or args.no_run:
        if not args.json:
            parser.error("--untested and --no-run print JSON: add --json")
        rows = ([u.to_dict() for u in untested_list()] if args.untested
                else [entry(c) for id, c in registry().items() if not args.ids or id in args.ids])
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    results = ledger(args.ids or None)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(text_table(results))
    return 0 if all(r.passed for r in results) else 1



# ----------------------------------------------------------------------------- in a chapter


def glue(key: str, value) -> None:
    """Glue ``value`` under ``key`` for the prose to quote; a no-op outside a book build."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab or a plain Jupyter: no book to glue into
        return
    myst_glue(key, value, display=False)


def glue_numbers(result: Result) -> None:
    """Glue every number of a claim as ``{ID}_{name}`` so the prose can quote it."""
    for name, value in result.evidence.numbers.items():
        glue(f"{result.claim.id}_{name}", value)


class Listing:
    """The source of functions or classes, shown as a highlighted Python listing (Markdown for the book
    and for Jupyter, plain text elsewhere) rather than as printed, unhighlighted output."""

    def __init__(self, *objects):
        self.source = "\n".join(inspect.getsource(o) for o in objects)

    def _repr_markdown_(self) -> str:
        fence = "````" if "```" in self.source else "```"
        return f"{fence}python\n{self.source.rstrip()}\n{fence}"

    def __repr__(self) -> str:
        return self.source


def show(id: str) -> Result:
    """Run claim ``id`` in a chapter: glue its numbers and display its card."""
    from IPython.display import display

    result = run(id)
    record(result)
    glue_numbers(result)
    display(Card(result))
    return result


if __name__ == "__main__":
    from lnbook.claims import main as _main  # the registry lives in the imported module

    sys.exit(_main())
