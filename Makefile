# Every target works on a fresh machine with only Python: the venv is made and filled on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest format dev demo bench mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dev: $(STAMP)
	$(BIN)/mlgate dev

demo: $(STAMP)
	$(BIN)/mlgate demo

bench: $(STAMP)
	$(BIN)/python -m bench.webhook_ack

# Not part of `test`: a full run takes about 20 minutes here. MUTATION_SAMPLE=N runs N mutants
# spread over the modules, for a quick look; MUTATION_JOBS=N sets how many run at once.
mutation: $(STAMP)
	$(BIN)/python -m bench.mutation

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info mutants
