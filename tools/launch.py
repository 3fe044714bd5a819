"""Launch notebooks: every page of the book as plain Jupyter and Colab read it.

The chapters are MyST notebooks that only the Sphinx build fully understands: ``{glue:text}`` roles,
``{cite}`` roles, ``{exercise}``/``{solution}`` fences and claim cards printed by code cells. A reader
who launches a chapter in Colab or Binder opens ``book/launch/<name>.ipynb`` instead, written here from
the same source and from the book's build:

* glued numbers are substituted (formatted as myst-nb formats them) from the executed notebook;
* each card cell (``cards.show('ID');``) becomes a Markdown cell holding the card's HTML from the build;
* each cell tagged ``launch-stored`` (the ledger's tables, the Chinese page's) becomes a Markdown cell holding
  its Markdown output from the build, or goes when it has none: a page of every claim's result would
  otherwise run all the checks again in the reader's session (``python -m lnbook.claims`` does that);
* exercises are numbered, their solutions folded in ``<details>``;
* citations become author–year text and a References cell at the end (``book/references.bib``): no
  in-page link, since Colab follows none (only its own ``#scrollTo=``);
* hidden-input cells are marked as JupyterLab hides code (``source_hidden``) and as Colab does
  (``cellView: "form"``);
* ``{doc}`` links point at the other launch notebooks; remaining directives are rendered or refused.

The values from the build are stored in the notebook's metadata (``lnbook``), so that
``tests/test_launch.py`` can regenerate every notebook from its chapter without a build and demand the
same bytes. Usage (``make launch``, ``make launch-urls``)::

    python -m tools.launch            # regenerate book/launch/ from the build (or executing stale pages)
    python -m tools.launch urls       # one line per page: name, Colab URL, Binder URL
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

from lnbook import cards
from tools import notebooks as notebooks_tool  # toc, repository, bootstrap

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
LAUNCH = BOOK / "launch"
EXECUTED = ROOT / "_build" / "jupyter_execute" / "book"  # where Jupyter Book keeps executed pages
EXECUTED_HERE = ROOT / "_build" / "launch"  # pages this script executed itself


STORED = "launch-stored"  # the tag of a cell whose launch version is its output from the build
GLUE = re.compile(r"\{glue(?::text)?\}`([^`]+)`")
CITE = re.compile(r"\{cite(?::(p|t|ps|ts))?\}`([^`]+)`")
DOC = re.compile(r"\{doc\}`([^`<]*?)\s*(?:<([^`>]+)>)?`")
MATH_ROLE = re.compile(r"\{math\}`([^`]+)`")
NUMREF = re.compile(r"\{numref\}`(?:([^`<]*?)\s*<)?([\w-]+)>?`")  # {numref}`label` or {numref}`text %s <label>`
FENCE = re.compile(r"^(?P<mark>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=mark)[ \t]*$",
                   re.M | re.S)
TARGET = re.compile(r"^\(([\w-]+)\)=[ \t]*$", re.M)
EQ_LABEL = re.compile(r"(\$\$)[ \t]*\(([\w-]+)\)[ \t]*$", re.M)
ADMONITIONS = {"admonition", "note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
               "error", "seealso"}
# What a Markdown cell must not hold once converted: MyST that plain Jupyter would show raw.
RAW_MYST = {
    "role": re.compile(r"\{[a-z][\w:-]*\}`"),
    "directive": re.compile(r"^\s*(?:`{3,}|:{3,})\{", re.M),
    "target": re.compile(r"^\([\w-]+\)=\s*$", re.M),
    "option": re.compile(r"^:(?:label|class|name|dropdown|nonumber):", re.M),
    "substitution": re.compile(r"\{\{[^}]*\}\}"),
}


def raw_myst(text: str) -> list[str]:
    """The MyST constructs left in ``text`` (roles, directives, targets, options, substitutions)."""
    return [f"{kind}: {m.group(0)!r}" for kind, rx in RAW_MYST.items() for m in rx.finditer(text)]


# ----------------------------------------------------------------------------- pages and the build


def pages() -> list[str]:
    """The notebook pages of the table of contents, by name (``01_foundations``, ``ledger``, …)."""
    return [pathlib.Path(f).name for f in notebooks_tool.toc_files() if (ROOT / f).with_suffix(".ipynb").is_file()]


def read(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def write(nb: dict, path: pathlib.Path) -> None:
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")  # as nbformat writes


def _code(nb: dict) -> list[str]:
    """The code cells after the bootstrap (which computes nothing the page shows)."""
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][1:]


def _stored(cell: dict) -> bool:
    return cell["cell_type"] == "code" and STORED in cell.get("metadata", {}).get("tags", [])


def from_build(path: pathlib.Path) -> dict:
    """What a launch notebook takes from an executed page: glued values (their ``text/plain``, as
    myst-nb stores them), each card's HTML, by claim ID, and the Markdown output of each ``launch-stored``
    cell, by cell ID. A Jupyter Book build moves the glued outputs out of the notebook into
    ``<page>.glue.json`` beside it; a plain execution keeps them."""
    glue, card_html, stored = {}, {}, {}
    sidecar = path.with_suffix(".glue.json")
    if sidecar.is_file():
        glue = {key: "".join(out["data"]["text/plain"]) for key, out in json.loads(sidecar.read_text()).items()}
    for cell in read(path)["cells"]:
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            scrap = out.get("metadata", {}).get("scrapbook", {})
            if "name" in scrap:
                glue[scrap["name"]] = "".join(out["data"][scrap.get("mime_prefix", "") + "text/plain"])
            elif (card := cards.card_call("".join(cell["source"]))) and "text/html" in out.get("data", {}):
                card_html[card] = card_html.get(card, "") + "".join(out["data"]["text/html"])
            elif _stored(cell) and "text/markdown" in out.get("data", {}):
                stored[cell["id"]] = stored.get(cell["id"], "") + "".join(out["data"]["text/markdown"])
    return {"glue": glue, "cards": card_html, "stored": stored}


def needs_build(chapter: dict) -> bool:
    """Whether a page quotes anything from its build: a glued value, a card or a stored output."""
    return any((c["cell_type"] == "markdown" and GLUE.search("".join(c["source"])))
               or (c["cell_type"] == "code" and cards.card_call("".join(c["source"]))) or _stored(c)
               for c in chapter["cells"])


def executed_page(name: str, execute: bool = True) -> pathlib.Path | None:
    """The executed notebook of page ``name``: the book build's if its code is the chapter's, else one
    executed here (kept under _build/launch), else None when ``execute`` is false."""
    code = _code(read(BOOK / f"{name}.ipynb"))
    for folder in (EXECUTED, EXECUTED_HERE):
        path = folder / f"{name}.ipynb"
        if path.is_file() and _code(read(path)) == code:
            return path
    if not execute:
        return None
    import nbclient  # the book extra's runner, as Jupyter Book executes pages
    import nbformat

    print(f"executing book/{name}.ipynb (no current build of it)", flush=True)
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}})
    client.execute()
    EXECUTED_HERE.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED_HERE / f"{name}.ipynb")
    return EXECUTED_HERE / f"{name}.ipynb"


# ----------------------------------------------------------------------------- Markdown conversion


def format_glue(text: str, spec: str) -> str:
    """A glued value as ``{glue:text}`key:spec``` shows it (myst_nb.core.variables.format_plain_text)."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if spec == "":
        return str(value)
    kind = spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, spec)


