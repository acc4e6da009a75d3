# Two entry points, both self-bootstrapping from a bare Python >= 3.11 with pip:
#   make run   -- create .venv, install gbounds, run the main analysis
#   make test  -- create .venv, install gbounds with test extras, run the default test tier
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(if $(GBOUNDS_DATA_DIR),$(GBOUNDS_DATA_DIR),$(abspath ../shared/data))

.PHONY: run test test-slow parity setup lint lint-fix typecheck test-x32

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

run: setup
	GBOUNDS_DATA_DIR=$(DATA) $(BIN)/gbounds main

test: setup
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && bash scripts/ensure_chromium.sh; } || true
	GBOUNDS_DATA_DIR=$(DATA) $(BIN)/python -m pytest -n 2 -q

lint: setup
	$(BIN)/ruff check gbounds tests benchmarks scripts

# ruff's safe autofixes (import order, unused imports, pyupgrade); no formatter.
lint-fix: setup
	RUFF=$(BIN)/ruff bash scripts/lint_fix.sh

# pyright, basic mode, over gbounds/ (configured in pyproject.toml [tool.pyright]).
typecheck: setup
	$(BIN)/pyright --pythonpath $(BIN)/python

# Every tier runs with numerics as strict as equinox's suite (dtype promotion "strict", rank
# promotion "raise"; tests/conftest.py, GBOUNDS_TEST_STRICT=0 to debug without).
# The numeric test directories again with x64 off (float32 only; tests marked x64 are skipped).
NUMERIC_TESTS ?= tests/_src tests/models tests/ntk tests/train tests/info tests/bounds tests/geometry
test-x32: setup
	GBOUNDS_DATA_DIR=$(DATA) GBOUNDS_TEST_X64=0 GBOUNDS_TEST_STRICT=1 $(BIN)/python -m pytest -n 2 -q $(NUMERIC_TESTS)

test-slow: setup
	bash scripts/nt_env.sh
	GBOUNDS_DATA_DIR=$(DATA) $(BIN)/python -m pytest -n 2 -q -m slow

parity: setup
	bash scripts/nt_env.sh
	GBOUNDS_DATA_DIR=$(DATA) $(BIN)/python -m pytest -q -m slow tests/ntk/test_nt_parity.py
