# ravecnn — build the book, run the tests. GNU make; recipes are POSIX sh.
#
#   make book                  whole analysis on the default (full) simulated survey -> _build/html
#   make book PROFILE=smoke    the same in seconds, on a few hundred spectra
#   make book PROFILE=rave     the same at RAVE DR6's size: 518,387 spectra (about 10 GB in data/sim/rave)
#   make book PROFILE=flat_prior  the default survey with the cross-match abundances shuffled: do the networks read [α/M] from the lines?
#   make test                  unit tests + every notebook executed with the smoke profile
#
# Every target creates the local virtual environment (.venv) first if needed.

PROFILE ?= full
PYTHON  ?= python3
VENV    = .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install simulate notebooks book html rerun test test-book lab clean emulator

help:
	@echo "ravecnn — make targets (PROFILE=$(PROFILE); PROFILE=smoke for a quick run)"
	@echo "  make book       simulate the survey, execute every notebook, build the HTML book in _build/html"
	@echo "  make test       run the unit tests and the notebook smoke test (pytest)"
	@echo "  make simulate   write the simulated survey to data/sim/\$$PROFILE (no-op if already there)"
	@echo "  make notebooks  execute notebooks/NN_*.py with papermill into book/executed/"
	@echo "  make html       render book/executed/ as it is into _build/html (no simulation, no execution)"
	@echo "  make rerun NOTEBOOK=04_training PARAMS=\"-p n_models 10\"   rerun one notebook, then make html"
	@echo "  make test-book  build the smoke book and check every page in headless Chromium (installs it if it can)"
	@echo "  make lab        JupyterLab on the repository (jupytext: the .py notebooks open as notebooks)"
	@echo "  make install    create .venv and install requirements.txt + this package (editable)"
	@echo "  make emulator MOOG=.../MOOGSILENT KURUCZ=.../grids   remake data/emulator/emulator.npz (data/emulator/README.md)"
	@echo "  make clean      remove book/executed and _build (keeps data/sim)"

# The virtual environment, rebuilt when the requirements or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -e . --no-deps
	touch $@

install: $(STAMP)

simulate: $(STAMP)
	$(PY) -m ravecnn_utils.simulation --profile $(PROFILE) --out data/sim/$(PROFILE)

notebooks: simulate
	$(PY) -m ravecnn_utils.book --profile $(PROFILE) --out book/executed

# Execution is off in _config.yml: the book renders what papermill executed.
# --path-output . puts the HTML in ./_build/html; the toc path must be absolute.
book: notebooks
	$(MAKE) html

# Render book/executed/ as it is (e.g. after running the notebooks on the real data).
html: $(STAMP)
	$(PY) -m ravecnn_utils.book.pages book/parameters.md
	$(VENV)/bin/jupyter-book build book --config _config.yml --toc "$$PWD/book/_toc.yml" \
		--path-output . --all -W -n --keep-going
	@echo "The book is in _build/html/index.html"

# Rerun one notebook (NOTEBOOK=stem or number) with the PROFILE's parameters plus PARAMS
# (papermill -p NAME VALUE pairs, values in YAML), then rebuild the HTML book.
rerun: $(STAMP)
	@test -n "$(NOTEBOOK)" || { echo 'usage: make rerun NOTEBOOK=04_training PARAMS="-p n_models 10"'; exit 2; }
	$(PY) -m ravecnn_utils.book --profile $(PROFILE) --only $(NOTEBOOK) $(PARAMS) --out book/executed
	$(MAKE) html

# The committed emulator of MOOG syntheses (data/emulator/README.md says where MOOG and the
# ATLAS9 grids come from; the book itself needs neither).
emulator: $(STAMP)
	@test -n "$(MOOG)" -a -n "$(KURUCZ)" || { echo 'usage: make emulator MOOG=/path/to/MOOGSILENT KURUCZ=/path/to/atlas9/grids (see data/emulator/README.md)'; exit 2; }
	$(PY) -m ravecnn_utils.simulation.emulator_build --moog "$(MOOG)" --kurucz "$(KURUCZ)"

test: $(STAMP)
	$(PY) -m pytest -q

# The book opened in a real browser: Debian's chromium (installed here with apt-get when it
# is missing and we may), driven by Playwright's Python package (requirements-book-test.txt).
CHROMIUM ?= /usr/bin/chromium
test-book: $(STAMP)
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "test-book needs Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (Debian/Ubuntu)"; exit 1; fi; \
	fi
	$(PY) -m pip install -q -r requirements-book-test.txt
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -m book tests/test_book.py

# JupyterLab opens text files in its editor by default; this project-local override (inside
# .venv, so your own JupyterLab settings still win) makes a double click on a .py notebook
# open it as a notebook through jupytext. Right-click -> Open With -> Editor shows the text.
LAB_OVERRIDES = $(VENV)/share/jupyter/lab/settings/overrides.json

$(LAB_OVERRIDES): $(STAMP)
	mkdir -p $(@D)
	printf '%s\n' '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' > $@

# The file browser is rooted at the repository (README, book/, data/ and the package in reach;
# links such as /lab/tree/notebooks/01_data.py work); a notebook's kernel runs in notebooks/,
# where the relative paths of the parameters point from. As root (e.g. in a container) Jupyter
# refuses to start without --allow-root, so it is passed then. LAB_ARGS: more options.
LAB_ARGS ?=
lab: $(LAB_OVERRIDES)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$$PWD" $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

clean:
	rm -rf book/executed _build book/_build
