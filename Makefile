# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo api test test-fast lint format migrate rollback migrate-status check bench clean

$(STAMP): pyproject.toml media_store/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## migrate DATABASE_URL (or an embedded dev PostgreSQL, left running) and run the example flow on rows of its own
	$(BIN)/media-store demo

api: $(STAMP)  ## serve the example HTTP service (examples/api.py) on 127.0.0.1:8000, on DATABASE_URL or the demo's embedded PostgreSQL, migrated first
	$(BIN)/python -m examples.api

test: $(STAMP)  ## the whole suite; its header names the server (MEDIA_STORE_TEST_DSN, else Docker, else embedded PostgreSQL)
	$(BIN)/pytest

test-fast: $(STAMP)  ## the suite without the slow tests (other processes, restarts, replication, large tables), while working
	$(BIN)/pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check media_store tests benchmarks examples
	$(BIN)/ruff format --check media_store tests benchmarks examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix media_store tests benchmarks examples
	$(BIN)/ruff format media_store tests benchmarks examples

migrate: $(STAMP)  ## apply every pending migration to DATABASE_URL
	$(BIN)/media-store migrate

rollback: $(STAMP)  ## revert exactly the latest migration on DATABASE_URL (the first one only with `media-store rollback --yes`)
	$(BIN)/media-store rollback

migrate-status: $(STAMP)
	$(BIN)/media-store migrate-status

check: $(STAMP)  ## compare every named query with its model on DATABASE_URL
	$(BIN)/media-store check

bench: $(STAMP)  ## benchmarks, side by side; results in benchmarks/results/
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
