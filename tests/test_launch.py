"""Launch notebooks (book/launch/, written by tools/launch.py): current, free of raw MyST, with the
build's numbers; the launch buttons' URLs; the dependency floors stated once and mirrored."""

from __future__ import annotations

import ast
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import test_book  # the chapters' cards (cards.cards_in over the code cells)
import yaml
from packaging.requirements import Requirement

from _ext import launch_links  # the Sphinx extension
from lnbook import cards, claims
from tools import launch
from tools import notebooks as notebooks_tool

ROOT = pathlib.Path(__file__).resolve().parents[1]

PAGES = launch.pages()
REFS = launch.bibliography()


def committed(name: str) -> dict:
    path = launch.LAUNCH / f"{name}.ipynb"
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: run `make launch`"
    return launch.read(path)


def test_every_page_and_only_pages_have_a_launch_notebook():
    assert sorted(p.stem for p in launch.LAUNCH.glob("*.ipynb")) == sorted(PAGES)


@pytest.mark.parametrize("name", PAGES)
def test_launch_notebook_is_current(name):
    """Regenerated from today's page with the build values it stores, it is the committed file, byte
    for byte: a change to the page's text, cells or glued keys needs `make launch` (no build needed
    to check this, so the test is deterministic)."""
    nb = committed(name)
    fresh = launch.convert(launch.read(launch.BOOK / f"{name}.ipynb"), launch.stored_build(nb), REFS)
    assert fresh == nb, f"book/launch/{name}.ipynb is out of date: run `make launch`"


@pytest.mark.parametrize("name", PAGES)
def test_launch_notebook_reads_in_plain_jupyter(name):
    nb = committed(name)
    raw = [f"{c['id']}: {r}" for c in nb["cells"] if c["cell_type"] == "markdown"
           for r in launch.raw_myst("".join(c["source"]))]
    assert not raw, f"{name}: MyST that Jupyter shows raw: {raw[:5]}"
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{name}: outputs stored"


# What Colab cannot follow: a link to an anchor of the page (it follows only its own #scrollTo=).
IN_PAGE_LINK = re.compile(r"\]\(#|href=[\"']#")


@pytest.mark.parametrize("name", PAGES)
def test_launch_notebook_has_no_in_page_link_and_hides_code_as_colab_does(name):
    nb = committed(name)
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert not IN_PAGE_LINK.findall(text), f"{name}: in-page links Colab cannot follow"
    hidden = [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("jupyter", {}).get("source_hidden")]
    assert all(c["metadata"].get("cellView") == "form" for c in hidden), f"{name}: hidden for JupyterLab, not for Colab"
    if "launch-references" in {c["id"] for c in nb["cells"]}:
        assert nb["cells"][-1]["id"] == "launch-references", f"{name}: the references are not at the end"


def test_in_page_link_detector():
    assert IN_PAGE_LINK.search("[Ba, 2016](#ref-ba2016layer)") and IN_PAGE_LINK.search('<a href="#x">')
    assert not IN_PAGE_LINK.search("[ledger](ledger.ipynb) and [doi](https://doi.org/10.1/x#y)")


@pytest.mark.parametrize("name", [p for p in PAGES if re.match(r"\d\d_", p)])
def test_chapter_launch_notebook_shows_its_cards_and_numbers(name):
    nb = committed(name)
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    shown = test_book.cards_in(launch.BOOK / f"{name}.ipynb")
    for cid in shown:
        verdict = claims.registry()[cid].verdict
        assert f"{cid} · {verdict}" in text, f"{name}: no card with the verdict of {cid}"
    assert "<details>" in text and "Solution to Exercise 1" in text, f"{name}: no folded solutions"
    assert "cards.show(" not in "".join("".join(c["source"]) for c in nb["cells"]), name


# Floating-point results that no training run amplifies differ between processors in their last bits only
# (another summation order or vector width rounds each float32 operation differently, ~1e-7 each, over a
# handful of chained operations): 1e-6 relative separates that from a real change.
ROUNDING = 1e-6
# A card prints four significant figures: rounding can flip the fourth, one part in a thousand.
PRINTED = 1e-3
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def same_number(stored, built, outcome: bool) -> bool:
    """A stored glued number (its repr) against this build's: outcomes of training may move by their seed
    spread on another machine, so only their type is compared; integers and strings are exact; other
    floats agree up to :data:`ROUNDING`."""
    if outcome:
        return type(stored) is type(built)
    if isinstance(built, float) and isinstance(stored, float):
        return math.isclose(stored, built, rel_tol=ROUNDING, abs_tol=1e-300)
    return stored == built