def bibliography(path: pathlib.Path = BOOK / "references.bib") -> dict:
    """``{key: {"authors": [last names], "year", "text"}}`` from the book's BibTeX file (pybtex)."""
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    plain = lambda s: str(Text.from_latex(s)).replace("{", "").replace("}", "")
    refs = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author", [])
        lasts = [plain(" ".join(p.prelast_names + p.last_names)) for p in people]
        names = ", ".join(plain(" ".join(p.first_names + p.middle_names + p.prelast_names + p.last_names))
                          for p in people)
        f = entry.fields
        venue = f.get("journal") or f.get("booktitle") or f.get("publisher") or f.get("howpublished", "")
        link = f.get("url") or (f"https://doi.org/{f['doi']}" if "doi" in f else "")
        title = plain(f.get("title", key))
        stop = "" if title[-1] in ".?!" else "."
        title = f"[{title}]({link})" if link else f"*{title}*"
        text = f"{names} ({f.get('year', 'n.d.')}). {title}{stop}" + (f" {plain(venue)}." if venue else "")
        refs[key] = {"authors": lasts, "year": f.get("year", "n.d."), "text": text}
    return refs


def _short(authors: list[str]) -> str:
    if len(authors) == 1:
        return authors[0]
    if len(authors) == 2:
        return f"{authors[0]} and {authors[1]}"
    return f"{authors[0]} et al."


