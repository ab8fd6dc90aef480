# The two commands of the README:
#   make demo   set up and run the example workspace end to end
#   make test   set up and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench docs clean-demo

$(BIN)/molexp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[ui,test,plot]'
	@touch $@

demo: $(BIN)/molexp
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/quickstart/demo.sh

test: $(BIN)/molexp
	$(BIN)/ruff check molexp tests benchmarks
	$(BIN)/ruff format --check molexp tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --cov=molexp --cov-report=term:skip-covered --cov-fail-under=90

lint: $(BIN)/molexp
	$(BIN)/ruff check molexp tests benchmarks
	$(BIN)/ruff format --check molexp tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

docs: $(BIN)/molexp
	$(BIN)/typer molexp.cli.main utils docs --name molexp --title "molexp command reference" --output docs/cli.md

bench: $(BIN)/molexp
	$(BIN)/python benchmarks/run.py
