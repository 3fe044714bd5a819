"""The statements of seed 000 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

UNTESTED = [
]