def same_card(stored: str, built: str, outcomes: bool) -> bool:
    """The card's words are the build's exactly; its numbers agree as printed (see :data:`PRINTED`), or, on
    a claim with outcomes of training, may differ by their seed spread."""
    if NUMBER.sub("#", stored) != NUMBER.sub("#", built):
        return False
    pairs = zip(NUMBER.findall(stored), NUMBER.findall(built))
    return outcomes or all(a == b or math.isclose(float(a), float(b), rel_tol=PRINTED) for a, b in pairs)


@pytest.mark.parametrize(("stored", "built", "outcome", "ok"), [
    (1.0020036801, 1.0020036799, False, True),  # F11's last digits on another processor (issue 21)
    (1.0020036801, 1.0020136801, False, False), (3, 3, False, True), (1, 2, False, False), (2, 1, True, True),
    (1.32, 1.52, True, True), (1.32, 1.52, False, False), ("2", 2, True, False)])
def test_stored_numbers_compare_by_their_kind(stored, built, outcome, ok):
    assert same_number(stored, built, outcome) is ok


def test_stored_cards_compare_words_exactly_and_numbers_as_printed():
    card = "<p>Holds: 1.002 of 8 seeds reach 2×</p>"
    assert same_card(card, card.replace("1.002", "1.003"), outcomes=False)
    assert not same_card(card, card.replace("1.002", "1.102"), outcomes=False)
    assert same_card(card, card.replace("1.002", "1.102"), outcomes=True)
    assert not same_card(card, card.replace("Holds", "Does not hold"), outcomes=True)


def test_stored_values_are_the_builds():
    """Against the claims this build recorded (_build/claims, made by today's library source and torch):
    every glued claim number and every card the launch notebooks store is the build's, compared by the
    number's kind (:func:`same_number`), so that the test passes on another processor too."""
    checked = 0
    for name in PAGES:
        stored = launch.stored_build(committed(name))
        for key, text in stored["glue"].items():
            m = re.fullmatch(r"([A-Z]\d\d)_(\w+)", key)
            result = claims.recorded(m.group(1)) if m else None  # None unless made by today's source
            if result is not None:
                outcome = m.group(2) in result.claim.outcomes
                built = result.evidence.numbers[m.group(2)]
                assert same_number(ast.literal_eval(text), built, outcome), f"{name}: {key}: {text} against {built!r}: run `make launch`"
                checked += 1
        for cid, card in stored["cards"].items():
            result = claims.recorded(cid)
            if result is not None:  # the HTML Jupyter shows for the card a chapter displays
                built = cards.Card(result)._repr_html_()
                assert same_card(card, built, bool(result.claim.outcomes)), f"{name}: card {cid}: run `make launch`"
                checked += 1
    checked += _stored_tables_are_the_builds()
    if not checked:
        if os.environ.get("CI"):
            pytest.fail("no claim recorded by a current build (_build/claims): CI builds the book first")
        pytest.skip("no claim recorded by a build of today's source (_build/claims): run `make book`")


def same_table(stored: str, built: str) -> bool:
    """A stored Markdown table against the build's, row by row as :func:`same_card` compares a card: a row of
    a claim with outcomes of training may differ in its numbers by their seed spread."""
    rows, fresh = stored.splitlines(), built.splitlines()
    registry = claims.registry()
    outcomes = lambda row: bool((m := re.match(r"\| ([A-Z]\d\d) \|", row)) and registry[m.group(1)].outcomes)
    return len(rows) == len(fresh) and all(same_card(a, b, outcomes(b)) for a, b in zip(rows, fresh))


