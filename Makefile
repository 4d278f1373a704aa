# Two commands matter: `make run` and `make test`. Both set everything up first and are
# idempotent: the virtualenv is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make-stamps
export HANDOFF_HOME ?= $(HOME)/.handoff

.PHONY: run test setup test-setup bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMPS)/install: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (handoff)" >/dev/null
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/test-install: $(STAMPS)/install
	$(BIN)/pip install --quiet -e '.[test]'
	@mkdir -p $(STAMPS) && touch $@

setup: $(STAMPS)/install

test-setup: $(STAMPS)/test-install

run: setup
	$(BIN)/handoff app

test: test-setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: setup
	$(BIN)/python benchmarks/bench_build.py

clean:
	rm -rf $(VENV) $(STAMPS)
