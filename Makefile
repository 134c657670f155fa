# The two commands the README promises: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SPEED  ?= 1440

.PHONY: demo test test-fast test-slow test-all lint fmt typecheck check bench clean migration wheel

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

# lint, strict types and every test but those marked slow: under 3 minutes on a quiet 2-core machine. mypy runs
# beside pytest (pytest waits on sockets and subprocesses for part of its time)
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck test-fast

# the edit-and-run loop: the fast tests in 3 workers (pytest-xdist)
test-fast: $(VENV)/.installed
	$(BIN)/pytest -q -n 3 -m "not slow"

# the slow tests, one at a time (they time processes): drills, gunicorn, Socket Mode, kill -9, leadership, the wheel
test-slow: $(VENV)/.installed
	$(BIN)/pytest -q -m slow

# everything: what CI runs (.ci/run)
test-all: test test-slow

fmt: $(VENV)/.installed
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# every benchmark in turn (about 15 minutes; run them on a quiet machine: each prints its own reference)
BENCHES = engine backtest export hostile_source capacity failover clicks
bench: $(VENV)/.installed
	@uptime
	@set -e; for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py; done
	@uptime

check: $(VENV)/.installed
	$(BIN)/rollback-bot check playbooks/

# the next schema migration, from the models: make migration m="add incident labels"
migration:  # the message first: nothing is installed for a command that cannot run
	@test -n "$(m)" || { echo 'say what it changes: make migration m="add incident labels"'; exit 2; }
	@$(MAKE) --no-print-directory $(VENV)/.installed
	$(BIN)/rollback-bot db revision -m "$(m)"

# the wheel a team installs with pip (templates and example playbooks inside): dist/rollback_bot-*.whl
wheel: | $(BIN)/python
	$(BIN)/pip wheel --quiet --no-deps -w dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache rollback-bot.db build dist
