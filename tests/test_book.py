"""The book's structure: table of contents, notebooks without outputs, one bootstrap cell everywhere."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from lnbook import claims

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(p for p in BOOK.glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]


def toc_files() -> list[str]:
    # _toc.yml is simple enough to read without a YAML parser: every "file:" or "root:" entry.
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"^\s*(?:-\s*file|root):\s*(\S+)", text, re.M)


def first_code_cell(nb: pathlib.Path) -> str:
    cells = json.loads(nb.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_every_page_is_in_the_toc_and_every_toc_entry_exists():
    listed = set(toc_files())
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in [*BOOK.glob("*.ipynb"), *BOOK.glob("*.md")]}
    assert pages == listed, f"only in book/: {sorted(pages - listed)}; only in _toc.yml: {sorted(listed - pages)}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{nb.name}: cells {dirty} have outputs; clear them before committing"


def test_same_bootstrap_cell_in_every_notebook():
    cells = {nb.name: first_code_cell(nb) for nb in NOTEBOOKS}
    assert len(set(cells.values())) == 1, f"first code cells differ: {sorted(cells)}"
    assert "lnbook" in next(iter(cells.values()))


def test_bootstrap_makes_lnbook_importable_from_a_checkout(tmp_path):
    """Run the bootstrap where lnbook is NOT on the path (as in a fresh clone without pip install)."""
    lib = ROOT / "lib"
    script = textwrap.dedent(f"""
        import importlib.util, pathlib, sys
        sys.path = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path({str(lib)!r})]
        assert importlib.util.find_spec("lnbook") is None, "lnbook still importable: the test proves nothing"
    """) + first_code_cell(NOTEBOOKS[0]) + textwrap.dedent("""
        import lnbook
        print(lnbook.__file__)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=BOOK, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert pathlib.Path(out.stdout.strip()).resolve().is_relative_to(lib.resolve())


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
