"""Statements of the seeds that the book does not test, one module per seed (``s000`` … ``s004``, a long
seed in more than one), each with its anchors and the reason it cannot be checked: :func:`statements`
reads them all, in the order of :data:`SEEDS`."""

from lnbook.sources import Untested
from lnbook.untested import s000, s001, s002, s003, s004, s004_second_half

SEEDS = (s000, s001, s002, s003, s004, s004_second_half)


def statements() -> list[Untested]:
    """Every statement the book does not test, seed by seed."""
    return [u for module in SEEDS for u in module.UNTESTED]
