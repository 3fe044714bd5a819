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

from lnbook import cards, claims

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
            out |= {cid: section for cid in cards.cards_in([text])}
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


def _argument_checking(source: str) -> list[str]:
    """The argument checking written in ``source``: raise statements, functions named check…/_check…, and
    functions whose calls into lnbook.args are more than one or not their first statement."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise):
            found.append(f"raise (line {node.lineno})")
        if not isinstance(node, ast.FunctionDef):
            continue
        if node.name.lstrip("_").startswith("check"):
            found.append(f"def {node.name}")
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        calls = [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                 and getattr(c.func.value, "id", None) == "args"]
        first = body[0] if body else None
        if len(calls) > 1 or (calls and not any(c is calls[0] for c in ast.walk(first))):
            found.append(f"{node.name}: {len(calls)} calls into args, the first not at its top")
    return found


def test_norms_holds_the_mathematics_only():
    """The argument checks of the reference norms live in lnbook.args: norms.py raises nothing itself and
    each of its functions makes at most one call into args, at its top."""
    found = _argument_checking((LIB / "norms.py").read_text())
    assert not found, f"norms.py checks arguments itself: {found}"


def test_the_argument_checking_walk_sees_checks():
    # The test above would pass vacuously if the walk found nothing: args.py is all checks.
    found = _argument_checking((LIB / "args.py").read_text())
    assert "def check_norm_args" in found and "def _check_eps" in found and any(f.startswith("raise") for f in found)
    two = "def f(x):\n    args.check_a(x)\n    args.check_b(x)\n\n\ndef g(x):\n    y = x\n    args.check_a(y)\n"
    assert [f.split(":")[0] for f in _argument_checking(two)] == ["f", "g"]


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


def _node(path: pathlib.Path) -> str:
    """A file's node in the library's import graph: its module, or its subpackage as one node."""
    parts = path.relative_to(LIB).with_suffix("").parts
    return parts[0]


def _import_graph(paths) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in paths:
        node = _node(path)
        graph.setdefault(node, set()).update(_lnbook_imports(path) - {node})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of its nodes, or None when it has none (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = "open", stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = "done", stack.pop()
        return None

    return next((c for n in sorted(graph) if n not in state and (c := visit(n))), None)


def test_the_library_s_imports_run_one_way():
    """No import runs back up a layer: the graph of lnbook's modules (a subpackage as one node, imports
    inside functions included) has no cycle, so every module stands above all it imports."""
    graph = _import_graph(sorted(LIB.rglob("*.py")))
    assert {"claims", "experiments", "kernels", "untested"} <= set(graph)
    assert _cycle(graph) is None, f"a cycle of imports: {' -> '.join(_cycle(graph))}"


def test_the_cycle_search_finds_one():
    assert _cycle({"claims": {"sources"}, "sources": {"untested"}, "untested": {"sources"}}) == ["sources", "untested", "sources"]
    assert _cycle({"experiments": {"claims"}, "claims": {"sources"}}) is None


def _loads_by_name(path: pathlib.Path) -> bool:
    """True when ``path`` imports modules by a computed name (``importlib.import_module``, ``pkgutil``,
    ``__import__``): imports an import graph cannot see."""
    tree = ast.parse(path.read_text())
    names = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(tree) if isinstance(n, (ast.Attribute, ast.Name))}
    return bool(names & {"import_module", "iter_modules", "__import__"})


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(LIB)))
def test_no_library_module_imports_by_a_computed_name(path):
    assert not _loads_by_name(path), f"{path.relative_to(LIB)} imports a module by a computed name"


def test_the_computed_name_check_sees_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib\nimportlib.import_module('lnbook.experiments.why')\n")
    assert _loads_by_name(bad)


def test_the_experiments_package_lists_every_chapter_module():
    """Importing lnbook.experiments registers every claim: its one list names every module with a CHAPTER."""
    import lnbook.experiments as experiments

    listed = {m.__name__.rsplit(".", 1)[1] for m in experiments.CHAPTER_MODULES}
    assert listed == {p.stem for p in MODULES if _chapter(p)}
    assert {"common", "toys"}.isdisjoint(listed)


def test_the_untested_package_lists_every_seed_module():
    from lnbook import untested

    listed = {m.__name__.rsplit(".", 1)[1] for m in untested.SEEDS}
    assert listed == {p.stem for p in (LIB / "untested").glob("s*.py")} and len(listed) >= 5


# The edits of the interpreter's own sys.path allowed in the repository's files, each with its reason. The
# tools are a package run with `python -m tools.<name>`, the tests import them through pytest's `pythonpath`
# (pyproject.toml) and the Sphinx extensions as `_ext.<name>`, so nothing else needs one. Code a file only
# writes (a notebook's bootstrap cell, a test Sphinx build's conf.py) is a string here, not an edit.
SYS_PATH_EDITS_ALLOWED = {
    ("tests/test_kernel_lessons.py", 'monkeypatch.setattr(sys, "path", [*sys.path, "/somewhere/lib"])'):
        "the path of a plain clone, where lnbook is found through sys.path alone, for one test; undone after it",
}


def _sys_path_edits(path: pathlib.Path) -> list[str]:
    """The statements of ``path`` that change ``sys.path``: a method that edits it (insert, append, …), an
    assignment to it or to a slice of it, ``setattr(sys, "path", …)`` (monkeypatch's too), ``from sys
    import path``; each as its source text, in the file's order."""
    text = path.read_text()
    is_sys_path = lambda n: isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", None) == "sys"
    edits = []
    for node in ast.walk(ast.parse(text)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        if isinstance(node, ast.Call):
            func, args = node.func, node.args
            found = (isinstance(func, ast.Attribute) and is_sys_path(func.value)
                     and func.attr in ("insert", "append", "extend", "remove", "pop", "clear")) or (
                (getattr(func, "id", None) or getattr(func, "attr", None)) == "setattr" and len(args) >= 2
                and getattr(args[0], "id", None) == "sys" and getattr(args[1], "value", None) == "path")
        elif isinstance(node, ast.ImportFrom):
            found = node.module == "sys" and any(a.name == "path" for a in node.names)
        else:
            found = any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)) for t in targets)
        if found:
            edits.append((node.lineno, ast.get_source_segment(text, node)))
    return [segment for _, segment in sorted(edits)]


