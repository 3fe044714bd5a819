# Two entry points, as in the README: `make book` and `make test`.
# Both create .venv (once, and again when pyproject.toml changes) with everything they need.
PYTHON ?= python3
VENV   ?= .venv
# torch is installed first and on its own so that a CPU build can be chosen;
# override with e.g. `make test TORCH_SPEC="torch==2.13.0"` or any other torch build.
TORCH_SPEC ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test bootstrap launch launch-urls clean

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

# Write the repository URL and branch of _config.yml into every notebook's first cell.
bootstrap: $(STAMP)
	$(BIN)/python tools/notebooks.py

# Write book/launch/<page>.ipynb, what Colab and Binder open: glued numbers, cards, folded solutions and
# citations filled in from the last `make book` (a page whose code changed since is executed again).
launch: $(STAMP)
	$(BIN)/python tools/launch.py

# One line per page: its name, Colab URL and Binder URL (of its launch notebook).
launch-urls: $(STAMP)
	@$(BIN)/python tools/launch.py urls

clean:
	rm -rf _build