def _cite(kind: str | None, keys: str, refs: dict, cited: list[str]) -> str:
    """Author–year text, not a link: Colab follows no in-page anchor (only its own ``#scrollTo=``), so
    the reader finds the entry in the References cell at the end."""
    names = []
    for key in (k.strip() for k in keys.split(",")):
        if key not in refs:
            raise ValueError(f"{{cite}}: expected a key of book/references.bib, got {key!r}")
        if key not in cited:
            cited.append(key)
        r = refs[key]
        names.append(f"{_short(r['authors'])} ({r['year']})" if kind in ("t", "ts") else f"{_short(r['authors'])}, {r['year']}")
    return ", ".join(names) if kind in ("t", "ts") else "(" + "; ".join(names) + ")"


def page_title(name: str) -> str:
    """A page's first Markdown heading (what ``{doc}`` shows as the link text)."""
    for cell in read(BOOK / f"{name}.ipynb")["cells"]:
        m = re.search(r"^#\s+(.+)$", "".join(cell["source"]), re.M) if cell["cell_type"] == "markdown" else None
        if m:
            return m.group(1).strip()
    return name


def _doc(text: str, target: str | None) -> str:
    target = (target or text).strip()
    name = pathlib.PurePosixPath(target).name
    if name not in pages():
        raise ValueError(f"{{doc}}: expected a page of _toc.yml, got {target!r}")
    return f"[{text.strip() if text.strip() and target != text.strip() else page_title(name)}]({name}.ipynb)"