def _stored_tables_are_the_builds() -> int:
    """Every ``launch-stored`` output a launch notebook keeps, against this build's (0 without a build)."""
    checked = 0
    for name in PAGES:
        stored = launch.stored_build(committed(name)).get("stored", {})
        executed = launch.executed_page(name, execute=False) if stored else None
        if executed is not None and (claims.recorded("F01") is not None):
            built = launch.from_build(executed)["stored"]
            for cell_id, table in stored.items():
                assert same_table(table, built[cell_id]), f"{name}: stored output of cell {cell_id}: run `make launch`"
                checked += 1
    return checked


def test_stored_tables_compare_row_by_row():
    row = "| F01 | a | holds | Holds: 0.25 | 3/3 passed |"
    assert same_table(row, row) and same_table(row, row.replace("0.25", "0.2500001"))
    assert not same_table(row, row.replace("0.25", "0.35")) and not same_table(row, row + "\n" + row)


@pytest.mark.parametrize("name", PAGES)
def test_theme_buttons_are_retargeted_to_the_launch_urls(name, tmp_path):
    """The URLs sphinx-book-theme writes for the page, passed through _ext/launch_links.py, are the
    ones `make launch-urls` prints."""
    colab, binder = launch.urls(name)
    page = f"book/{name}"
    theme = [u.replace(launch.launch_path(name), f"{page}.ipynb") for u in (colab, binder)]
    assert all(f"/{page}.ipynb" in u for u in theme)
    assert [launch_links.launch_url(u, page, ROOT) for u in theme] == [colab, binder]
    assert launch_links.launch_url(theme[0], page, tmp_path) == theme[0], "no launch notebook: unchanged"
    assert "/blob/" in colab and colab.split("/blob/", 1)[1].split("/", 1)[1] == launch.launch_path(name)


# ----------------------------------------------------------------------------- the converter


def test_glue_formatting_is_myst_nb_s():
    """The same text the site shows: myst-nb's own formatter is the independent route."""
    from myst_nb.core.variables import format_plain_text

    for text, spec in [("0.000123456", ".1e"), ("0.7236", ".2f"), ("0.2", ".0%"), ("8", ""), ("'ValueError'", "s"),
                       ("12.0", ".0f"), ("3", "d"), ("-0.4984204284815652", ".3f"), ("'1.5e-3'", "")]:
        assert launch.format_glue(text, spec) == format_plain_text(text, spec), (text, spec)


def test_markdown_conversion():
    conv = launch.Converter({"A01_x": "0.123456", "n": "4"}, REFS, {})
    text = conv.markdown(
        "Value {glue:text}`A01_x:.2f` at n = {glue:text}`n`, as {cite}`ba2016layer,zhang2019root` and "
        "{cite:t}`ioffe2015batch` say; see {doc}`ledger`.\n\n"
        "```{exercise}\n:label: ex-a\n\nWhat?\n```\n\n```{solution} ex-a\n:class: dropdown\n\nThis.\n```\n")
    assert "Value 0.12 at n = 4" in text
    assert "(Ba et al., 2016; Zhang and Sennrich, 2019)" in text  # text, not links: Colab follows no #anchor
    assert "Ioffe and Szegedy (2015)" in text
    assert f"[{launch.page_title('ledger')}](ledger.ipynb)" in text
    assert "**Exercise 1.**" in text and "<summary>Solution to Exercise 1</summary>\n\nThis.\n\n</details>" in text
    assert not launch.raw_myst(text)
    assert conv.cited == ["ba2016layer", "zhang2019root", "ioffe2015batch"]
    assert "\n* Sergey Ioffe, Christian Szegedy (2015)." in conv.references() and "#" not in conv.references()[3:]


