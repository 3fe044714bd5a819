"""The built site as a reader meets it: every page in headless Chromium, and every link.

These tests need the site (`make book`); CI builds it before running the tests. Without it they
skip and say so, except under CI, where a missing site or browser is a failure. Screenshots of the
intro and of one chapter are written to _build/screenshots/.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import pathlib
import shutil
import threading
import urllib.parse

import pytest

from lnbook import claims

import notebooks as notebooks_tool  # tools/notebooks.py (tests/conftest.py puts tools/ on the path)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must build the site and install Chromium before the tests)")
    pytest.skip(what)


def pages() -> list[str]:
    """Every page of the table of contents, as paths of the built site (book/intro.html, …)."""
    return [f"{p}.html" for p in notebooks_tool.toc_files()]


def notebook_pages() -> list[str]:
    return [p for p in pages() if (ROOT / p).with_suffix(".ipynb").is_file()]


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    if not (SITE / "index.html").is_file():
        _missing(f"the site is not built ({SITE} has no index.html): run `make book` first")
    return SITE


# ---------------------------------------------------------------------------------- the links


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "img", "link", "script"):
                self.links.append(attrs[key])


@functools.lru_cache(maxsize=None)
def _parse(path: pathlib.Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(errors="replace"))
    return parser


def _html_files(site: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts]


def test_internal_links_and_anchors_resolve(site):
    """Every relative href/src names a file of the site, and every #anchor an id in it."""
    broken, external = [], set()
    for page in _html_files(site):
        for link in _parse(page).links:
            parts = urllib.parse.urlsplit(link)
            if parts.scheme or link.startswith("//"):  # external (or mailto:, data:, javascript:)
                if parts.scheme in ("http", "https", ""):
                    external.add(link)
                continue
            target = (page.parent / urllib.parse.unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    # External links are listed, not fetched: CI has no network.
    (site.parent / "external-links.txt").write_text("\n".join(sorted(external)) + "\n")
    assert not broken, "\n".join(broken[:30])
    assert external, "no external link found at all: the scan is not reading the pages"


def test_every_toc_page_was_built(site):
    missing = [p for p in pages() if not (site / p).is_file()]
    assert not missing, missing


# ------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports what matters
        pass


@pytest.fixture(scope="module")
def browser(server):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _missing("no Chromium on this machine (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser, url: str):
    """Load a page, wait for MathJax; returns (page, console errors, failed requests)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(url, wait_until="load")
    page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)", timeout=30000)
    page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
    return page, errors, failed


PAGE_STATE = """() => ({
    math: document.querySelectorAll('.math, div.math, span.math').length,
    unrendered: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length,
    rawDollars: (document.querySelector('main') || document.body).innerText.includes('$$'),
    images: [...document.querySelectorAll('main img, article img')].map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),  // as written
    text: document.body.innerText,
})"""


@pytest.mark.parametrize("path", pages())
def test_page_loads_cleanly_and_renders(browser, server, path):
    page, errors, failed = _open(browser, f"{server}/{path}")
    state = page.evaluate(PAGE_STATE)
    page.close()
    local_failures = [u for u in failed if u.startswith(server)]
    assert not errors, f"{path}: console errors: {errors[:5]}"
    assert not local_failures, f"{path}: failed requests: {local_failures[:5]}"
    assert state["unrendered"] == 0, f"{path}: {state['unrendered']} of {state['math']} equations not typeset"
    assert not state["rawDollars"], f"{path}: raw $$ left in the text"
    bad = [i["src"] for i in state["images"] if not i["ok"]]
    assert not bad, f"{path}: images that did not load: {bad}"
    if path.startswith("book/0"):  # a chapter: it has equations and MathJax typeset them
        assert state["math"] > 0, f"{path}: no equations found: is the page the chapter?"


@pytest.mark.parametrize("path", notebook_pages())
def test_launch_buttons_point_at_this_notebook(browser, server, path):
    url, branch = notebooks_tool.repository()
    org_repo = urllib.parse.urlsplit(url).path.strip("/")
    notebook = path.removesuffix(".html") + ".ipynb"
    page, _, _ = _open(browser, f"{server}/{path}")
    links = page.evaluate(PAGE_STATE)["links"]
    page.close()
    colab = f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{notebook}"
    binder = f"https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=tree/{notebook}"
    assert colab in links, f"{path}: no Colab link {colab}; launch links: {[u for u in links if 'colab' in u]}"
    assert binder in links, f"{path}: no Binder link {binder}; launch links: {[u for u in links if 'binder' in u]}"


def test_ledger_lists_every_registered_claim(browser, server):
    page, _, _ = _open(browser, f"{server}/book/ledger.html")
    text = page.evaluate(PAGE_STATE)["text"]
    page.close()
    missing = [cid for cid in claims.registry() if cid not in text]
    assert not missing, f"ledger page lacks {missing}"


@pytest.mark.parametrize("path,name", [("book/intro.html", "intro"), ("book/06_kernels.html", "kernels")])
def test_screenshots(browser, server, path, name):
    page, _, _ = _open(browser, f"{server}/{path}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(out), full_page=False)
    page.close()
    assert out.stat().st_size > 10_000  # a blank page compresses to a few hundred bytes
