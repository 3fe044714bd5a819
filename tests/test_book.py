"""The book's structure: table of contents, notebooks without outputs, one bootstrap cell everywhere."""

from __future__ import annotations

import ast
import json
import pathlib
import re
import subprocess
import sys

import pytest

from lnbook import cards, claims
from tools import notebooks as notebooks_tool

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(p for p in BOOK.glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]


def first_code_cell(nb: pathlib.Path) -> str:
    cells = json.loads(nb.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_every_page_is_in_the_toc_and_every_toc_entry_exists():
    listed = set(notebooks_tool.toc_files())
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in [*BOOK.glob("*.ipynb"), *BOOK.glob("*.md")]}
    assert pages == listed, f"only in book/: {sorted(pages - listed)}; only in _toc.yml: {sorted(listed - pages)}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{nb.name}: cells {dirty} have outputs; clear them before committing"


def test_every_notebook_starts_with_the_bootstrap_from_the_config():
    expected = notebooks_tool.bootstrap_source()
    url, branch = notebooks_tool.repository()
    assert f"git+{url}@{branch}" in expected
    for nb in NOTEBOOKS:
        cell = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert "".join(cell["source"]) == expected, f"{nb.name}: run `make bootstrap`"
        assert "remove-cell" in cell["metadata"].get("tags", []), nb.name


def test_bootstrap_makes_lnbook_importable_in_a_fresh_environment(tmp_path):
    """A new virtual environment without lnbook (or anything else): the checkout's lib/ is found."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('lnbook'))"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "None", "lnbook importable before the bootstrap: the test proves nothing"
    script = tmp_path / "bootstrap.py"
    script.write_text(first_code_cell(NOTEBOOKS[0]) + "\nimport lnbook\nprint(lnbook.__file__)\n")
    out = subprocess.run([python, str(script)], cwd=BOOK, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert pathlib.Path(out.stdout.strip()).resolve().is_relative_to((ROOT / "lib").resolve())


def cards_in(nb: pathlib.Path) -> list[str]:
    """The claim IDs a chapter shows a card for, in order (one per ``cards.show('ID')`` call)."""
    return cards.cards_in("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")


def test_every_registered_claim_has_exactly_one_card_in_its_chapter():
    """Coverage between the registry and the chapters: the registry is the source of truth."""
    registry = claims.registry()
    shown = {nb.stem: cards_in(nb) for nb in CHAPTERS}
    for cid, c in registry.items():
        home = pathlib.Path(claims.chapter_of(c)).name
        assert shown[home].count(cid) == 1, f"{cid}: {shown[home].count(cid)} cards in {home}"
        others = [name for name, ids in shown.items() if name != home and cid in ids]
        assert not others, f"{cid} also has a card in {others}"
    unregistered = {cid for ids in shown.values() for cid in ids} - set(registry)
    assert not unregistered, f"cards of unregistered claims: {sorted(unregistered)}"


def test_no_experiment_reads_a_clock():
    """A verdict on a busy 2-core machine must not rest on wall-clock time: no experiment module (nor the
    registry) imports a clock or calls a timing helper."""
    clocks = {"time", "timeit", "datetime"}
    timers = {"perf_counter", "perf_counter_ns", "monotonic", "process_time", "median_time", "time_ns"}
    lib = ROOT / "lib" / "lnbook"
    for path in [lib / "claims.py", *sorted((lib / "experiments").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & clocks, f"{path.name} imports a clock"
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in clocks, f"{path.name} imports from {node.module}"
            elif isinstance(node, ast.Attribute):
                assert node.attr not in timers, f"{path.name}:{node.lineno} calls {node.attr}"
                # The benchmark times its providers: a claim may use its byte counts, never its runs.
                bench_run = node.attr == "run" and isinstance(node.value, ast.Name) and node.value.id == "bench"
                assert not bench_run, f"{path.name}:{node.lineno} runs the benchmark"
            elif isinstance(node, ast.Name):
                assert node.id not in timers, f"{path.name}:{node.lineno} uses {node.id}"


CLAIM_GLUE = re.compile(r"\{glue(?::text)?\}`([A-Z]\d\d)_\w+")


def claim_numbers_in_prose(nb: pathlib.Path) -> list[str]:
    """The claims whose numbers a chapter's Markdown (its paragraphs, exercises and solutions) glues."""
    cells = json.loads(nb.read_text())["cells"]
    return [m.group(1) for c in cells if c["cell_type"] == "markdown" for m in CLAIM_GLUE.finditer("".join(c["source"]))]


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_each_finding_is_said_once_its_numbers_in_its_card_only(nb):
    """A card states its result with its numbers; the paragraph before it motivates and explains. A
    claim's numbers glued in prose would say the finding twice (issue 22), and could drift from it."""
    glued = claim_numbers_in_prose(nb)
    assert not glued, f"{nb.name}: prose glues the numbers of {sorted(set(glued))}, which their cards state"


