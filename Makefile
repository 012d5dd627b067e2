# Two commands for a newcomer: `make up` runs Slipway, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_DEBS := redis-server redis-tools git haproxy
TEST_DEBS := $(RUNTIME_DEBS) openssh-client openssh-server ruby-sidekiq ruby-redis-namespace postgresql pebble curl

.PHONY: up test lint bench venv clean

# The venv is refreshed only when pyproject.toml changes: what running needs for `make up`,
# and the development tools too for everything else. pip shows what it installs.
PIP := $(BIN)/python -m pip install --disable-pip-version-check --progress-bar on

$(VENV)/.runtime: pyproject.toml
	@echo "Installing Slipway into $(VENV) (the first time takes a minute or two)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	@echo "Installing the development tools into $(VENV)..."
	$(PIP) -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

up: $(VENV)/.runtime
	scripts/ensure-debs $(RUNTIME_DEBS)
	exec $(BIN)/slipwayd up

test: venv
	scripts/ensure-debs $(TEST_DEBS)
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv
	scripts/ensure-debs $(TEST_DEBS) wrk
	@for script in $(filter-out bench/__init__.py bench/wrk.py,$(wildcard bench/*.py)); do echo "== $$script"; $(BIN)/python "$$script" || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
