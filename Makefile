# Two entry points (see README): `make bench` runs the main job, `make test` passes the tests.
# Both create .venv and install sockwise with every extra first, so they work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: bench test test-min lint typecheck docs pytest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/sockwise bench --quick

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks noxfile.py docs
	$(BIN)/ruff format --check src tests benchmarks noxfile.py docs

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck docs pytest

# The integration tests against the oldest supported dependency versions (.ci/min-versions.txt).
test-min: $(STAMP)
	$(BIN)/nox -s minversions

clean:
	rm -rf $(VENV) .nox docs/_build .pytest_cache .mypy_cache .ruff_cache
