# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test test-postgres lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Starts the whole portal on its embedded defaults (SQLite, filesystem broker, one worker).
run: $(VENV)/.installed
	$(PY) manage.py runportal

# Runs every test (SQLite by default; set DATABASE_URL to run on PostgreSQL).
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# The Django-side tests again on PostgreSQL, as CI does.
test-postgres: $(VENV)/.installed
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest tests/portal $(PYTEST_ARGS)

# What CI enforces besides the tests: ruff's rules on the whole tree, mypy on the engine (pyproject.toml).
lint: $(VENV)/.installed
	$(PY) -m ruff check
	$(PY) -m ruff format --check
	$(PY) -m mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/suite_speed.py

clean:
	rm -rf $(VENV) var
