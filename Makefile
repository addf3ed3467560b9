# shop360 — every target sets up what it needs (a virtualenv in .venv) before it runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# the venv's tools come first, activated or not
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install manifest browser demo test ui bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# dagster-dbt reads the dbt manifest at import time; `dagster dev` builds it itself, everything else needs this.
manifest: install
	$(BIN)/shop360 dbt-parse

# The browser test drives Debian's Chromium (Playwright's own browser download does not work offline).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo: manifest
	$(BIN)/shop360 demo

# Two pytest workers use both cores of a small server; each takes whole test files, whose
# session fixtures (the session world and its nightly) it builds once for itself.
TEST_WORKERS ?= 2
test: manifest browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

ui: manifest
	$(BIN)/shop360 prepare-dagster-home
	$(BIN)/dagster dev -w workspace.yaml

# Full and incremental nightly runs timed per stage (S three times for medians, then M once) beside DuckDB's
# read_json of the same files: a report, not a test. E.g. make bench BENCH_ARGS="--size S" (shop360 bench --help).
BENCH_ARGS ?= --size S:3 --size M:1
bench: manifest
	$(BIN)/shop360 bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf data transform/target transform/logs
