# paperwire — `make demo` runs one real cycle on bundled samples (and prints how to browse it:
# `make demo-serve` serves its links and the admin's console until Ctrl-C); `make test` runs
# every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo demo-serve test lint typecheck install lock clean

# Exact versions come from requirements.lock (hashed); the ranges stay in pyproject.toml.
$(BIN)/paperwire: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m compileall -q daemon recommender notifications  # even where PYTHONDONTWRITEBYTECODE is set
	touch $@

install: $(BIN)/paperwire

# Refresh the lock after changing a dependency in pyproject.toml (README: "Dependencies").
lock: install
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/python -m uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet --upgrade -o requirements.lock

demo: install
	$(BIN)/paperwire demo

demo-serve: install
	$(BIN)/paperwire demo --serve

# Two workers (pytest-xdist, one per core here); the 15 slowest tests are listed at the end.
test: install
	$(BIN)/python -m pytest -n auto --dist worksteal --durations=15

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
