"""How a claim's result is shown: its card (MyST for the book, HTML for Jupyter and Colab), the ledger's
table and each chapter's verdict line, the numbers a chapter glues for its prose, and listings of the
library's own source.

The registry and the results themselves are :mod:`lnbook.claims`; this module only reads them. A chapter
shows a card with the one call of :data:`CARD_CALL`, ``cards.show('F01')``, alone in a code cell.
"""

from __future__ import annotations

import html
import inspect
import math
import re
from dataclasses import dataclass

from lnbook.claims import ID_PATTERN, VERDICTS, Claim, Result, as_written, chapter_of, chapters, record, registry, run

#: The card contract, the one way a chapter shows a card: a code cell ``cards.show('F01');`` (either
#: quote). The build, the launch notebooks, the tests and the Sphinx extension find cards by it.
CARD_CALL = re.compile(rf"cards\.show\((['\"])({ID_PATTERN})\1\);?")


def card_call(source: str) -> str | None:
    """The ID of the card a code cell's ``source`` shows, if the cell is a card (and nothing else)."""
    match = CARD_CALL.fullmatch(source.strip())
    return match.group(2) if match else None


def cards_in(sources) -> list[str]:
    """The IDs of the cards shown by code cells' ``sources``, in order."""
    return [id for id in map(card_call, sources) if id]


@dataclass(frozen=True)
class VerdictStyle:
    """How a verdict looks, in one place: the MyST admonition class that colours the card on the site, and
    the same colour for the HTML card of plain Jupyter (the words a statement opens with are
    :data:`lnbook.claims.OPENING`)."""

    admonition: str
    colour: str  # border and label: a contrast of at least 4.5 on the background (the label is normal-sized text)
    background: str


STYLES = {
    "holds": VerdictStyle("tip", "#2e7d32", "#edf7ee"),
    "holds under conditions": VerdictStyle("warning", "#9a5d00", "#fff6e5"),
    "does not hold": VerdictStyle("error", "#c62828", "#fdecec"),
    "not established": VerdictStyle("note", "#546e7a", "#eef2f4"),
}


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
    return "{} of {} checks ".format(*result.evidence.tally) + mark


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
        checks = "{}/{}".format(*r.evidence.tally)
        status = f"{checks} passed" if r.passed else f"{checks} FAILED"
        rows.append(
            f"| {r.claim.id} | {table_cell(source_text(r.claim))} | {r.claim.verdict} | {table_cell(r.statement)} | {status} |"
        )
    return "\n".join(rows)


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
