"""The whole book as one PDF, printed from the built site (`make pdf`: ``python -m tools.pdf``).

Each page of the table of contents, in order, is opened in Debian's Chromium (driven by Playwright,
as in tests/test_site.py), typeset by MathJax and printed with the theme's print style sheet (no
sidebars); pypdf joins the pages and adds one bookmark per page. The result is written into the
site, where the intro links to it.
"""

from __future__ import annotations

import io
import pathlib
import sys

from tools import browser as browser_tool  # Chromium and the local server
from tools import notebooks  # the table of contents

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
PDF_NAME = "layernorm-derived.pdf"  # under book/, next to the intro that links to it
MARGIN = {"top": "18mm", "bottom": "18mm", "left": "16mm", "right": "16mm"}


def print_pages(base: str, browser) -> list[tuple[str, str, bytes]]:
    """(path, title, PDF bytes) for every page of the table of contents, printed by ``browser`` (a
    Playwright Chromium) from the site served at ``base``."""
    out = []
    for path in (f"{f}.html" for f in notebooks.toc_files()):
        page = browser.new_page()
        page.goto(f"{base}/{path}", wait_until="load")
        page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
        # Folded code (hide-input) stays folded; solutions are opened so that the PDF has them.
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        title = page.evaluate("() => (document.querySelector('main h1') || {}).innerText || document.title")
        out.append((path, title.replace("#", "").strip(), page.pdf(format="A4", margin=MARGIN, print_background=True)))
        page.close()
    return out


def join(pages: list[tuple[str, str, bytes]], target: pathlib.Path) -> int:
    """Write the pages as one PDF with a bookmark per page; returns its page count."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for _, title, data in pages:
        start = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(data)))
        writer.add_outline_item(title=title, page_number=start)
    writer.add_metadata({"/Title": "LayerNorm, Derived"})
    with target.open("wb") as f:
        writer.write(f)
    return len(writer.pages)


def main() -> int:
    if not (SITE / "index.html").is_file():
        print(f"no site at {SITE}: run `make book` first", file=sys.stderr)
        return 1
    if browser_tool.chromium_path() is None:
        print(browser_tool.MISSING, file=sys.stderr)
        return 1
    with browser_tool.serve(SITE) as base, browser_tool.chromium() as browser:
        printed = print_pages(base, browser)
    target = SITE / "book" / PDF_NAME
    print(f"{target}: {join(printed, target)} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
