"""The statements of seed 004 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

UNTESTED = [
]
