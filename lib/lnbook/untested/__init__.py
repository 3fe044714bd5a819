"""Statements of the seeds that the book does not test, one module per seed (``s000`` … ``s004``), each
with its anchors and the reason it cannot be checked: :func:`lnbook.sources.untested_list` reads them all."""
