# Every target sets itself up on a fresh machine: .venv is created and the package installed
# (editable) with the extras that target needs. Re-running only reinstalls when pyproject changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow lint format bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/python -m jaxsyn.demo --out $(DEMO_OUT)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n 2

test-slow: $(VENV)/.installed-dev
	$(BIN)/pytest -q -n 2 -m slow

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/store.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache .ruff_cache $(DEMO_OUT)
