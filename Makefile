# Two commands matter: `make run` and `make test`. Both set everything up first and are
# idempotent: the virtualenv is rebuilt only when pyproject.toml changes. `make lint` is the quick
# part of `make test`: lint, format check and type check, no notebooks run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make-stamps
export HANDOFF_HOME ?= $(HOME)/.handoff

.PHONY: run test lint setup test-setup bench audit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The build sandbox (bubblewrap). Installed when we can (root with apt-get); otherwise builds run
# with a partial sandbox and say so (`handoff doctor` tells which one this machine gets).
$(STAMPS)/system:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
		echo "note: bubblewrap is not installed (sudo apt-get install bubblewrap): builds get a partial sandbox"
	@mkdir -p $(STAMPS) && touch $@

# What only the tests need: Debian's Chromium (the end-to-end tests' browser) and PostgreSQL (team
# mode's database; the tests start their own cluster on 127.0.0.1, as the `postgres` account when root).
$(STAMPS)/test-system: $(STAMPS)/system
	@{ command -v chromium >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql >/dev/null; } || \
		echo "note: install chromium and postgresql (sudo apt-get install chromium postgresql) for the browser and team-mode tests"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/install: pyproject.toml $(STAMPS)/system | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (handoff)" >/dev/null
	@mkdir -p $(STAMPS) && touch $@

# `all`: every optional model flavor library (XGBoost, LightGBM, CatBoost, statsmodels, PyTorch CPU).
$(STAMPS)/test-install: $(STAMPS)/install $(STAMPS)/test-system
	$(BIN)/pip install --quiet -e '.[test,all]'
	@mkdir -p $(STAMPS) && touch $@

setup: $(STAMPS)/install

test-setup: $(STAMPS)/test-install

run: setup
	$(BIN)/handoff app

# All three run even when one fails, so one run shows every finding (settings: pyproject.toml).
lint: test-setup
	@status=0; \
	echo "ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || status=1; \
	echo "mypy handoff"; $(BIN)/mypy handoff || status=1; \
	exit $$status

test: test-setup lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=25

# Known vulnerabilities in the installed packages. Needs pip-audit's vulnerability service (network):
# where it is unreachable this says NOT AUDITED and fails, so it is not part of `make test`.
$(STAMPS)/audit-install: $(STAMPS)/install
	$(BIN)/pip install --quiet -e '.[audit]'
	@mkdir -p $(STAMPS) && touch $@

audit: $(STAMPS)/audit-install
	$(BIN)/python tools/audit.py

bench: test-setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(STAMPS)
