"""Small fixes to the pages Sphinx and the theme write.

* Some inline scripts (sphinx-thebe's ``const THEBE_JS_URL …``, sphinx-togglebutton's selector)
  reach a page twice, and a second ``const`` declaration is a SyntaxError in the browser. Sphinx
  7.4 drops duplicates itself, but these copies differ in one detail: the filename of an inline
  script is ``None`` in one and ``""`` in the other. Keep the first copy of every script.
* Every displayed equation of a chapter is numbered (MyST's ``$$`` blocks are numbered only when
  labelled; Sphinx's ``math_number_all`` does not reach them), as Sphinx's math directive would.
* The emoji of myst-nb's execution table (``nb-exec-table``) become words: without an emoji font, as
  in headless Chromium or a bare Linux desktop, they render as empty boxes.
"""

from __future__ import annotations

from docutils import nodes

EMOJI = {"✅": "ok", "❌": "failed", "⌛": "running", "⚠️": "warning", "⚠": "warning"}


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # None and "" both mean inline
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _number_equations(app, doctree) -> None:
    """Number every displayed equation of a chapter (MyST's ``$$`` blocks are numbered only when
    labelled; Sphinx's ``math_number_all`` does not reach them), as Sphinx's math directive would."""
    from docutils.nodes import make_id

    env = app.env
    if not env.docname.startswith(app.config.numbered_equations_prefix):
        return
    domain = env.get_domain("math")
    for node in doctree.findall(nodes.math_block):
        if node.get("label") or node.get("nowrap"):
            continue
        node["label"] = f"{env.docname}:{env.new_serialno('lnbook#equations')}"
        domain.note_equation(env.docname, node["label"], location=node)
        node["number"] = domain.get_equation_number_for(node["label"])
        node["ids"].append(make_id(f"equation-{node['label']}"))


def _no_emoji(app, doctree, docname) -> None:
    for text in list(doctree.findall(nodes.Text)):
        value = text.astext()
        if any(e in value for e in EMOJI):
            for emoji, word in EMOJI.items():
                value = value.replace(emoji, word)
            text.parent.replace(text, nodes.Text(value))


def setup(app):
    app.add_config_value("numbered_equations_prefix", "book/0", "env")  # the chapters: their equations are numbered
    app.connect("doctree-read", _number_equations)
    app.connect("doctree-resolved", _no_emoji)
    app.connect("html-page-context", _dedupe_scripts, priority=900)  # after every extension added its own
    return {"parallel_read_safe": True, "parallel_write_safe": True}
