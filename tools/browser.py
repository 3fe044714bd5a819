"""Headless Chromium and a local web server, shared by `make pdf` (tools/pdf.py) and the browser tests
(tests/test_site.py, tests/test_launch_site.py).

The browser is Debian's ``chromium`` driven by Playwright (no browser download: the machines reach
only PyPI, Debian and npm). Usage::

    with serve(site) as base, chromium() as browser:
        page = browser.new_page(); page.goto(f"{base}/index.html")
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import pathlib
import shutil
import threading

MISSING = "no Chromium on this machine (Debian: apt-get install chromium)"


def chromium_path() -> str | None:
    """The system's Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium(*args: str):
    """A headless Playwright Chromium (extra command-line ``args`` appended); closed on exit.
    Raises RuntimeError when there is no Chromium (see :data:`MISSING`)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(MISSING)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", *args])
        try:
            yield browser
        finally:
            browser.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # callers report what matters
        pass


@contextlib.contextmanager
def serve(folder: pathlib.Path):
    """Serve ``folder`` on a free local port in a thread; yields the base URL (http://127.0.0.1:PORT)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