@pytest.mark.parametrize("source, message", [
    ("{glue:text}`missing:.2f`", "expected a key glued by the build, got 'missing'"),
    ("{cite}`nobody2020`", "expected a key of book/references.bib, got 'nobody2020'"),
    ("{doc}`no_such_page`", "expected a page of _toc.yml, got 'no_such_page'"),
    ("```{figure} x.png\n```", "no plain-Markdown rendering for the directive {figure}"),
    ("```{solution} ex-none\n```", "expected the label of an earlier exercise, got 'ex-none'"),
])
def test_conversion_errors_name_what_is_wrong(source, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        launch.Converter({}, REFS, {}).markdown(source)


def test_figures_are_numbered_captioned_and_referred_to_as_the_site_does():
    figure = {"mystnb": {"figure": {"name": "fig-b", "caption": "Loss against $t$ ({numref}`fig-a`)."}}}
    chapter = {"cells": [
        {"cell_type": "code", "id": "a", "metadata": {"mystnb": {"figure": {"name": "fig-a", "caption": "A."}}},
         "source": ["plot()"]},
        {"cell_type": "code", "id": "b", "metadata": figure, "source": ["plot()"]},
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["{numref}`fig-b` and {numref}`panel %s <fig-a>`"]},
    ]}
    nb = launch.convert(chapter, {"glue": {}, "cards": {}, "number": 3}, REFS)
    text = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert text == ["*Figure 3.1: A.*", "*Figure 3.2: Loss against $t$ (Figure 3.1).*", "Figure 3.2 and panel 3.1"]
    assert launch.figure_numbers(chapter, None) == {"fig-a": "1", "fig-b": "2"}  # an unnumbered page
    with pytest.raises(ValueError, match=r"\{numref\}: expected the name of a figure of this page, got 'fig-z'"):
        launch.Converter({}, REFS, {}).markdown("{numref}`fig-z`")


def test_chapter_numbers_follow_the_numbered_part_of_the_toc():
    assert [launch.chapter_number(n) for n in ("01_foundations", "06_kernels", "ledger")] == [1, 6, None]


def test_raw_myst_detector():
    for raw in ["{glue:text}`x`", "{cite}`a`", "```{note}\nx\n```", ":::{tip}\nx\n:::", "(my-label)=", ":label: x",
                "{{ subst }}"]:
        assert launch.raw_myst(raw), raw
    for plain in ["$\\{x\\}$ and `code`", "a set {1, 2}", "```python\nx = {'a': 1}\n```", "<details>x</details>"]:
        assert not launch.raw_myst(plain), plain


