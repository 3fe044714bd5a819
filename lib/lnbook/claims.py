"""The claims registry and the ledger.

Every checkable statement of the five source texts (:mod:`lnbook.sources`) has an ID. Here each ID gets
one entry: its anchors (where the sources say it), the source's claim in our words, what the
book asserts instead (its *statement*), a verdict, and a *check* that computes the evidence.

A check returns :class:`Evidence`: named numbers (plain Python floats, glued into the prose) and
named sub-checks (booleans computed from those numbers against an independent expectation).
The statement is a format string over the numbers, so the sentence the reader sees and the value
the tests assert come from the same call.

This module is the registry and the build's records only: how a result is shown (cards, glue, listings,
the ledger's table) is :mod:`lnbook.cards`. The claims themselves are registered by the chapter modules
of :mod:`lnbook.experiments` when they are imported; the registry finds that package through the entry
point ``lnbook.claims`` of the installed distribution (pyproject.toml), so this module imports nothing
above it. From a plain checkout without an installed lnbook, import ``lnbook.experiments`` first.

``python -m lnbook.claims`` prints the ledger; ``--json`` prints it as JSON.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import re
import string
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from lnbook import untested
from lnbook.sources import VERDICTS_ZH, Anchor
from lnbook.sources import anchors as make_anchors

VERDICTS = ("holds", "holds under conditions", "does not hold", "not established")
# What kind of evidence decides a claim: a measurement (an experiment that could have come out otherwise),
# a derivation (an identity proved or computed exactly, checked against an independent route), or a model
# (arithmetic on stated assumptions such as datasheet figures, which the card names).
KINDS = ("measurement", "derivation", "model")
# Chapters in book order; an ID's letter says which chapter it belongs to.
PREFIX_ORDER = "FMTWR"
#: A claim's ID: a letter of PREFIX_ORDER and two digits.
ID_PATTERN = rf"[{PREFIX_ORDER}]\d\d"
#: The words a statement opens with, by verdict (a card's colours are :data:`lnbook.cards.STYLES`).
OPENING = {verdict: verdict.capitalize() for verdict in VERDICTS}


def opens_with_verdict(statement: str, verdict: str) -> bool:
    """True when ``statement`` opens with its verdict's words, and not with a longer verdict's
    ("Holds under conditions" is not a plain "Holds")."""
    words = OPENING[verdict]
    longer = [w for w in OPENING.values() if w != words and w.startswith(words)]
    return statement.startswith(words) and not any(statement.startswith(w) for w in longer)


@dataclass(frozen=True)
class Evidence:
    """What a check computed: ``numbers`` to show, ``checks`` that must all be true."""

    numbers: dict[str, float | int | str]
    checks: dict[str, bool]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def tally(self) -> tuple[int, int]:
        """(checks that hold, checks): the count every view of the ledger shows."""
        return sum(self.checks.values()), len(self.checks)


Numbers = dict  # named plain Python numbers (float, int or str), as a check measures them
Decision = Callable[[Numbers], "dict[str, bool]"]


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # the source's claim, in our words, at the source's strength
    statement: str  # what the book asserts; ``{name}`` fields are filled from the evidence
    verdict: str
    check: Callable[[], Evidence]
    # The decision: the checks as a function of the numbers alone, so that a test can hand it the numbers
    # of a world without the claim's effect (``null``) and see it fail.
    decide: Decision | None = None
    null: Callable[[Numbers], Numbers] | None = None  # the measured numbers -> those of a world without the effect
    kind: str = "measurement"  # one of KINDS
    assumptions: str = ""  # a model's assumptions, shown on its card
    # Numbers that are outcomes of training: another processor moves them by up to their seed spread, so they
    # are compared across machines by the checks they feed, never digit by digit (tests/test_perturbation.py).
    outcomes: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...] = ()  # the sentences of the seeds the claim answers (lnbook.sources)
    answer_zh: str = ""  # one Chinese sentence over the same numbers as the statement, for the Chinese page


@dataclass(frozen=True)
class Result:
    claim: Claim
    evidence: Evidence

    @property
    def passed(self) -> bool:
        return self.evidence.passed

    @property
    def statement(self) -> str:
        return READER.format(self.claim.statement, **self.evidence.numbers)

    @property
    def answer_zh(self) -> str:
        return READER.format(self.claim.answer_zh, **self.evidence.numbers)

    def to_dict(self) -> dict:
        c = self.claim
        return {
            "id": c.id,
            "anchors": [a.to_dict() for a in c.anchors],
            "claim": c.claim,
            "verdict": c.verdict,
            "kind": c.kind,
            **({"assumptions": c.assumptions} if c.assumptions else {}),
            "statement": self.statement,
            **({"answer_zh": self.answer_zh} if c.answer_zh else {}),
            "numbers": self.evidence.numbers,
            "outcomes": list(c.outcomes),
            "checks": self.evidence.checks,
            "passed": self.passed,
        }


_REGISTRY: dict[str, Claim] = {}


def claim(id: str, *, anchors, claim: str, statement: str, verdict: str,
          decide: Decision | None = None, null: Callable[[Numbers], Numbers] | None = None, kind: str = "measurement",
          assumptions: str = "", outcomes: tuple[str, ...] = (), answer_zh: str = ""):
    """Register the decorated zero-argument function as the check of claim ``id``.

    With ``decide``, the function measures and returns the numbers, and ``decide(numbers)`` returns the
    checks; ``null(numbers)`` gives the numbers of a world where the claim's effect is absent or reversed,
    which the decision must reject (tests/test_claims.py). Without ``decide`` the function returns
    :class:`Evidence` itself (kept for claims not yet split).

    ``anchors``: ``(seed, heading, phrase)`` triples or :class:`lnbook.sources.Anchor`, the sentences the
    claim answers; ``answer_zh``: the Chinese page's one-sentence answer, a format string over the numbers
    that opens with the verdict in Chinese."""
    if verdict not in VERDICTS:
        raise ValueError(f"claim {id}: verdict: expected one of {VERDICTS}, got {verdict!r}")
    if not opens_with_verdict(statement, verdict):
        raise ValueError(f"claim {id}: statement: expected it to open with {OPENING[verdict]!r} "
                         f"(its verdict), got {statement[:40]!r}")
    if len(id) != 3 or id[0] not in PREFIX_ORDER or not id[1:].isdigit():
        raise ValueError(f"claim id: expected a letter of {PREFIX_ORDER!r} and two digits, got {id!r}")
    if kind not in KINDS:
        raise ValueError(f"claim {id}: kind: expected one of {KINDS}, got {kind!r}")
    if (kind == "model") != bool(assumptions):
        raise ValueError(f"claim {id}: assumptions: expected them for a model and only for one, got {assumptions!r} "
                         f"for kind {kind!r}")
    anchors = make_anchors(*anchors)
    if not anchors:
        raise ValueError(f"claim {id}: anchors: expected one or more (seed, heading, phrase), got none")
    if answer_zh and not answer_zh.startswith(VERDICTS_ZH[verdict]):
        raise ValueError(f"claim {id}: answer_zh: expected it to open with {VERDICTS_ZH[verdict]!r} (its verdict), "
                         f"got {answer_zh[:20]!r}")
    if (decide is None) != (null is None):
        raise ValueError(f"claim {id}: null: expected a null world with the decision and only with it, got "
                         f"decide={decide!r}, null={null!r}")

    def register(measure: Callable[[], Evidence | Numbers]) -> Callable:
        if id in _REGISTRY and _REGISTRY[id].check.__qualname__ != measure.__qualname__:
            raise ValueError(f"claim {id}: registered twice ({_REGISTRY[id].check.__qualname__})")
        check = measure if decide is None else _decided(measure, decide)
        _REGISTRY[id] = Claim(id, claim, statement, verdict, check, decide, null, kind, assumptions,
                              tuple(outcomes), anchors, answer_zh)
        return measure

    return register


def _decided(measure: Callable[[], Numbers], decide: Decision) -> Callable[[], Evidence]:
    """The check of a claim whose decision is apart from its measurement."""

    @functools.wraps(measure)
    def check() -> Evidence:
        numbers = measure()
        return Evidence(numbers, decide(numbers))

    return check


def chapter_of(c: Claim) -> str:
    """The chapter that shows claim ``c``: the ``CHAPTER`` of the module that registers its check."""
    return sys.modules[c.check.__module__].CHAPTER


def chapters() -> list[str]:
    """The chapters that show claims (``book/01_foundations``, …), in book order."""
    return list(dict.fromkeys(chapter_of(c) for c in registry().values()))


def in_chapter(results: list[Result], chapter: str) -> list[Result]:
    """The results of the claims ``chapter`` shows."""
    return [r for r in results if chapter_of(r.claim) == chapter]


def _sort_key(id: str) -> tuple[int, int]:
    return PREFIX_ORDER.index(id[0]), int(id[1:])


#: The entry-point group through which the packages that register claims are found (pyproject.toml).
ENTRY_POINTS = "lnbook.claims"


@functools.cache
def _load_registrants() -> None:
    """Import the packages that register claims, as the installed distribution names them."""
    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        point.load()


def registry() -> dict[str, Claim]:
    """All registered claims in book order."""
    _load_registrants()
    if not _REGISTRY:
        raise LookupError(f"no claims are registered: lnbook is not installed with its entry points "
                          f"({ENTRY_POINTS!r}); import lnbook.experiments first, which registers them")
    return {id: _REGISTRY[id] for id in sorted(_REGISTRY, key=_sort_key)}


@functools.cache
def run(id: str) -> Result:
    """Run the check of claim ``id`` (once per process: checks are seeded and deterministic)."""
    claims = registry()
    if id not in claims:
        raise KeyError(f"claim id: expected one of {list(claims)}, got {id!r}")
    c = claims[id]
    evidence = c.check()
    missing = set(_fields(c.statement)) - set(evidence.numbers)
    if missing:
        raise KeyError(f"claim {id}: statement uses {sorted(missing)} but the check computed none")
    unknown = set(c.outcomes) - set(evidence.numbers)
    if unknown:
        raise KeyError(f"claim {id}: outcomes name {sorted(unknown)} but the check computed none")
    return Result(c, evidence)


def entry(c: Claim) -> dict:
    """A claim's registry entry without running its check: ID, anchors, the source's claim, verdict, kind."""
    return {"id": c.id, "anchors": [a.to_dict() for a in c.anchors], "claim": c.claim, "verdict": c.verdict,
            "kind": c.kind}


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def ledger(ids: list[str] | None = None) -> list[Result]:
    return [run(id) for id in (ids or registry())]


# ----------------------------------------------------------------------------- results of a book build
# Each chapter records the results it shows under _build/claims/; the ledger page reads them instead of
# running every check a second time in the same build, and the test suite compares them with its own
# run (two runs, one under the build's load: identical numbers). A record counts only if it was made by
# the same library source and torch; anything else is run afresh.


def _checkout() -> pathlib.Path | None:
    """The book's checkout that the working directory is in (where _config.yml and lib/lnbook are)."""
    here = pathlib.Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "_config.yml").is_file() and (p / "lib" / "lnbook").is_dir()), None)