def test_said_once_check_finds_a_paragraph_that_quotes_a_card(tmp_path):
    """The null case: a paragraph that glues a card's number is found; a glued number of no claim is not."""
    nb = tmp_path / "01_x.ipynb"
    cells = [{"cell_type": "markdown", "source": ["BatchNorm differs by {glue:text}`F01_bn_batch_diff:.2f`."]},
             {"cell_type": "markdown", "source": ["A width of {glue:text}`k_width`."]},
             {"cell_type": "code", "source": ["cards.show('F01');"]}]
    nb.write_text(json.dumps({"cells": cells}))
    assert claim_numbers_in_prose(nb) == ["F01"]


def test_config_is_strict_and_jupyter_book_is_pinned_below_2():
    config = (ROOT / "_config.yml").read_text()
    assert re.search(r"allow_errors:\s*false", config)
    assert re.search(r"execute_notebooks:\s*force", config)
    assert re.search(r'"jupyter-book[^"]*<2"', (ROOT / "pyproject.toml").read_text())
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make book" in ci
    assert all(flag in (ROOT / "Makefile").read_text() for flag in ("--warningiserror", "--nitpick", "--keep-going"))


def test_binder_environment_has_every_runtime_dependency():
    # conda-forge names differ from PyPI's for two packages.
    conda_name = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base"}
    env = (ROOT / "environment.yml").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M).group(1)
    names = re.findall(r'"([A-Za-z0-9_.-]+)', block)
    assert names, "no dependencies found in pyproject.toml"
    missing = [n for n in names if not re.search(rf"^\s*-\s*{re.escape(conda_name.get(n, n))}\b", env, re.M)]
    assert not missing, f"environment.yml lacks {missing}"
    # repo2docker copies the whole checkout before building an environment that names a local path
    # (its conda buildpack's _should_preassemble_env), and then rebuilds it on every commit.
    assert not re.search(r"^\s*-\s*(-e\s|\.|/|file:)", env, re.M), "environment.yml installs from the checkout"


def test_notebooks_do_not_use_site_only_macros():
    """The MathJax macros of _config.yml exist on the site only: Colab and Jupyter render a
    notebook's Markdown without them, so chapters spell the commands out."""
    config = (ROOT / "_config.yml").read_text()
    block = re.search(r"^\s+macros:\n((?:\s{10,}\w+:.*\n)+)", config, re.M)
    assert block, "no MathJax macros found in _config.yml"
    macros = re.findall(r"^\s+(\w+):", block.group(1), re.M)
    for nb in NOTEBOOKS:
        text = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown")
        used = [m for m in macros if re.search(rf"\\{m}(?![A-Za-z])", text)]
        assert not used, f"{nb.name} uses site-only macros {used}"


# ------------------------------------------------------------------------------------- figures


# Figures drawn only where their data exists (a GPU benchmark record): a reference to their number would
# be unresolved, and fail the build, wherever they are absent.
CONDITIONAL_FIGURES = {"fig-bandwidth"}


def figure_cells(nb: pathlib.Path) -> list[dict]:
    """The code cells that draw a figure (through lnbook.plots, directly or in an experiments module)."""
    cells = json.loads(nb.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code"
            and re.search(r"plots\.figure\(|\.block_diagram\(", "".join(c["source"]))]




@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_has_a_name_and_caption_and_is_referred_to(nb):
    cells = figure_cells(nb)
    assert cells, f"{nb.name}: no figure cell found"
    prose = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown")
    names = []
    for cell in cells:
        fig = cell["metadata"].get("mystnb", {}).get("figure", {})
        assert fig.get("name", "").startswith("fig-") and fig.get("caption"), f"{nb.name}: {cell['id']} has no name or caption"
        names.append(fig["name"])
        if fig["name"] not in CONDITIONAL_FIGURES:
            assert f"{{numref}}`{fig['name']}`" in prose, f"{nb.name}: {fig['name']} is never referred to by number"
    assert len(set(names)) == len(names), f"{nb.name}: figure names repeat: {names}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_figure_cells_keep_the_book_text_size(nb):
    """A font size set in a cell would undercut lnbook.plots.SMALLEST_PT."""
    for cell in figure_cells(nb):
        assert not re.search(r"fontsize\s*=", "".join(cell["source"])), f"{nb.name}: {cell['id']} sets a font size"


def test_plots_stack_panels_in_one_column_of_legible_text():
    import matplotlib

    matplotlib.use("Agg")
    from lnbook import plots

    fig, axes = plots.figure(ncols=2, nrows=2)
    assert axes.shape == (2, 2)
    assert fig.get_size_inches()[0] == plots.COLUMN_IN  # four panels, one column wide
    assert fig.get_size_inches()[1] == 4 * plots.PANEL_HEIGHT_IN
    lefts = {round(ax.get_position().x0, 3) for ax in axes.flat}
    assert len(lefts) == 1, "panels side by side"
    axes[0, 0].set(xlabel="x", title="t")
    axes[0, 0].plot([1, 2], label="a")
    axes[0, 0].legend()
    assert plots.smallest_text_pt(fig) >= plots.SMALLEST_PT
    one, ax = plots.figure(width=99)
    assert one.get_size_inches()[0] == plots.COLUMN_IN and not hasattr(ax, "shape")
    matplotlib.pyplot.close("all")