def test_card_cells_need_the_build():
    chapter = {"cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "source": ["cards.show('F01');"]}]}
    with pytest.raises(ValueError, match="card of F01: expected its HTML in the build"):
        launch.convert(chapter, {"glue": {}, "cards": {}}, REFS)
    nb = launch.convert(chapter, {"glue": {}, "cards": {"F01": "<div>F01 · holds</div>"}}, REFS)
    card = {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": ["<div>F01 · holds</div>"]}
    assert nb["cells"][0] == card


# ----------------------------------------------------------------------------- dependency floors


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_floors_are_stated_once_and_mirrored_in_environment_yml():
    """Every runtime dependency of pyproject.toml is in environment.yml (conda-forge names where they
    differ) with the same version specifier, except triton: Binder has no GPU, so its floor there is the
    interpreter's. The package's floors are Colab's GPU runtime (torch 2.11.0, triton 3.6.0)."""
    from lnbook.kernels import INTERPRETER_TRITON
    from tools import launch_sim  # the conda-to-PyPI name map Binder's simulation uses

    project = {r.name: r.specifier for r in map(Requirement, _pyproject()["project"]["dependencies"])}
    conda, pip = launch_sim._environment_yml()
    mirrored = {r.name: r.specifier for r in map(Requirement, conda + pip)}
    interpreter = ".".join(map(str, INTERPRETER_TRITON))
    assert str(mirrored.pop("triton")) == f">={interpreter}", "Binder's triton: the interpreter's floor"
    assert {n: str(mirrored.get(n)) for n in project if n != "triton"} == {n: str(s) for n, s in project.items()
                                                                           if n != "triton"}
    assert project["torch"].contains("2.11.0") and not project["torch"].contains("2.10.0")
    assert project["triton"].contains("3.6.0") and not project["triton"].contains("3.5.1")


def test_installed_versions_meet_the_floors():
    """The environment the suite runs in satisfies the floors (pip installed it from them)."""
    from importlib.metadata import version

    for req in map(Requirement, _pyproject()["project"]["dependencies"]):
        installed = version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is not {req.specifier}"


def test_licence_is_an_spdx_string_with_a_setuptools_that_reads_it():
    data = _pyproject()
    assert data["project"]["license"] == "MIT"
    setuptools = next(Requirement(r) for r in data["build-system"]["requires"] if r.startswith("setuptools"))
    assert not setuptools.specifier.contains("76.1") and setuptools.specifier.contains("77.0")  # PEP 639 from 77


def test_extension_rewrites_the_theme_s_launch_group_only(tmp_path):
    """_ext/launch_links.py on the context sphinx-book-theme hands to html-page-context."""
    colab, binder = launch.urls("01_foundations")
    theme = [u.replace(launch.launch_path("01_foundations"), "book/01_foundations.ipynb") for u in (colab, binder)]
    repo_button = {"type": "link", "url": "https://github.com/x/y/blob/main/book/01_foundations.ipynb"}
    context = {"header_buttons": [{"label": "download-buttons", "buttons": [dict(repo_button)]},
                                  {"label": "launch-buttons", "buttons": [{"url": u} for u in theme]}]}
    app = type("App", (), {"srcdir": str(ROOT)})()
    launch_links._retarget(app, "book/01_foundations", "page.html", context, None)
    assert [b["url"] for b in context["header_buttons"][1]["buttons"]] == [colab, binder]
    assert context["header_buttons"][0]["buttons"] == [repo_button], "only the launch buttons change"


SPHINX_CONF = """
import sys
sys.path.insert(0, {ext!r})
extensions = ["myst_nb", "launch_links"]
html_theme = "sphinx_book_theme"
nb_execution_mode = "off"
root_doc = "book/ledger"
exclude_patterns = ["book/launch", "_build"]
html_theme_options = {{"repository_url": {url!r}, "repository_branch": {branch!r}, "launch_buttons": {buttons!r}}}
"""


def test_extension_in_a_sphinx_build_with_the_book_s_theme(tmp_path):
    """A real (tiny) build with sphinx-book-theme and the book's launch settings: the page's buttons
    open its launch notebook; a page without one keeps the theme's link."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url, branch = notebooks_tool.repository()
    (tmp_path / "book" / "launch").mkdir(parents=True)
    for name in ("ledger", "reproducibility"):
        shutil.copy(launch.BOOK / f"{name}.ipynb", tmp_path / "book")
    shutil.copy(launch.LAUNCH / "ledger.ipynb", tmp_path / "book" / "launch")  # reproducibility: none
    (tmp_path / "conf.py").write_text(SPHINX_CONF.format(ext=str(ROOT / "_ext"), url=url, branch=branch,
                                                         buttons=config["launch_buttons"]))
    (tmp_path / "index.md").write_text("# x\n")
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(tmp_path), str(tmp_path / "html")],
                   check=True, capture_output=True, timeout=300)
    for name, expected in [("ledger", launch.launch_path("ledger")), ("reproducibility", "book/reproducibility.ipynb")]:
        page = (tmp_path / "html" / "book" / f"{name}.html").read_text()
        links = set(re.findall(r'href="(https://(?:colab|mybinder)[^"]+)"', page))
        assert links and all(link.endswith(expected) for link in links), (name, links)
    colab, binder = launch.urls("ledger")
    assert {colab, binder} <= set(re.findall(r'href="([^"]+)"', (tmp_path / "html/book/ledger.html").read_text()))


def test_build_values_from_a_jupyter_book_build_and_from_a_plain_execution(tmp_path):
    """Jupyter Book (myst-nb) moves glued outputs out of the executed notebook into <page>.glue.json;
    a plain execution keeps them in place. Both give the same values and cards."""
    import nbformat
    from myst_nb.ext.glue import extract_glue_data

    glued = nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": "0.25"},
                                   metadata={"scrapbook": {"name": "F01_x", "mime_prefix": "application/papermill.record/"}})
    card = nbformat.v4.new_output("display_data", data={"text/html": "<div>F01 · holds</div>", "text/plain": "F01"})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("cards.show('F01');", outputs=[glued, card])])
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nb, plain)
    glue = extract_glue_data(nb, [0], None)  # what myst-nb does before writing jupyter_execute/
    built = tmp_path / "built.ipynb"
    nbformat.write(nb, built)
    built.with_suffix(".glue.json").write_text(json.dumps(glue))
    assert "scrapbook" not in built.read_text(), "myst-nb no longer strips glued outputs: revisit from_build"
    expected = {"glue": {"F01_x": "0.25"}, "cards": {"F01": "<div>F01 · holds</div>"}, "stored": {}}
    assert launch.from_build(plain) == launch.from_build(built) == expected
