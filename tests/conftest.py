"""tools/ holds scripts, not a package: put it on the path for the tests that use them."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
