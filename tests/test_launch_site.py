"""A launch notebook as a reader sees it: chapter 1's, rendered by nbconvert, in headless Chromium.

The notebook is rendered as Colab or JupyterLab opens it, before anything runs: the numbers in the
prose, the claim cards with their verdicts and the folded solutions must be there already. MathJax
comes from the local copy the site uses (``_ext/local_mathjax.py``), so the page renders offline. A
screenshot is written to _build/screenshots/launch-01_foundations.png. Without Chromium or
playwright the test skips and says so, except under CI, where that is a failure.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import test_book  # the chapters' cards (cards.cards_in over the code cells)
from conftest import chromium, missing

from _ext import local_mathjax  # where the MathJax wheel keeps its files
from lnbook import cards, claims
from tools import launch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
NAME = "01_foundations"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> pathlib.Path:
    """The launch notebook as nbconvert's HTML, with MathJax from the local wheel."""
    nbconvert = pytest.importorskip("nbconvert")
    import nbformat

    mathjax = local_mathjax.es5_dir()
    if mathjax is None:
        missing("no local MathJax (the book extra's django-static-mathjax)")
    exporter = nbconvert.HTMLExporter(mathjax_url=(mathjax / local_mathjax.SCRIPT).as_uri())
    body, _ = exporter.from_notebook_node(nbformat.read(launch.LAUNCH / f"{NAME}.ipynb", as_version=4))
    # nbconvert's configuration block is MathJax 2's; MathJax 3 needs inline $…$ switched on, as
    # JupyterLab and Colab have it.
    config = '<script>window.MathJax = {tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], processEscapes: true}};</script>'
    assert "<!-- Load mathjax -->" in body, "nbconvert's template changed: where does MathJax load?"
    path = tmp_path_factory.mktemp("launch") / f"{NAME}.html"
    path.write_text(body.replace("<!-- Load mathjax -->", "<!-- Load mathjax -->" + config, 1))
    return path


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module: Playwright's sync API runs one at a time in a thread."""
    with chromium("--allow-file-access-from-files") as browser:
        yield browser


@pytest.fixture(scope="module")
def page(rendered, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(rendered.as_uri(), wait_until="load")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
    page.evaluate("() => MathJax.startup.promise")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    card = page.locator(".claim-card").nth(1)  # F02: its folded evidence and check below the sentence
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"launch-{NAME}.png"))
    yield page
    page.close()


def test_numbers_show_in_the_prose(page):
    """Glued numbers in chapter 1's prose, as the site prints them (from the stored build): the H100's
    figures and the stacks' setup; a card's own numbers are in its card, not the prose."""
    stored = launch.stored_build(launch.read(launch.LAUNCH / f"{NAME}.ipynb"))["glue"]
    text = page.inner_text("body")
    for key, spec in [("ch1_h100_tbs", ".2f"), ("ch1_h100_fp32_tflops", ".0f"), ("ch1_stack_depth", "")]:
        number = launch.format_glue(stored[key], spec)
        assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text), f"{key} = {number} not on the page"
    assert "{glue" not in text and "{cite" not in text and "```" not in text


def test_every_card_shows_with_its_verdict(page):
    shown = test_book.cards_in(launch.BOOK / f"{NAME}.ipynb")
    titles = page.locator(".claim-card > p:first-child").all_inner_texts()
    assert titles == [f"{cid} · {claims.registry()[cid].verdict}" for cid in shown]
    assert all(page.locator(".claim-card").nth(i).is_visible() for i in range(len(shown)))


def test_solutions_are_folded_and_equations_typeset(page):
    solutions = page.locator("details:not(.claim-evidence):not(.claim-listing)")
    assert solutions.count() == 3
    folded = page.locator(".claim-card details")  # each card's evidence and check
    assert folded.count() == 2 * page.locator(".claim-card").count()
    assert not any(d.get_attribute("open") is not None for d in page.locator("details").all())
    assert page.locator("mjx-container").count() > 20, "MathJax typeset too few equations"
    assert (SCREENSHOTS / f"launch-{NAME}.png").stat().st_size > 10_000


# The contrast of every text in a card against what it is drawn on (WCAG's ratio; 4.5 is AA for body
# text), composited through the ancestors' backgrounds up to the first opaque one.
CONTRAST = """() => {
  const rgba = s => (s.match(/[\\d.]+/g) || []).map(Number).concat([1]).slice(0, 4);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                              .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    return layers.reverse().reduce((acc, c) => acc.map((v, i) => i < 3 ? v * (1 - c[3]) + c[i] * c[3] : 1), [255, 255, 255, 1]); };
  const worst = [];
  for (const card of document.querySelectorAll('.claim-card')) for (const el of card.querySelectorAll('*')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const fg = rgba(getComputedStyle(el).color), bg = behind(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    worst.push([(a + 0.05) / (b + 0.05), el.textContent.slice(0, 40)]);
  }
  return worst.sort((x, y) => x[0] - y[0]).slice(0, 3);
}"""


def card_contrast(browser, nb, theme: str, tmp_path: pathlib.Path) -> tuple[list, list[float]]:
    """``nb`` rendered by nbconvert in JupyterLab's ``theme``, in ``browser``: the three lowest contrasts
    in its cards (ratio, text) and the font weight of every card's title."""
    nbconvert = pytest.importorskip("nbconvert")
    body, _ = nbconvert.HTMLExporter(theme=theme).from_notebook_node(nb)
    path = tmp_path / f"page-{theme}.html"
    path.write_text(body)
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(path.as_uri(), wait_until="load")
    worst = page.evaluate(CONTRAST)
    weights = page.locator(".claim-card > p:first-child > b").evaluate_all(
        "els => els.map(e => Number(getComputedStyle(e).fontWeight))")
    page.close()
    return worst, weights


def restyled(nb, pattern: str, replacement: str = ""):
    """``nb`` with ``pattern`` replaced in every Markdown cell (the cards are Markdown cells of HTML)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = re.sub(pattern, replacement, cell.source)
    return nb


def launch_notebook():
    import nbformat

    return nbformat.read(launch.LAUNCH / f"{NAME}.ipynb", as_version=4)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("styles", ["kept", "stripped"])
def test_cards_read_on_light_and_dark_themes_with_or_without_their_styles(theme, styles, browser, tmp_path):
    """JupyterLab's themes as nbconvert ships them; "stripped": every inline style removed, as Colab
    drops some. Each card's title stays bold and every text keeps a contrast of at least 4.5."""
    nb = launch_notebook()
    worst, weights = card_contrast(browser, restyled(nb, r'\sstyle="[^"]*"') if styles == "stripped" else nb, theme,
                                   tmp_path)
    assert worst and worst[0][0] >= 4.5, f"{theme}, styles {styles}: lowest contrasts {worst}"
    assert weights and min(weights) >= 600, f"{theme}, styles {styles}: card titles not bold"


def test_a_card_without_its_ink_fails_on_the_dark_theme(browser, tmp_path):
    """The null case: cards that set their light background but not the text colour (as before issue
    25) inherit the dark theme's light text, and the contrast check catches it."""
    nb = restyled(launch_notebook(), rf";?color:{cards.INK}")
    worst, _ = card_contrast(browser, nb, "dark", tmp_path)
    assert worst and worst[0][0] < 4.5, f"inherited light text passed: {worst}"
