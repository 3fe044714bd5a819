"""The built site as a reader meets it: every page in headless Chromium, and every link.

These tests need the site (`make book`); CI builds it before running the tests. Without it they
skip and say so, except under CI, where a missing site or browser is a failure. They check what a
reader navigates by (numbered and captioned figures whose text is legible, numbered sections,
equations and exercises, claim IDs linked to cards and cards to the ledger, nothing sticking out
of the column at 1280 or 390 px, no emoji) and the PDF, which they print once if `make pdf` has not.
Screenshots of the intro, chapters 1, 4 and 6 and the ledger are written to _build/screenshots/.
"""

from __future__ import annotations

import functools
import html
import html.parser
import pathlib
import re
import urllib.parse

import pytest
from conftest import chromium, missing
from test_book import CONDITIONAL_FIGURES

from lnbook import cards, claims, plots
from tools import browser as browser_tool  # Chromium and the local server
from tools import launch
from tools import notebooks as notebooks_tool
from tools import pdf as pdf_tool

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def pages() -> list[str]:
    """Every page of the table of contents, as paths of the built site (book/intro.html, …)."""
    return [f"{p}.html" for p in notebooks_tool.toc_files()]


def notebook_pages() -> list[str]:
    return [p for p in pages() if (ROOT / p).with_suffix(".ipynb").is_file()]


def chapter_pages() -> list[str]:
    """The numbered chapters (book/01_foundations.html, …), in order."""
    return [p for p in pages() if re.match(r"book/\d\d_", p)]


WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    if not (SITE / "index.html").is_file():
        missing(f"the site is not built ({SITE} has no index.html): run `make book` first")
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


@functools.cache
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
            if parts.path.endswith(pdf_tool.PDF_NAME):  # printed by `make pdf`, see test_pdf_of_the_whole_book
                continue
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
    absent = [p for p in pages() if not (site / p).is_file()]
    assert not absent, absent


def test_no_number_reads_as_a_zero_in_scientific_notation(site):
    """An exact zero prints as 0 (g formats), never as 0.0e+00 (which a reader takes for a rounded value)."""
    zero = re.compile(r"(?<![\d.])0(\.0*)?[eE][+-]?0+(?!\d)")
    found = [f"{p}: {m.group(0)}" for p in pages() for m in zero.finditer(html.unescape(
             re.sub(r"<[^>]+>", " ", (site / p).read_text())))]
    assert not found, found[:20]