SOURCES = sorted(p for d in ("tools", "tests", "lib", "_ext") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_edits_sys_path(path):
    """No tool, test, library module or extension puts a folder on the interpreter's path: the tools are a
    package (``python -m tools.<name>``), found from the repository root (issue 23)."""
    name = str(path.relative_to(ROOT))
    edits = [e for e in _sys_path_edits(path) if (name, e) not in SYS_PATH_EDITS_ALLOWED]
    assert not edits, f"{name} edits sys.path: {edits}"


def test_the_sys_path_check_sees_edits(tmp_path):
    """The null case: every kind of edit is found, a string that holds one (written code) and a read are not;
    and each allowed edit is still there (an allowance outliving its edit would excuse the next one)."""
    bad = tmp_path / "bad.py"
    bad.write_text('import sys\nfrom sys import path\nsys.path.insert(0, "tools")\nsys.path.append("x")\n'
                   'sys.path = ["x"]\nsys.path[:0] = ["x"]\nsys.path += ["x"]\nsetattr(sys, "path", [])\n'
                   'monkeypatch.setattr(sys, "path", [])\nBOOT = "sys.path.insert(0, lib)"\nPP = ":".join(sys.path)\n')
    assert _sys_path_edits(bad) == ["from sys import path", 'sys.path.insert(0, "tools")', 'sys.path.append("x")',
                                    'sys.path = ["x"]', 'sys.path[:0] = ["x"]', 'sys.path += ["x"]',
                                    'setattr(sys, "path", [])', 'monkeypatch.setattr(sys, "path", [])']
    for name, edit in SYS_PATH_EDITS_ALLOWED:
        assert edit in _sys_path_edits(ROOT / name), f"{name} no longer has the allowed edit {edit!r}"
