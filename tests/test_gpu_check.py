"""`make gpu-check` without a GPU: its steps run shrunk (--dry-run), so the target cannot rot."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

from tools import gpu_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_target_installs_nothing_and_uses_the_machines_python():
    recipe = re.search(r"^gpu-check:(.*)\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe.group(1).strip() == ""  # no prerequisite: not the .venv stamp, which installs from the network
    assert recipe.group(2).strip() == "$(GPU_PYTHON) -m tools.gpu_check" and "pip" not in recipe.group(2)


def test_the_steps_fit_the_budget_and_cover_every_mode(tmp_path):
    steps = gpu_check.steps(tmp_path / "r.json", dry=False)
    assert sum(s.timeout_s for s in steps) <= gpu_check.BUDGET_S <= 8 * 60
    modes = [s.argv[s.argv.index("--modes") + 1] for s in steps if "--modes" in s.argv]
    assert modes == ["forward", "backward", "forward+backward"]
    assert all("262144" in s.argv and "512" in s.argv for s in steps if "--modes" in s.argv)


def test_dry_run_runs_every_step_and_writes_one_record(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT / "lib")}
    out = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (path,) = tmp_path.glob("bench-*.json")
    record = json.loads(path.read_text())
    assert [s["returncode"] for s in record["steps"]] == [0] * len(gpu_check.steps(path, dry=True))
    assert {"device", "driver", "torch", "triton", "commit"} <= record["environment"].keys()
    assert {r["mode"] for r in record["results"]} == {"forward", "backward", "forward+backward"}
    assert {r["dtype"] for r in record["results"]} == {"bf16", "fp16", "fp32"}
