# Two commands do all the set-up on a fresh machine:
#   make up     run the service (embedded: SQLite, filesystem broker, bundled course, demo users)
#   make test   run the test suite (real PostgreSQL, Redis and Celery workers; embedded mode too)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck bench course-check clean

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
	$(BIN)/mypy
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

course-check: $(STAMP)
	$(BIN)/autograder course check reference/hw*

clean:
	rm -rf $(VENV) var
