# Two commands matter: `make run` and `make test`. Both set everything up first and are
# idempotent: the virtualenv is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make-stamps
export HANDOFF_HOME ?= $(HOME)/.handoff

.PHONY: run test setup test-setup bench audit clean

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

# Known vulnerabilities in the installed packages. Needs pip-audit's vulnerability service (network):
# where it is unreachable this says NOT AUDITED and fails, so it is not part of `make test`.
$(STAMPS)/audit-install: $(STAMPS)/install
	$(BIN)/pip install --quiet -e '.[audit]'
	@mkdir -p $(STAMPS) && touch $@

audit: $(STAMPS)/audit-install
	$(BIN)/python tools/audit.py

bench: setup
	$(BIN)/python benchmarks/bench_build.py

clean:
	rm -rf $(VENV) $(STAMPS)
