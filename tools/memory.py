"""The memory a notebook takes: the proportional set size (PSS) of a process tree, sampled in a thread
(:class:`PeakPSS`), and, run as a script, one notebook executed with nbclient while its kernel's tree is
sampled.

Run as a script, this file is the runner of ``tools/launch_sim.py``: it runs in a simulated Colab or
Binder environment, whose python has neither ``lnbook`` nor the tools, so it imports nothing from the
repository (the standard library, nbclient and nbformat). launch_sim runs it by path with ``python -I``,
so that neither its own path nor the kernel's holds the checkout. Usage::

    python -I tools/memory.py NOTEBOOK.ipynb SUMMARY.json   # executes the notebook in place; writes
                                                             # {"error": …, "peak_mb": …} to SUMMARY.json
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import threading


def pss_kb(pid: int) -> int:
    """Proportional set size of process ``pid`` in kB (shared pages split among their users); 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


class PeakPSS:
    """Samples the summed PSS of a process tree in a thread while the ``with`` block runs; ``peak_mb``.

    ``root`` is a pid or a callable returning one (None while there is none yet); ``exclude_root``
    counts only the descendants. The sampling interval sets how often memory is looked at, nothing else.
    """

    def __init__(self, root, exclude_root: bool = False, interval: float = 0.1):
        self.root, self.exclude_root, self.interval = root, exclude_root, interval
        self.peak_kb, self._done = 0, threading.Event()

    def sample(self) -> None:
        root = self.root() if callable(self.root) else self.root
        if root is not None:
            pids = [p for p in process_tree(root) if not (self.exclude_root and p == root)]
            self.peak_kb = max(self.peak_kb, sum(pss_kb(p) for p in pids))

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakPSS:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def run_notebook(path: str, out: str) -> None:
    """Execute the notebook at ``path`` with nbclient (its folder the kernel's working directory), write
    it back with its outputs, and write ``{"error": the failing cell's error or None, "peak_mb": peak PSS
    of the kernel and its descendants}`` to ``out`` as JSON."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(path)}})

    def kernel_pid():
        process = getattr(getattr(client.km, "provisioner", None), "process", None) if client.km else None
        return process.pid if process is not None else None

    error = None
    with PeakPSS(kernel_pid) as memory:
        try:
            client.execute()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[-3000:]
    nbformat.write(nb, path)
    with open(out, "w") as f:
        json.dump({"error": error, "peak_mb": memory.peak_mb}, f)


if __name__ == "__main__":
    run_notebook(*sys.argv[1:3])
