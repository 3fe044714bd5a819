"""The shape of the library: chapters own their computations, the library owns what they share.

Read with ``ast`` (no imports needed): which experiments module belongs to which chapter, what it
imports, how long each file is, and whether the maps (``lnbook/__init__.py``, ``CONTRIBUTING.md``)
name every module.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import pytest
from conftest import claim_params

from lnbook import claims

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "lnbook"
EXPERIMENTS = LIB / "experiments"
MAX_LINES = 750  # a file one can hold in one's head (issue 14)


def _chapter(path: pathlib.Path) -> str | None:
    """The module's ``CHAPTER`` (a chapter module), or None (a module the chapters share)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CHAPTER" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def _imports_under(path: pathlib.Path, package: str) -> set[str]:
    """The modules of ``package`` that ``path`` imports, by their first name under it (``from lnbook import
    bench`` and ``from lnbook.bench import x`` both give "bench" under "lnbook")."""
    depth = package.count(".") + 1
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
            found.add(node.module.split(".")[depth])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[depth] for a in node.names if a.name.startswith(package + ".")}
    return found


def _experiments_imports(path: pathlib.Path) -> set[str]:
    """The lnbook.experiments modules that ``path`` imports, by module name."""
    return _imports_under(path, "lnbook.experiments")


MODULES = sorted(p for p in EXPERIMENTS.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_chapter_module_imports_another_chapter_module(path):
    """Chapter modules import only the shared ones (common, toys): not another chapter's, nor a sibling of
    their own chapter (what two need moves down to a shared module)."""
    for name in _experiments_imports(path):
        theirs = _chapter(EXPERIMENTS / f"{name}.py")
        assert theirs is None, f"{path.stem} ({_chapter(path)}) imports {name}, a module of {theirs}"


def test_the_import_walk_sees_imports():
    # The walk above would pass vacuously if it found nothing: it must see known imports.
    assert {"common", "toys"} <= _experiments_imports(EXPERIMENTS / "why.py")
    assert _chapter(EXPERIMENTS / "why.py") == "book/04_why" and _chapter(EXPERIMENTS / "toys.py") is None


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(LIB)))
def test_no_library_file_is_too_long_to_hold(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(LIB)} has {n} lines"


@pytest.mark.parametrize("path", [p for p in MODULES if _chapter(p) is not None], ids=lambda p: p.stem)
def test_chapter_module_docstring_names_its_chapter_and_sections(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert _chapter(path) in doc, f"{path.stem}: the docstring does not name {_chapter(path)}"
    assert "Section" in doc, f"{path.stem}: the docstring does not name the chapter's sections"


def _sections(notebook: pathlib.Path) -> dict[str, str]:
    """Claim ID -> the ## section of ``notebook`` whose cells show its card."""
    out, section = {}, None
    for cell in json.loads(notebook.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            section = next((h[3:].strip() for h in reversed(text.splitlines()) if h.startswith("## ")), section)
        else:
            out |= {cid: section for cid in claims.cards_in([text])}
    return out


@pytest.mark.parametrize("claim_id", claim_params())
def test_check_docstring_ends_with_a_link_to_the_section_that_shows_it(claim_id):
    c = claims.registry()[claim_id]
    chapter = claims.chapter_of(c)
    section = _sections(ROOT / f"{chapter}.ipynb").get(claim_id)
    link = f'See {chapter}.ipynb, section "{section}".'
    assert (c.check.__doc__ or "").rstrip().endswith(link), f"{claim_id}: expected the docstring to end with {link!r}"


def _library_modules() -> list[str]:
    """Every module of the package as a dotted name below lnbook (``kernels.rownorm``, ``claims``, …)."""
    names = []
    for p in sorted(LIB.rglob("*.py")):
        parts = p.relative_to(LIB).with_suffix("").parts
        if parts[-1] not in ("__init__", "__main__"):
            names.append(".".join(parts))
    return names


def test_contributing_names_every_library_module():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    missing = [m for m in _library_modules() if not re.search(rf"`([\w/]+/)?{re.escape(m.split('.')[-1])}(\.py)?`", text)]
    assert not missing, f"CONTRIBUTING.md does not name {missing}"


ABOVE_KERNELS = {"bench", "claims", "experiments", "readers", "plots", "sources", "glossary", "untested"}


def _lnbook_imports(path: pathlib.Path) -> set[str]:
    return _imports_under(path, "lnbook")


@pytest.mark.parametrize("path", sorted((LIB / "kernels").glob("*.py")), ids=lambda p: p.name)
def test_the_kernels_import_nothing_above_them(path):
    """The kernels sit below the benchmark, the claims and the chapters: an import of those from
    ``kernels/`` would run back up a layer (the byte model lives in kernels/traffic.py for this)."""
    up = _lnbook_imports(path) & ABOVE_KERNELS
    assert not up, f"kernels/{path.name} imports {sorted(up)}"


def test_the_upward_import_check_sees_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from lnbook import bench\nfrom lnbook.claims import claim\n")
    assert _lnbook_imports(bad) & ABOVE_KERNELS == {"bench", "claims"}


def test_every_file_contributing_names_exists():
    """The other direction: each ``path.py`` and each module of the "Every module" table in CONTRIBUTING.md
    is a file of the tree (a renamed or deleted module leaves the map wrong)."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    table = text.split("## Every module", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w/.]+)` \|", table, re.M)
    assert len(rows) > 10, "the module table was not found"
    missing = [r for r in rows if r != "lnbook/__init__.py" and not any(
        (LIB / c).exists() for c in (r, f"{r}.py", f"{r.rstrip('/')}", f"kernels/{r}.py", f"experiments/{r}"))]
    files = set(re.findall(r"`((?:tools|tests|_ext|lib/lnbook)/[\w/]+\.py)`", text))
    missing += sorted(f for f in files if not (ROOT / f).exists())
    assert not missing, f"CONTRIBUTING.md names what does not exist: {missing}"


def test_package_docstring_lists_every_top_level_module():
    doc = ast.get_docstring(ast.parse((LIB / "__init__.py").read_text()))
    listed = set(re.findall(r"^(\w+)\s{2,}", doc, re.M))
    top = {m.split(".")[0] for m in _library_modules()}
    assert listed == top, f"lnbook/__init__.py lists {sorted(listed - top)} extra, {sorted(top - listed)} missing"


@pytest.mark.xdist_group("probe")
def test_xdist_groups_reach_the_scheduler(request):
    """The suite relies on ``--dist loadgroup`` (one claim's tests, the compile table's users and the
    launch simulation each in one process); pytest 9.2 with pytest-xdist 3.8 silently stopped grouping."""
    if not hasattr(request.config, "workerinput"):
        pytest.skip("not run under pytest-xdist")
    if not request.config.option.loadgroup:  # a worker's copy of --dist loadgroup (xdist's setup_config)
        pytest.skip("not run with --dist loadgroup")
    assert request.node.nodeid.endswith("@probe"), (
        f"expected pytest-xdist to tag this test with its group ('…@probe'), got {request.node.nodeid!r}")
