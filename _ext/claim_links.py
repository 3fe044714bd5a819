"""Claims as a web: every claim ID in the prose links to its card, the ledger's rows to the cards and
the cards back to their rows, and ledger rows are coloured by verdict.

The chapters stay plain text (an ID is written "F11", as a reader of the notebook in Colab sees it);
the links are added to the built pages. A card is the admonition of class ``claim-card`` that
``lnbook.cards.markdown_card`` writes, named ``cards.card_anchor(ID)``; its title starts with the ID.
The ledger is the page ``claim_ledger_doc``; a table row whose first cell is a claim ID is that
claim's row. The verdict colours come from ``lnbook.cards.STYLES``, the one place they are defined,
written as a small style sheet into the site.
"""

from __future__ import annotations

import pathlib
import re

from docutils import nodes

from lnbook import cards, claims

ID = re.compile(rf"\b({claims.ID_PATTERN})\b")
CSS = "claim-verdicts.css"
_SKIP = (nodes.literal, nodes.literal_block, nodes.reference, nodes.raw, nodes.math, nodes.math_block,
         nodes.title, nodes.caption)


def verdict_class(verdict: str) -> str:
    return "verdict-" + verdict.replace(" ", "-")


def _is_card(node) -> bool:
    return isinstance(node, nodes.admonition) and "claim-card" in node["classes"]


def _card_id(card) -> str | None:
    title = next(iter(card.findall(nodes.title)), None)
    match = ID.match(title.astext()) if title is not None else None
    return match.group(1) if match else None


def _collect_cards(app, doctree) -> None:
    env = app.env
    shown = env.__dict__.setdefault("lnbook_claim_cards", {})
    for card in doctree.findall(_is_card):
        cid = _card_id(card)
        if cid:
            shown[cid] = env.docname


def _purge(app, env, docname) -> None:
    shown = env.__dict__.get("lnbook_claim_cards", {})
    for cid in [c for c, doc in shown.items() if doc == docname]:
        del shown[cid]


def _merge(app, env, docnames, other) -> None:
    env.__dict__.setdefault("lnbook_claim_cards", {}).update(getattr(other, "lnbook_claim_cards", {}))


def _uri(app, fromdoc: str, todoc: str, anchor: str) -> str:
    if fromdoc == todoc:
        return "#" + anchor
    return app.builder.get_relative_uri(fromdoc, todoc) + "#" + anchor


def _link_ids(app, doctree, docname, shown) -> None:
    """Replace every claim ID in running text with a link to its card."""
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or not ID.search(text.astext()):
            continue
        ancestors, node = [], parent
        while node is not None:
            ancestors.append(node)
            node = node.parent
        if any(isinstance(a, _SKIP) for a in ancestors):
            continue
        pieces, last, value = [], 0, text.astext()
        for match in ID.finditer(value):
            cid = match.group(1)
            if cid not in shown:
                continue
            pieces.append(nodes.Text(value[last:match.start()]))
            uri = _uri(app, docname, shown[cid], cards.card_anchor(cid))
            pieces.append(nodes.reference(cid, cid, internal=True, refuri=uri, classes=["claim-link"]))
            last = match.end()
        if pieces:
            pieces.append(nodes.Text(value[last:]))
            parent.replace(text, [p for p in pieces if not (isinstance(p, nodes.Text) and not p.astext())])


def _ledger_rows(doctree) -> None:
    """Anchor each ledger row at its claim and colour it by its verdict."""
    for row in doctree.findall(nodes.row):
        cells = [entry.astext().strip() for entry in row.findall(nodes.entry)]
        if cells and ID.fullmatch(cells[0]):
            row["ids"].append(cards.ledger_anchor(cells[0]))
            verdict = next((c for c in cells if c in claims.VERDICTS), None)
            if verdict:
                row["classes"].append(verdict_class(verdict))


def _cards_link_back(app, doctree, docname, ledger) -> None:
    for card in doctree.findall(_is_card):
        cid = _card_id(card)
        title = next(iter(card.findall(nodes.title)), None)
        if cid and title is not None:
            uri = _uri(app, docname, ledger, cards.ledger_anchor(cid))
            title += nodes.Text(" · ")
            title += nodes.reference("in the ledger", "in the ledger", internal=True, refuri=uri,
                                     classes=["ledger-link"])


def _resolve(app, doctree, docname) -> None:
    shown = getattr(app.env, "lnbook_claim_cards", {})
    ledger = app.config.claim_ledger_doc
    if docname == ledger:
        _ledger_rows(doctree)
    if ledger in app.env.found_docs:
        _cards_link_back(app, doctree, docname, ledger)
    _link_ids(app, doctree, docname, shown)


def style_sheet() -> str:
    """Ledger rows and verdict labels in the colours of ``cards.STYLES`` (over the theme's striped rows)."""
    rules = []
    for verdict, style in cards.STYLES.items():
        row = f".bd-article tr.{verdict_class(verdict)}"
        rules.append(f"{row}, {row} > td {{ background-color: {style.background} !important; }}\n"
                     f"{row} > td:first-child {{ border-left: 6px solid {style.colour}; }}\n"
                     f"{row} > td:nth-child(3) {{ color: {style.colour}; font-weight: bold; }}\n"
                     f"html[data-theme=dark] {row}, html[data-theme=dark] {row} > td "
                     f"{{ background-color: transparent !important; }}")
    return "\n".join(rules) + "\n"


def _write_css(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        path = pathlib.Path(app.outdir) / "_static" / CSS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(style_sheet())


def setup(app):
    app.add_config_value("claim_ledger_doc", "book/ledger", "env")
    app.add_css_file(CSS)
    app.connect("doctree-read", _collect_cards)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _resolve)
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
