# Two commands for a newcomer: `make up` runs Slipway, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_DEBS := redis-server redis-tools git
TEST_DEBS := $(RUNTIME_DEBS) openssh-client openssh-server ruby-sidekiq ruby-redis-namespace postgresql

.PHONY: up test lint bench venv clean

# The venv is rebuilt only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

up: venv
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
	@for script in $(wildcard bench/*.py); do echo "== $$script"; $(BIN)/python "$$script" || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
