# Two commands do all the set-up on a fresh machine:
#   make up     run the service (embedded: SQLite, filesystem broker, bundled course, demo users)
#   make test   run the test suite (real PostgreSQL, Redis and Celery workers; embedded mode too)
# While working:
#   make test-fast  the in-process tier (tests marked `fast`): no server started, about a minute
#   make check      lint, format check and types (what pre-commit runs)
#   make bench      the benchmarks of bench/README.md (each starts what it measures)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test test-fast lint format-check typecheck check bench course-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/autograder up $(ARGS)

test: $(STAMP)
	./scripts/browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -m fast -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

format-check: $(STAMP)
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint format-check typecheck

# The scripts of bench/README.md's table; BENCHES=latency_bench picks some.
BENCHES ?= latency_bench regrade_bench rush_bench nbgrader_bench
bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py $(ARGS) || exit 1; done

course-check: $(STAMP)
	$(BIN)/autograder course check reference/hw*

clean:
	rm -rf $(VENV) var
