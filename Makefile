# Two commands do all set-up on a fresh machine with Python 3.11+ and make:
#   make run    sets up .venv and runs the demo: the daemon on the embedded SQLite default, a
#               verifying receiver and live gateway traffic (Ctrl-C stops it all)
#   make test   sets up .venv (and PostgreSQL's server where it can) and runs every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run daemon test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python examples/demo.py

# The plain daemon on ./enforgate.toml (or the built-in defaults: ./enforgate.db).
daemon: $(STAMP)
	$(BIN)/enforgate-webhooks run

test: $(STAMP)
	bash tests/ensure-postgres.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
