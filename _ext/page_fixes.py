"""Small fixes to the pages the theme writes, each for a console error the browser test found.

* Some inline scripts (sphinx-thebe's ``const THEBE_JS_URL …``, sphinx-togglebutton's selector)
  reach a page twice, and a second ``const`` declaration is a SyntaxError in the browser. Sphinx
  7.4 drops duplicates itself, but these copies differ in one detail: the filename of an inline
  script is ``None`` in one and ``""`` in the other. Keep the first copy of every script.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)  # after every extension added its own
    return {"parallel_read_safe": True, "parallel_write_safe": True}