class Converter:
    """Turns one page's Markdown cells into plain Markdown, numbering exercises as it goes."""

    def __init__(self, glue: dict, refs: dict, figures: dict[str, str]):
        self.glue, self.refs, self.figures = glue, refs, figures
        self.cited: list[str] = []
        self.exercises: dict[str, int] = {}

    def glued(self, m: re.Match) -> str:
        key, _, spec = m.group(1).partition(":")
        if key not in self.glue:
            raise ValueError(f"{{glue:text}}: expected a key glued by the build, got {key!r} (rebuild the page)")
        return format_glue(self.glue[key], spec)

    def numbered(self, m: re.Match) -> str:
        text, label = m.group(1), m.group(2)
        if label not in self.figures:
            raise ValueError(f"{{numref}}: expected the name of a figure of this page, got {label!r}")
        return text.replace("%s", self.figures[label]) if text else f"Figure {self.figures[label]}"

    def inline(self, text: str) -> str:
        text = GLUE.sub(self.glued, text)
        text = NUMREF.sub(self.numbered, text)
        text = CITE.sub(lambda m: _cite(m.group(1), m.group(2), self.refs, self.cited), text)
        text = DOC.sub(lambda m: _doc(m.group(1), m.group(2)), text)
        text = MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
        text = TARGET.sub("", text)  # a target only anchors in-page links, which Colab does not follow
        return EQ_LABEL.sub(r"\1", text)

    def directive(self, m: re.Match) -> str:
        name, arg = m.group("name"), m.group("arg").strip()
        lines = m.group("body").splitlines()
        options = dict(re.match(r":([\w-]+):\s*(.*)", line).groups() for line in lines if re.match(r":[\w-]+:", line))
        body = "\n".join(line for line in lines if not re.match(r":[\w-]+:", line)).strip("\n")
        body = self.markdown(body)  # nested fences and roles
        if name == "exercise":
            number = self.exercises.setdefault(options.get("label", f"#{len(self.exercises)}"), len(self.exercises) + 1)
            return f"**Exercise {number}.**{' ' + arg if arg else ''}\n\n{body}"
        if name == "solution":
            number = self.exercises.get(arg)
            if number is None:
                raise ValueError(f"{{solution}}: expected the label of an earlier exercise, got {arg!r}")
            return f"<details>\n<summary>Solution to Exercise {number}</summary>\n\n{body}\n\n</details>"
        if name in ADMONITIONS:
            title = arg or name.capitalize()
            return "\n".join([f"> **{title}**", ">", *(f"> {line}" if line else ">" for line in body.splitlines())])
        if name == "math":
            return f"$$\n{body}\n$$"
        if name == "nb-exec-table":
            return "*(The site shows a table of every page's execution time here.)*"
        raise ValueError(f"launch: no plain-Markdown rendering for the directive {{{name}}}; "
                         "add one to tools/launch.py")

    def markdown(self, text: str) -> str:
        return self.inline(FENCE.sub(self.directive, text))

    def references(self) -> str:
        items = [f'* {self.refs[key]["text"]}' for key in sorted(self.cited)]
        return "## References\n\n" + "\n".join(items)


# ----------------------------------------------------------------------------- notebooks

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
NOTE = ("*The launch version of a page of “LayerNorm, Derived”, for Colab and Jupyter: the numbers in the "
        "text, the claim cards and the references come from the book's build; running the cells recomputes "
        "the figures and tables. The first cell makes the library importable.*")


def _markdown_cell(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text.splitlines(keepends=True)}


def _code_cell(cell: dict) -> dict:
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != "remove-cell"]
    meta = {"tags": tags} if tags else {}
    if {"hide-input", "remove-input"} & set(tags):  # hidden as JupyterLab reads it, and as Colab does
        meta["jupyter"] = {"source_hidden": True}
        meta["cellView"] = "form"
    return {"cell_type": "code", "execution_count": None, "id": cell["id"], "metadata": meta, "outputs": [],
            "source": copy.copy(cell["source"])}


def _figure(cell: dict) -> dict | None:
    """A figure cell's name and caption (``mystnb.figure`` in its metadata), or None."""
    return cell.get("metadata", {}).get("mystnb", {}).get("figure")


def figure_numbers(chapter: dict, number: int | None) -> dict[str, str]:
    """``{figure name: number}`` as the site numbers them (chapter.figure in a numbered chapter)."""
    names = [f["name"] for c in chapter["cells"] if c["cell_type"] == "code" and (f := _figure(c))]
    return {name: f"{number}.{i}" if number else str(i) for i, name in enumerate(names, 1)}


