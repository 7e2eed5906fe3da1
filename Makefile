# netbuilder: `make test` is what CI runs on a fresh clone (it creates .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test lint installed demo readme schema zoo reproduce bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q
	.ci/installed

installed: setup  # the wheel in a fresh environment, used from outside the checkout
	.ci/installed

demo: setup
	$(BIN)/python cli.py build specs/squeezenet_v11.yaml --summary

readme: setup
	$(BIN)/python cli.py specs specs --update-readme README.md

schema: setup
	$(BIN)/python cli.py schema > docs/netbuilder.schema.json

zoo: setup
	$(BIN)/python cli.py zoo

reproduce: setup
	$(BIN)/python bench/reproduce.py --out results
	$(BIN)/python cli.py zoo

bench: setup
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
