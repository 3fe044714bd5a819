"""Keep every notebook's first cell, the bootstrap, in step with ``_config.yml``.

The repository URL and branch are written once, in ``_config.yml``; the bootstrap cell needs them
to install ``lnbook`` in Colab, so this script writes them into the first code cell of every
notebook under ``book/``. Run it as ``make bootstrap`` (or ``python -m tools.notebooks``) after
changing the repository; ``tests/test_book.py`` fails while any notebook is out of step.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

TEMPLATE = '''\
# Make `lnbook` importable: nothing to do in a checkout or on Binder; in Colab, install it from the
# book's repository and branch (pip keeps Colab's torch and triton when they meet lnbook's floors).
import importlib.util
import pathlib
import subprocess
import sys

if importlib.util.find_spec("lnbook") is None:
    here = pathlib.Path.cwd().resolve()
    lib = next((p / "lib" for p in (here, *here.parents) if (p / "lib" / "lnbook").is_dir()), None)
    if lib is not None:
        sys.path.insert(0, str(lib))
    else:  # repository and branch are written here from _config.yml by `make bootstrap`
        source = "git+{url}@{branch}"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)'''


def repository(config: pathlib.Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(url, branch)`` of the ``repository:`` section of the book's configuration."""
    section = re.search(r"^repository:\n((?:[ \t]+.*\n?)+)", config.read_text(), re.M)
    fields = dict(re.findall(r"^\s+(\w+):\s*(\S+)", section.group(1), re.M)) if section else {}
    if "url" not in fields or "branch" not in fields:
        raise ValueError(f"{config}: repository: expected url and branch entries, got {sorted(fields)}")
    return fields["url"], fields["branch"]


def bootstrap_source() -> str:
    url, branch = repository()
    return TEMPLATE.format(url=url, branch=branch)


def toc_files() -> list[str]:
    """Every ``file:`` or ``root:`` entry of ``_toc.yml`` (simple enough to read without YAML)."""
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"^\s*(?:-\s*file|root):\s*(\S+)", text, re.M)


def notebooks() -> list[pathlib.Path]:
    return sorted(BOOK.glob("*.ipynb"))


def sync(paths: list[pathlib.Path]) -> list[pathlib.Path]:
    """Rewrite the first code cell of each notebook to the bootstrap; returns those changed."""
    source, changed = bootstrap_source(), []
    for path in paths:
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "".join(cell["source"]) == source and "remove-cell" in tags:
            continue
        cell["source"] = source.splitlines(keepends=True)
        cell["metadata"]["tags"] = sorted(set(tags) | {"remove-cell"})
        path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")  # as nbformat writes
        changed.append(path)
    return changed


if __name__ == "__main__":
    for path in sync(notebooks()):
        print(f"updated {path.relative_to(ROOT)}")
    sys.exit(0)
