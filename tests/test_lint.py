"""The linter runs with the suite: ``ruff check`` over the library, the tools, the tests, the Sphinx
extensions and the notebooks, with the rules of ``[tool.ruff]`` in pyproject.toml (which says why each
rule is in or out), and every ``noqa`` that remains says why."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A noqa names its rule(s) and then its reason: "# noqa: E402  (after the switch above)".
NOQA = re.compile(r"#\s*noqa\b(?::\s*[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*)?(?P<reason>.*)$")


def ruff(*args: str, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_the_tree_is_clean_under_the_project_s_rules():
    out = ruff()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_the_linter_sees_a_mistake(tmp_path):
    """The null case: with the project's configuration, an unused import and a closure over a loop
    variable are found (so a clean run means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\nfs = []\nfor i in range(3):\n    fs.append(lambda: i)\n")
    out = ruff("--config", str(ROOT / "pyproject.toml"), str(bad), cwd=tmp_path)
    assert out.returncode == 1 and "F401" in out.stdout and "B023" in out.stdout, out.stdout


def test_every_noqa_says_why():
    unexplained = []
    for path in [*ROOT.glob("lib/**/*.py"), *ROOT.glob("tools/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("_ext/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = NOQA.search(line)
            if match and len(match.group("reason").strip(" ()")) < 8 and path.name != "test_lint.py":
                unexplained.append(f"{path.relative_to(ROOT)}:{number}")
    assert not unexplained, f"noqa without a reason: {unexplained}"