def results_dir() -> pathlib.Path | None:
    """Where a build records claim results: ``$LNBOOK_RESULTS``, else _build/claims of the checkout."""
    if os.environ.get("LNBOOK_RESULTS"):
        return pathlib.Path(os.environ["LNBOOK_RESULTS"])
    root = _checkout()
    return root / "_build" / "claims" if root else None


@functools.cache
def source_fingerprint() -> str:
    """A hash of every module of the installed lnbook and of torch's version: what a result depends on."""
    import torch

    package = pathlib.Path(__file__).resolve().parent
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def record(result: Result) -> None:
    """Write ``result`` under :func:`results_dir` (nothing outside a checkout)."""
    folder = results_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": source_fingerprint(), **result.to_dict()}
    (folder / f"{result.claim.id}.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))


def recorded(id: str) -> Result | None:
    """The result a chapter of this build recorded for ``id``, if made by this very source; else None."""
    folder = results_dir()
    path = folder / f"{id}.json" if folder else None
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("fingerprint") != source_fingerprint():
        return None
    return Result(registry()[id], Evidence(data["numbers"], data["checks"]))


def built_ledger() -> list[Result]:
    """Every claim's result, as recorded by the chapters of this build, running any that is missing."""
    return [recorded(id) or run(id) for id in registry()]


# ----------------------------------------------------------------------------- numbers as a reader writes them


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_E_NOTATION = re.compile(r"(\d(?:\.\d+)?)e([+-])(\d+)")


def as_written(text: str) -> str:
    """A formatted number as a reader writes it: ``2.3e-06`` becomes 2.3×10⁻⁶, ``1e-05`` 10⁻⁵, a leading
    hyphen a minus sign (−0.5)."""
    def power(m: re.Match) -> str:
        exponent = int(m.group(3)) * (-1 if m.group(2) == "-" else 1)
        mantissa = "" if m.group(1) == "1" else f"{m.group(1)}×"
        return f"{mantissa}10{str(exponent).translate(SUPERSCRIPT)}"

    text = _E_NOTATION.sub(power, text)
    return "−" + text[1:] if text.startswith("-") else text


class _ReaderFormatter(string.Formatter):
    """``str.format`` whose numbers are written :func:`as_written` (statements and Chinese answers)."""

    def format_field(self, value, format_spec: str) -> str:
        text = super().format_field(value, format_spec)
        return as_written(text) if isinstance(value, (int, float)) and not isinstance(value, bool) else text


READER = _ReaderFormatter()


def text_table(results: list[Result], width: int = 110) -> str:
    """The ledger for a terminal: a table whose last column, the book's statement, wraps."""
    head = ("ID", "result", "checks", "verdict", "statement")
    rows = []
    for r in results:
        checks = "{}/{}".format(*r.evidence.tally)
        failed = [k for k, ok in r.evidence.checks.items() if not ok]
        text = r.statement + (f" [failed checks: {', '.join(failed)}]" if failed else "")
        rows.append((r.claim.id, "PASS" if r.passed else "FAIL", checks, r.claim.verdict, text))
    widths = [max(len(row[k]) for row in [head, *rows]) for k in range(4)]
    indent = sum(widths) + 2 * 4
    rule = "-" * width

    def block(row) -> list[str]:
        prefix = "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  "
        wrapped = textwrap.wrap(row[4], max(width - indent, 30)) or [""]
        return [prefix + wrapped[0], *(" " * indent + line for line in wrapped[1:])]

    lines = [*block(head), rule]
    for row in rows:
        lines += block(row)
    n_pass = sum(r.passed for r in results)
    lines += [rule, f"{n_pass} of {len(results)} claims pass"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnbook.claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="claim IDs to run (default: all)")
    parser.add_argument("--json", action="store_true", help="print the ledger as a JSON list")
    parser.add_argument("--untested", action="store_true",
                        help="with --json: print the statements the book does not test (anchors and reason)")
    parser.add_argument("--no-run", action="store_true",
                        help="with --json: print the registry (anchors, claims, verdicts) without running any check")
    args = parser.parse_args(argv)
    if args.untested or args.no_run:
        if not args.json:
            parser.error("--untested and --no-run print JSON: add --json")
        rows = ([u.to_dict() for u in untested.statements()] if args.untested
                else [entry(c) for id, c in registry().items() if not args.ids or id in args.ids])
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    results = ledger(args.ids or None)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(text_table(results))
    return 0 if all(r.passed for r in results) else 1



if __name__ == "__main__":
    from lnbook.claims import main as _main  # the registry lives in the imported module

    sys.exit(_main())
