"""Point each page's Colab and Binder buttons at its launch notebook (``book/launch/<name>.ipynb``).

sphinx-book-theme builds the launch buttons from the page's own source, a MyST notebook whose glued
numbers, cards, exercises and citations plain Jupyter shows raw. ``tools/launch.py`` (``make launch``)
writes a launch notebook for every page; this extension swaps the source path in the buttons' URLs
for it, on pages that have one. The URLs' form stays the theme's, so ``make launch-urls`` prints the
same addresses.
"""

from __future__ import annotations

import pathlib

LAUNCH = "launch"  # the launch notebooks' folder, beside the pages (tools/launch.py: launch_path)


def launch_url(url: str, pagename: str, srcdir: pathlib.Path) -> str:
    """``url`` with the page's notebook ``<dir>/<name>.ipynb`` replaced by ``<dir>/launch/<name>.ipynb``
    when that launch notebook exists; otherwise unchanged."""
    page = pathlib.PurePosixPath(pagename)
    target = page.parent / LAUNCH / f"{page.name}.ipynb"
    if not (srcdir / target).is_file():
        return url
    return url.replace(f"{page}.ipynb", str(target))


def _retarget(app, pagename, templatename, context, doctree) -> None:
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = launch_url(button["url"], pagename, pathlib.Path(app.srcdir))


def setup(app):
    app.connect("html-page-context", _retarget, priority=600)  # after the theme's add_launch_buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
