# The two commands the README promises: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SPEED  ?= 1440

.PHONY: demo test lint typecheck check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/rollback-bot check playbooks/
	$(BIN)/rollback-bot drill playbooks/genai-release.yaml --speed $(SPEED)

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

check: $(VENV)/.installed
	$(BIN)/rollback-bot check playbooks/

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache rollback-bot.db
