# The two commands of the quick start: `make run` and `make test`.
# The venv's interpreter: a Python 3.12 where the machine has one, on the PATH or under pyenv, since
# coverage then measures through sys.monitoring, at a fraction of 3.11's line tracing (`make test` here:
# 500 s of CPU -> 397 s); else python3 (3.11 and newer work).
PYTHON ?= $(shell for python in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12); do \
	$$python -c '' 2>/dev/null && { echo $$python; exit; }; done; echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test processes (pytest-xdist). The suite often waits on servers, browsers and workers, so more
# processes than cores pay (on two cores: 4 -> 6 took 157 s to 133 s; 5 and 8 were slower than 6);
# each has its own database, Redis database and loopback block (tests/parallel.py).
# Work stealing: a process that runs out of tests takes the rest of another's, where `load` left the last
# of its long ones queued behind each other on one process, the others idle (416 s against 221 s here).
TEST_WORKERS ?= 6
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=20

.PHONY: run test test-postgres lint lock bench clean

# Bytecode caches on, whatever the shell says: without them every test process and every process a
# test starts compiles the project and rewrites the test modules' asserts again (collection 12 s -> 6 s).
unexport PYTHONDONTWRITEBYTECODE

# Exact versions of everything, runtime and tests: `make lock` writes it from the ranges in
# requirements.txt and requirements-dev.txt; a test fails when the two disagree.
LOCK := requirements.lock

# The project itself goes in editable, without dependencies (the lock has them) and built by the
# venv's own setuptools (Python 3.11's venv brings one; 3.12's has none, hence the setuptools line):
# it installs the operator's console script, $(VENV)/bin/relaytest (pyproject.toml, [project.scripts]).
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "setuptools>=64"
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# After changing a range (or to take newer releases within them): pin again, then `make test`.
lock: $(VENV)/.installed
	$(PY) -m piptools compile --quiet --upgrade --strip-extras --no-emit-find-links --no-emit-index-url \
		--output-file $(LOCK) requirements-dev.txt
	$(PY) -m pip install --quiet -r $(LOCK)

# Starts the whole portal on its embedded defaults (SQLite, filesystem broker, one worker).
run: $(VENV)/.installed
	$(PY) manage.py runportal

# Coverage of relaytests/ measured in the test processes may not fall below this (percent; 94.6 when set).
COVERAGE_FLOOR ?= 94

# Runs every test in parallel (SQLite by default; set DATABASE_URL to run on PostgreSQL), with the coverage floor.
test: $(VENV)/.installed
	$(PYTEST) --cov --cov-fail-under=$(COVERAGE_FLOOR) $(PYTEST_ARGS)

# The Django-side tests again on PostgreSQL, as CI does.
test-postgres: $(VENV)/.installed
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PYTEST) tests/portal $(PYTEST_ARGS)

# What CI enforces besides the tests: ruff's rules on the whole tree, mypy on the engine (pyproject.toml).
lint: $(VENV)/.installed
	$(PY) -m ruff check
	$(PY) -m ruff format --check
	$(PY) -m mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/suite_speed.py

clean:
	rm -rf $(VENV) var
