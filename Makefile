# One-command entry points. `make test` checks the import direction (lint-imports, contracts in
# pyproject.toml) and then runs the test suite. `make test` and `make demo` work on a fresh clone: they create
# .venv, install the package (building the Cython kernels) and then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo bench bench-quick clean browser

$(STAMP): pyproject.toml setup.py $(wildcard grouper/*/*.pyx grouper/*/*.pxd)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The browser test of `drg serve` drives the distribution's headless Chromium through its chromedriver
# (Debian packages; nothing is downloaded at test time). Installed once when missing, with sudo when not root.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

test: $(STAMP) browser
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/drg group tests/data/chs-drg-1.1/sample.csv

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_group.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/bench_group.py --quick

clean:
	rm -rf $(VENV) build *.egg-info grouper/engine/*.so grouper/engine/*.c .pytest_cache .hypothesis .benchmarks
