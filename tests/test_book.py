"""The book's structure: table of contents, notebooks without outputs, one bootstrap cell everywhere."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

from lnbook import claims

import notebooks as notebooks_tool  # tools/notebooks.py (tests/conftest.py puts tools/ on the path)

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


def test_every_registered_claim_is_shown_in_a_chapter():
    shown = set()
    for nb in CHAPTERS:
        shown |= set(re.findall(r"claims\.show\('([A-Z]\d\d)'\)", nb.read_text()))
    assert set(claims.registry()) <= shown, f"registered but never shown: {sorted(set(claims.registry()) - shown)}"


def test_glued_keys_exist():
    """Every {glue:text}`ID_name` in a chapter names a number its claim computes."""
    registry = claims.registry()
    for nb in CHAPTERS:
        for cid, name in re.findall(r"\{glue:text\}`([A-Z]\d\d)_(\w+?)(?::[^`]*)?`", nb.read_text()):
            assert cid in registry, f"{nb.name}: glue of unknown claim {cid}"
            assert name in claims.run(cid).evidence.numbers, f"{nb.name}: {cid}_{name} is not computed"


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
    assert re.search(r"^\s*-\s*-e \.(\s|$)", env, re.M), "environment.yml does not install lnbook itself (-e .)"


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
