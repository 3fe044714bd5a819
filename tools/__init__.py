"""The repository's scripts, beside the book and its library (``lnbook`` lives in ``lib/``).

Run each from the repository root as a module, ``python -m tools.<name>`` (the Makefile's targets do):

notebooks    the bootstrap cell of every notebook, in step with ``_config.yml`` (``make bootstrap``)
launch       the launch notebooks Colab and Binder open, from the chapters and the build (``make launch``)
launch_sim   the launch notebooks run in Colab- and Binder-like environments, their memory measured
memory       a process tree's memory (PSS), and one notebook run while its kernel's is sampled
pdf          the built site printed into one PDF (``make pdf``)
browser      the headless Chromium and local web server ``pdf`` and the browser tests share
gpu_check    the compiled kernel tests and the benchmark on a GPU machine as it is (``make gpu-check``)

The tools import each other as ``from tools import notebooks``; the tests import them the same way
(pytest puts the repository root on the path: ``pythonpath`` in ``pyproject.toml``).
"""
