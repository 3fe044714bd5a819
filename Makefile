# Two entry points, as in the README: `make book` and `make test`.
# Both create .venv (once, and again when pyproject.toml changes) with everything they need.
PYTHON ?= python3
VENV   ?= .venv
# torch is installed first and on its own so that a CPU build can be chosen;
# override with e.g. `make test TORCH_SPEC="torch==2.13.0"` or any other torch build.
TORCH_SPEC ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test bootstrap launch launch-urls clean pdf gpu-check floors

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,book]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# Executes every chapter; warnings are errors, references are checked (nitpicky),
# and a failing cell fails the build (execute.allow_errors is false in _config.yml).
book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

# The whole book as one PDF (_build/html/book/layernorm-derived.pdf, linked from the intro), printed
# from the built site by Debian's Chromium; builds the site first if there is none.
pdf: $(STAMP)
	test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python -m tools.pdf

# Write the repository URL and branch of _config.yml into every notebook's first cell.
bootstrap: $(STAMP)
	$(BIN)/python -m tools.notebooks

# On a GPU machine as it is (offline, its own python3 with torch and Triton, nothing else; about ten
# minutes a slot): nothing installed, lnbook imported from lib/, the kernel tests compiled, then the
# benchmark (forward, backward, forward+backward; N from 512 to 262144 in bf16, fp16 and fp32 at
# 4096 x 8192) against torch eager, torch.compile and Liger-Kernel where the machine has it. Each step
# runs under its own time limit (8 minutes in all) and every result is saved as it is measured, to
# bench-<device>.json under $OUT if set, else book/data/. `python3 -m tools.gpu_check --dry-run` runs
# the same steps, shrunk, without a GPU (tests/test_gpu_check.py does).
GPU_PYTHON ?= python3
gpu-check:
	$(GPU_PYTHON) -m tools.gpu_check

# Write book/launch/<page>.ipynb, what Colab and Binder open: glued numbers, cards, folded solutions and
# citations filled in from the last `make book` (a page whose code changed since is executed again).
launch: $(STAMP)
	$(BIN)/python -m tools.launch

# One line per page: its name, Colab URL and Binder URL (of its launch notebook).
launch-urls: $(STAMP)
	@$(BIN)/python -m tools.launch urls

# The dependency floors, tried: the lowest torch and triton pyproject.toml admits (Colab's GPU runtime:
# torch 2.11.0, triton 3.6.0), in their own environment (.venv/floors; torch's Linux wheel from PyPI is a
# CUDA build, about 4.7 GB, taken from .venv/launch/wheels where the Colab simulation downloaded it), then
# the suite without what needs the built site or the book tooling (the
# launch tests, the site's, the build's records); the tests marked `interpreter` skip, saying why, where
# this Triton's interpreter cannot run the kernels. Last, the compile table with this lowest Triton.
# Measured on 2 cores once the wheels were here: the suite 11 minutes (beside the Colab simulation), the
# compile table (720 kernels) 5 minutes on a quiet machine, 14 under a load average of about 10.
FLOORS = $(VENV)/floors
floors: $(STAMP)
	test -x $(FLOORS)/bin/python || $(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet --find-links $(VENV)/launch/wheels $$($(BIN)/python -c "import re; print(*(f'{n}=={v}' for n, v in re.findall(r'\"(torch|triton)>=([0-9.]+)\"', open('pyproject.toml').read())))")
	$(FLOORS)/bin/python -m pip install --quiet --find-links $(VENV)/launch/wheels -e ".[test]"
	$(FLOORS)/bin/python -c "import torch, triton; print('floors: torch', torch.__version__, 'triton', triton.__version__)"
	$(FLOORS)/bin/python -m pytest -p no:cacheprovider --ignore tests/test_launch.py --ignore tests/test_launch_sim.py --ignore tests/test_launch_site.py --ignore tests/test_launch_resolver.py --ignore tests/test_reproducible.py --ignore tests/test_site.py
	TRITON_INTERPRET=0 $(FLOORS)/bin/python -m lnbook.kernels.aot > /dev/null && echo "floors: the compile table compiles with this triton"

clean:
	rm -rf _build