def _page_text(path: pathlib.Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_every_card_unfolds_the_code_that_decided_it(site):
    """Each card on the site folds its evidence table and its check (the @claim and the function, as
    written in lib/, named by module)."""
    for page in chapter_pages():
        text, source = _page_text(site / page), (site / page).read_text()
        ids = re.findall(r'class="[^"]*claim-card[^"]*" id="claim-(\w\d\d)"', source)
        assert ids, f"{page}: no card found"
        assert source.count("claim-listing") == source.count("claim-evidence") == len(ids), page
        for cid in ids:
            assert re.search(rf'@claim\(\s*"{cid.upper()}"', text), f"{page}: card {cid} shows no listing of its check"
        assert "How it was checked: lnbook.experiments." in text


# The derivations and kernels chapters 1 and 6 print from the library (issue 22), by the line that opens each.
LISTINGS = {
    "book/01_foundations.html": ["def layer_norm_forward(", "def layer_norm_backward(", "def rms_norm_forward(",
                                 "def rms_norm_backward(", "def ln_jacobian(", "def ln_jacobian_closed_form(",
                                 "def backward_identities(", "def _torch_ln_jacobian("],
    "book/06_kernels.html": ["def _forward_kernel(", "def _backward_kernel(", "def _sum_partials_kernel(",
                             "def plan(", "def backward_programs(", "def _split_forward_kernel(", "if CENTER"],
}


@pytest.mark.parametrize("page", LISTINGS)
def test_chapters_show_the_derivation_and_the_kernels(site, page):
    text = _page_text(site / page)
    missing = [line for line in LISTINGS[page] if line not in text]
    assert not missing, f"{page} does not show {missing}"


# ------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def server(site):
    with browser_tool.serve(site) as base:
        yield base


@pytest.fixture(scope="module")
def browser(server):
    with chromium() as browser:
        yield browser


def _open(browser, url: str, width: int = 1280):
    """Load a page, wait for MathJax; returns (page, console errors, failed requests)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
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
    notebook = launch.launch_path(pathlib.PurePosixPath(path).stem)  # what Colab and Binder open
    page, _, _ = _open(browser, f"{server}/{path}")
    links = page.evaluate(PAGE_STATE)["links"]
    page.close()
    colab, binder = launch.urls(pathlib.PurePosixPath(path).stem)
    assert colab == f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{notebook}"
    assert binder == f"https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=tree/{notebook}"
    assert colab in links, f"{path}: no Colab link {colab}; launch links: {[u for u in links if 'colab' in u]}"
    assert binder in links, f"{path}: no Binder link {binder}; launch links: {[u for u in links if 'binder' in u]}"


def test_ledger_lists_every_registered_claim(browser, server):
    page, _, _ = _open(browser, f"{server}/book/ledger.html")
    text = page.evaluate(PAGE_STATE)["text"]
    page.close()
    missing = [cid for cid in claims.registry() if cid not in text]
    assert not missing, f"ledger page lacks {missing}"


SHOTS = [("book/intro.html", "intro"), ("book/01_foundations.html", "chapter1"), ("book/04_why.html", "chapter4"),
         ("book/06_kernels.html", "kernels"), ("book/ledger.html", "ledger")]


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("path,name", SHOTS)
def test_screenshots(browser, server, path, name, width):
    page, _, _ = _open(browser, f"{server}/{path}", width)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{name}-{width}.png"
    page.screenshot(path=str(out), full_page=False)
    page.close()
    assert out.stat().st_size > 10_000  # a blank page compresses to a few hundred bytes


# What issue 22 added, shot at both widths: a card with its check unfolded, and each chapter's new
# listing and figure (chapter 1: the Jacobian derived and its eigenspaces; chapter 6: a kernel and its
# data flow).
NEW_PARTS = {"book/01_foundations.html": ("chapter1", "def ln_jacobian(", "fig-jacobian-eigenspaces"),
             "book/06_kernels.html": ("kernels", "def _forward_kernel(", "fig-kernel-data-flow")}


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("path", NEW_PARTS)
def test_screenshots_of_unfolded_cards_listings_and_new_figures(browser, server, path, width):
    name, line, figure = NEW_PARTS[path]
    page, _, _ = _open(browser, f"{server}/{path}", width)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    card = page.locator("main .claim-card").first
    listing = card.locator(".claim-listing")
    code = listing.locator("pre")
    assert not code.is_visible(), "a card's check should be folded until the reader opens it"
    listing.locator(".admonition-title").click()
    code.wait_for(state="visible")
    assert "@claim(" in code.inner_text()
    listing.scroll_into_view_if_needed()
    shots = {"card": card, "listing": page.locator("div.highlight pre", has_text=line).first,
             "figure": page.locator(f"figure#{figure}")}
    for part, element in shots.items():
        element.scroll_into_view_if_needed()
        assert element.is_visible(), f"{path}: {part} not visible"
        out = SCREENSHOTS / f"{name}-{part}-{width}.png"
        element.screenshot(path=str(out))
        assert out.stat().st_size > 5_000, f"{out.name} is blank"
    page.close()


# ------------------------------------------------------------------------- what a reader navigates by

FIGURES = """() => [...document.querySelectorAll('.bd-article img')].map(i => {
    const fig = i.closest('figure');
    const cap = fig && fig.querySelector('figcaption');
    return {src: i.src.split('/').pop(), inFigure: !!fig, id: fig ? fig.id : null,
            number: cap ? (cap.querySelector('.caption-number') || {}).innerText || '' : '',
            caption: cap ? cap.innerText : '', shown: i.getBoundingClientRect().width, natural: i.naturalWidth};
})"""

# 9 pt in CSS pixels (96 px to the inch, 72 pt).
MIN_TEXT_PX = 9 * 96 / 72


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("path", chapter_pages())
def test_figures_are_numbered_captioned_and_legible(browser, server, path, width):
    """Every image is a figure with a caption numbered within its chapter, and the figure's smallest
    text (lnbook.plots.SMALLEST_PT at plots.DPI) is at least 9 pt as the page shows it."""
    chapter = int(path.split("/")[1][:2])
    page, _, _ = _open(browser, f"{server}/{path}", width)
    figures = page.evaluate(FIGURES)
    referenced = page.evaluate("() => [...document.querySelectorAll('main a[href^=\"#fig-\"]')].map(a => a.getAttribute('href').slice(1))")
    page.close()
    for fig in figures:
        assert fig["inFigure"] and fig["caption"].strip(), f"{path}: image {fig['src']} has no figure caption"
        assert re.fullmatch(rf"Figure {chapter}\.\d+\s*", fig["number"]), f"{path}: {fig['src']} numbered {fig['number']!r}"
        text_px = plots.SMALLEST_PT / 72 * plots.DPI * fig["shown"] / fig["natural"]
        assert text_px >= MIN_TEXT_PX, f"{path} at {width} px: {fig['id']} text at {text_px:.1f} px ({fig['shown']:.0f} of {fig['natural']} px)"
        if fig["id"] not in CONDITIONAL_FIGURES:
            assert fig["id"] in referenced, f"{path}: {fig['id']} is never referred to by number"
    if path != "book/06_kernels.html":  # its figure is a GPU record, absent from a CPU build
        assert figures, f"{path}: no figure found: is the page the chapter?"


@pytest.mark.parametrize("path", chapter_pages())
def test_sections_equations_and_exercises_are_numbered_within_the_chapter(browser, server, path):
    chapter = int(path.split("/")[1][:2])
    page, _, _ = _open(browser, f"{server}/{path}")
    state = page.evaluate("""() => ({
        h1: (document.querySelector('main h1 .section-number') || {}).innerText || '',
        h2: [...document.querySelectorAll('main h2')].filter(h => h.closest('section'))
              .map(h => (h.querySelector('.section-number') || {}).innerText || h.innerText),
        displays: document.querySelectorAll('main div.math').length,
        numbers: [...document.querySelectorAll('main span.eqno')].map(e => e.innerText.replace('#', '').trim()),
        exercises: [...document.querySelectorAll('main .exercise .caption-number, main .exercise .admonition-title')]
              .map(e => e.innerText.trim()).filter(t => t.startsWith('Exercise')),
    })""")
    page.close()
    assert state["h1"].strip() == f"{chapter}.", f"{path}: chapter number {state['h1']!r}"
    assert state["h2"] and all(re.match(rf"{chapter}\.\d+\.", h) for h in state["h2"]), f"{path}: sections {state['h2']}"
    assert state["displays"] and len(state["numbers"]) == state["displays"], f"{path}: {state['displays']} equations, numbers {state['numbers']}"
    assert all(re.fullmatch(rf"\({chapter}\.\d+\)", n) for n in state["numbers"]), state["numbers"]
    exercises = sorted({re.match(r"Exercise (\S+)", e).group(1) for e in state["exercises"]},
                       key=lambda n: [int(k) for k in re.findall(r"\d+", n)])
    if exercises:
        assert exercises == [f"{chapter}.{k}" for k in range(1, len(exercises) + 1)], f"{path}: exercises {exercises}"


@pytest.mark.parametrize("path", chapter_pages())
def test_claims_link_to_cards_and_cards_to_the_ledger(browser, server, path):
    """Each chapter opens with its verdict summary; each card is anchored at its ID and links to its
    ledger row; a claim ID in the prose is a link to its card (the targets resolve: see
    test_internal_links_and_anchors_resolve)."""
    page, _, _ = _open(browser, f"{server}/{path}")
    state = page.evaluate("""() => ({
        cards: [...document.querySelectorAll('main .claim-card')].map(c => ({id: c.id,
            title: c.querySelector('.admonition-title').innerText,
            back: (c.querySelector('.admonition-title a.ledger-link') || {}).getAttribute?.('href') || null})),
        summary: [...document.querySelectorAll('main p, main .claim-card')].findIndex(p => p.innerText.startsWith('The claims of this chapter')),
        firstCard: [...document.querySelectorAll('main p, main .claim-card')].findIndex(e => e.classList.contains('claim-card')),
        summaryLinks: [...document.querySelectorAll('main p')].filter(p => p.innerText.startsWith('The claims of this chapter'))
            .flatMap(p => [...p.querySelectorAll('a.claim-link')].map(a => a.innerText)),
        prose: [...document.querySelectorAll('main p')].filter(p => !p.closest('.claim-card, pre, code'))
            .flatMap(p => [...p.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent)).join(' '),
    })""")
    page.close()
    mine = [cid for cid, c in claims.registry().items() if f"{claims.chapter_of(c)}.html" == path]
    assert [c["id"] for c in state["cards"]] and {c["id"] for c in state["cards"]} == {cards.card_anchor(i) for i in mine}
    for card in state["cards"]:
        cid = card["title"][:3]
        assert card["id"] == cards.card_anchor(cid)
        assert card["back"] == f"ledger.html#{cards.ledger_anchor(cid)}", card
    assert 0 <= state["summary"] < state["firstCard"], f"{path}: no verdict summary before the first card"
    assert sorted(state["summaryLinks"]) == sorted(mine), f"{path}: summary links {state['summaryLinks']}"
    unlinked = sorted(set(re.findall(r"\b[FMTWR]\d\d\b", state["prose"])) & set(claims.registry()))
    assert not unlinked, f"{path}: claim IDs in the prose without a link: {unlinked}"


def test_ledger_is_grouped_by_chapter_coloured_and_linked(browser, server):
    page, _, _ = _open(browser, f"{server}/book/ledger.html")
    state = page.evaluate("""() => ({
        sections: [...document.querySelectorAll('main section section')].map(s => ({
            chapter: (s.querySelector('a[href$=".html"]:not(.claim-link)') || {}).getAttribute?.('href'),
            rows: [...s.querySelectorAll('tr[id]')].map(r => ({id: r.id, cls: r.className,
                link: (r.querySelector('a.claim-link') || {}).getAttribute?.('href'),
                background: getComputedStyle(r).backgroundColor}))})),
    })""")
    page.close()
    by_chapter = {}
    for cid, c in claims.registry().items():
        by_chapter.setdefault(claims.chapter_of(c).split("/")[1] + ".html", []).append(cid)
    got = {s["chapter"]: s["rows"] for s in state["sections"] if s["chapter"]}
    assert list(got) == list(by_chapter), f"ledger sections {list(got)}"
    colours = set()
    for chapter, ids in by_chapter.items():
        rows = got[chapter]
        assert [r["id"] for r in rows] == [cards.ledger_anchor(i) for i in ids], chapter
        for cid, row in zip(ids, rows):
            verdict = claims.registry()[cid].verdict
            assert f"verdict-{verdict.replace(' ', '-')}" in row["cls"].split(), row
            assert row["link"] == f"{chapter}#{cards.card_anchor(cid)}", row
            colours.add((verdict, row["background"]))
    assert len({v for v, _ in colours}) == len(colours), f"one verdict, several colours: {colours}"
    assert len({b for _, b in colours}) == len(colours), f"verdicts that share a colour: {colours}"


OVERFLOW = """() => {
    const main = document.querySelector('main article') || document.querySelector('main');
    const right = main.getBoundingClientRect().right;
    const scroller = e => {  // the nearest ancestor inside the article that scrolls sideways
        for (let a = e.parentElement; a && a !== main; a = a.parentElement) {
            if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return a;
        }
        return null;
    };
    const wide = [...main.querySelectorAll('table, figure, img, mjx-container[display="true"], pre, .claim-card')]
        .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > right + 1);
    const label = e => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right - right)} px`;
    const inBox = e => { const s = scroller(e); return s && s.getBoundingClientRect().right <= right + 1; };
    return {page: document.documentElement.scrollWidth - window.innerWidth,
            out: wide.filter(e => !inBox(e)).map(label),
            scrolls: wide.filter(e => inBox(e)).map(label)};
}"""


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("path", pages())
def test_nothing_sticks_out_of_the_column(browser, server, path, width):
    """No table, figure, equation, listing or card is wider than the text column, and the page never
    scrolls sideways. On a phone a table with more columns than fit may scroll inside its own box
    (its content stays reachable; the scrolled tables are listed in _build/scrolled-tables.txt); on a
    desktop nothing scrolls."""
    page, _, _ = _open(browser, f"{server}/{path}", width)
    state = page.evaluate(OVERFLOW)
    page.close()
    assert not state["out"], f"{path} at {width} px: {state['out'][:5]}"
    assert state["page"] <= 0, f"{path} at {width} px: the page scrolls {state['page']} px sideways"
    if width == WIDTHS["desktop"]:
        assert not state["scrolls"], f"{path} at {width} px: scrolls sideways: {state['scrolls'][:5]}"
    assert all(s.startswith("table.") for s in state["scrolls"]), f"{path} at {width} px: {state['scrolls'][:5]}"
    with (SITE.parent / "scrolled-tables.txt").open("a") as log:
        log.writelines(f"{path} at {width} px: {s}\n" for s in state["scrolls"])


# Pictographs, dingbats and symbols that render as empty boxes without an emoji font.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


@pytest.mark.parametrize("path", pages())
def test_no_emoji(browser, server, path):
    page, _, _ = _open(browser, f"{server}/{path}")
    text = page.evaluate("() => document.querySelector('main').innerText")
    page.close()
    assert not EMOJI.findall(text), f"{path}: {sorted(set(EMOJI.findall(text)))}"


@pytest.fixture(scope="module")
def book_pdf(site, browser, server):
    """The PDF `make pdf` writes; printed here (once per run) when it is missing."""
    target = site / "book" / pdf_tool.PDF_NAME
    if not target.is_file():
        pdf_tool.join(pdf_tool.print_pages(server, browser), target)
    return target


def test_pdf_of_the_whole_book(site, book_pdf):
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(book_pdf))
    outline = [item.title for item in reader.outline]
    assert len(outline) == len(pages()), f"one bookmark per page expected: {outline}"
    assert len(reader.pages) > 5 * len(pages()), f"{len(reader.pages)} pages for {len(pages())} chapters and pages"
    text = reader.pages[0].extract_text() + reader.pages[1].extract_text()
    assert "LayerNorm" in text, "the first pages carry no text: printed blank?"
    intro = (site / "book" / "intro.html").read_text()
    assert f'href="{pdf_tool.PDF_NAME}"' in intro, "the intro does not link to the PDF"
    (site.parent / "pdf-pages.txt").write_text(f"{len(reader.pages)}\n")
