# Two commands: `make book` and `make test` (see README.md).
# Both create the virtual environment on first use and install the pinned stack.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HTML_SMOKE := _build/smoke/_build/html
# Per-cell limit in the smoke profile, where every cell takes seconds: a hung
# kernel fails the test run in minutes instead of after the cpu limit (3600 s).
SMOKE_CELL_TIMEOUT := 600
JB_FLAGS ?=

.PHONY: book test lint env assets chromium check-html clean help weights release verify-weights

help:
	@echo "make book   - set up, execute every chapter (profile cpu) and build _build/html"
	@echo "make test   - set up, check the library's floors (lint-imports) and ruff,"
	@echo "              pytest the library, nbval every chapter (profile smoke),"
	@echo "              build the book with warnings as errors, check it in headless Chromium"
	@echo "make lint   - only the floors (lint-imports) and ruff; make test runs them first"
	@echo "make check-html - only the headless-Chromium check of an existing smoke build"
	@echo "make clean  - remove build products and caches of the work tree (the run cache is ~/.cache/dinosal)"
	@echo "make weights - train every released model of the cpu profile into the run cache"
	@echo "               (resumable; WEIGHTS_FLAGS=--force retrains cached ones too), then print"
	@echo "               its held-out metrics beside the released ones"
	@echo "make release - write weights/ (files + manifest) from the run cache"
	@echo "make verify-weights - check the sha256 of every file under weights/"

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[book]'
	@touch $(STAMP)

assets: _vendor/.versions

_vendor/.versions: scripts/fetch_web_assets.sh
	bash scripts/fetch_web_assets.sh

# Debian's Chromium and its driver, for the rendered-page check; and the system libraries
# OpenCV's wheel loads (libGL, glib), which Quantus and grad-cam import through cv2.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	  ldconfig -p | grep -q 'libGL.so.1 ' && ldconfig -p | grep -q 'libgthread-2.0.so.0 ' || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver libgl1 libglib2.0-0 >/dev/null; }

book: $(STAMP) assets
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "Open _build/html/index.html in a browser."

# The library's floors (the import-linter contracts in pyproject.toml: nothing
# imports upwards) and a small ruff rule set; no caches are left in the tree.
lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check --no-cache lib tests benchmarks

# The smoke build goes to its own folder so its execution cache never mixes
# with the default profile's. pytest runs last so its closing line ends the run.
test: $(STAMP) lint assets chromium
	@mkdir -p _build
	sed 's/^  timeout: [0-9]*$$/  timeout: $(SMOKE_CELL_TIMEOUT)/' _config.yml > _build/_config_smoke.yml
	@grep -q '^  timeout: $(SMOKE_CELL_TIMEOUT)$$' _build/_config_smoke.yml || { echo "Makefile: no execute timeout in _config.yml"; exit 1; }
	DINOSAL_PROFILE=smoke $(BIN)/jupyter-book build . -W --keep-going --path-output _build/smoke --config _build/_config_smoke.yml
	DINOSAL_PROFILE=smoke DINOSAL_HTML=$(HTML_SMOKE) $(BIN)/python -m pytest tests book --nbval-lax --nbval-cell-timeout=$(SMOKE_CELL_TIMEOUT)

check-html: $(STAMP) chromium
	DINOSAL_HTML=$(HTML_SMOKE) $(BIN)/python -m pytest tests/test_html.py

clean:
	rm -rf _build .cache .pytest_cache _vendor _vendor_extra
	find . -name __pycache__ -prune -not -path './$(VENV)/*' -exec rm -rf {} +
	find . -name .ipynb_checkpoints -prune -not -path './$(VENV)/*' -exec rm -rf {} +
	rm -rf lib/*.egg-info

# Released checkpoints (weights/, see lib/dinosal/release): `make weights`
# retrains into the run cache and compares, `make release` writes the folder.
WEIGHTS_PROFILE ?= cpu
WEIGHTS_FLAGS ?=

weights: $(STAMP)
	$(BIN)/python -m dinosal.cli weights --profile $(WEIGHTS_PROFILE) $(WEIGHTS_FLAGS)

release: $(STAMP)
	$(BIN)/python -m dinosal.cli release --from-cache --profile $(WEIGHTS_PROFILE)

verify-weights: $(STAMP)
	$(BIN)/python -m dinosal.cli verify
