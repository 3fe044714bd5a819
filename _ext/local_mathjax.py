"""Serve MathJax from the built site rather than a CDN, so the book renders offline.

MathJax 3 comes from the ``django-static-mathjax`` wheel on PyPI (in the ``book`` extra), which
ships MathJax's ``es5`` build as package data; nothing in it depends on Django. When the package
is missing the build keeps Sphinx's default (the CDN), so a build never fails for its sake.
"""

from __future__ import annotations

import pathlib
import shutil

TARGET = "mathjax"  # under _static/
SCRIPT = "tex-mml-chtml.js"  # the combined TeX + MathML input, CommonHTML output (Sphinx's default)


def es5_dir() -> pathlib.Path | None:
    try:
        import mathjax
    except ImportError:
        return None
    path = pathlib.Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    return path if (path / SCRIPT).is_file() else None


def _use_local(app, config) -> None:
    if es5_dir() is not None:
        config.mathjax_path = f"{TARGET}/{SCRIPT}"  # relative paths are resolved under _static/


def _copy(app, exception) -> None:
    source = es5_dir()
    if exception is None and source is not None and app.builder.format == "html":
        shutil.copytree(source, pathlib.Path(app.outdir) / "_static" / TARGET, dirs_exist_ok=True)


def setup(app):
    app.connect("config-inited", _use_local)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