def convert(chapter: dict, build: dict, refs: dict | None = None) -> dict:
    """The launch notebook of ``chapter`` given the values of its build (see :func:`from_build`)."""
    figures = figure_numbers(chapter, build.get("number"))
    conv = Converter(build["glue"], bibliography() if refs is None else refs, figures)
    cells, noted = [], False
    for cell in chapter["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            cells.append(_markdown_cell(cell["id"], conv.markdown(source)))
            if not noted and source.lstrip().startswith("# "):
                cells.append(_markdown_cell("launch-note", NOTE))
                noted = True
        elif cell["cell_type"] == "code" and (card := cards.card_call(source)):
            if card not in build["cards"]:
                raise ValueError(f"card of {card}: expected its HTML in the build, found none (rebuild)")
            cells.append(_markdown_cell(cell["id"], build["cards"][card]))
        elif _stored(cell):
            if build.get("stored", {}).get(cell["id"]):
                cells.append(_markdown_cell(cell["id"], build["stored"][cell["id"]]))
        elif cell["cell_type"] == "code":
            cells.append(_code_cell(cell))
            if figure := _figure(cell):  # the caption the site shows under the figure
                caption = f"*Figure {figures[figure['name']]}: {conv.markdown(figure['caption'])}*"
                cells.append(_markdown_cell(f"{cell['id']}-caption", caption))
        else:  # a raw cell: as it is
            cells.append(copy.deepcopy(cell))
    if conv.cited:
        cells.append(_markdown_cell("launch-references", conv.references()))
    used = {m.group(1).partition(":")[0] for c in chapter["cells"] if c["cell_type"] == "markdown"
            for m in GLUE.finditer("".join(c["source"]))}
    stored = {"glue": {k: v for k, v in sorted(build["glue"].items()) if k in used},
              "cards": dict(sorted(build["cards"].items())), "number": build.get("number"),
              **({"stored": dict(sorted(build["stored"].items()))} if build.get("stored") else {})}
    meta = {"kernelspec": KERNEL, "language_info": {"name": "python"}, "lnbook": stored}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def stored_build(launch_nb: dict) -> dict:
    """The build values a launch notebook was generated from (kept in its metadata)."""
    return launch_nb["metadata"]["lnbook"]


def chapter_number(name: str) -> int | None:
    """The number the site gives page ``name`` (its position in _toc.yml's numbered part), or None."""
    import yaml

    for part in yaml.safe_load((ROOT / "_toc.yml").read_text()).get("parts", []):
        files = [pathlib.Path(c["file"]).name for c in part.get("chapters", [])]
        if part.get("numbered") and name in files:
            return files.index(name) + 1
    return None


def generate(names: list[str] | None = None) -> list[pathlib.Path]:
    """Write ``book/launch/<name>.ipynb`` for every page (or ``names``); returns those changed."""
    LAUNCH.mkdir(exist_ok=True)
    refs, changed = bibliography(), []
    for name in names or pages():
        chapter = read(BOOK / f"{name}.ipynb")
        build = from_build(executed_page(name)) if needs_build(chapter) else {"glue": {}, "cards": {}, "stored": {}}
        nb = convert(chapter, {**build, "number": chapter_number(name)}, refs)
        path = LAUNCH / f"{name}.ipynb"
        old = path.read_text() if path.is_file() else None
        write(nb, path)
        if path.read_text() != old:
            changed.append(path)
    return changed


# ----------------------------------------------------------------------------- launch URLs


def launch_path(name: str) -> str:
    """The launch notebook of page ``name`` relative to the repository root."""
    return f"book/launch/{name}.ipynb"


def urls(name: str) -> tuple[str, str]:
    """``(colab, binder)`` URLs of page ``name``'s launch notebook, built as sphinx-book-theme builds its
    launch buttons from _config.yml (classic interface: ``tree/``)."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url, branch = notebooks_tool.repository()
    org_repo = url.removeprefix("https://github.com/").strip("/")
    buttons = config.get("launch_buttons", {})
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}[buttons.get("notebook_interface", "classic")]
    colab = f"{buttons['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/{launch_path(name)}"
    binder = f"{buttons['binderhub_url'].rstrip('/')}/v2/gh/{org_repo}/{branch}?urlpath={ui}/{launch_path(name)}"
    return colab, binder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="generate", choices=["generate", "urls"])
    parser.add_argument("names", nargs="*", help="pages (default: every notebook page of _toc.yml)")
    args = parser.parse_args(argv)
    if args.command == "urls":
        for name in args.names or pages():
            print(name, *urls(name))
        return 0
    for path in generate(args.names or None):
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
