# Two commands a newcomer needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test bench venv install install-test docs clean browser spreadsheet java

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files make re-runs fast; they are redone whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

# The test extra brings the spark extra too: tests/test_spark_engine.py runs a real local Spark.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,spark]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/usagectl demo

# The HTML report is tested in a real headless browser: Debian's chromium, installed when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the HTML report test..." >&2; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "warning: could not install chromium; the browser test will be skipped" >&2; }

# CSV exports are tested by opening them in LibreOffice (headless, no GUI): installed when missing.
spreadsheet:
	@command -v soffice >/dev/null 2>&1 || { \
		echo "installing libreoffice-calc-nogui for the CSV spreadsheet test..." >&2; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libreoffice-calc-nogui) >/dev/null 2>&1 \
		|| echo "warning: could not install libreoffice-calc-nogui; the spreadsheet test will be skipped" >&2; }

# Spark (the --engine spark tests) runs on Java 17: Debian's openjdk-17-jre-headless, installed
# when no java is found (JAVA_HOME or PATH).
java:
	@{ test -n "$$JAVA_HOME" && test -x "$$JAVA_HOME/bin/java"; } || command -v java >/dev/null 2>&1 || { \
		echo "installing openjdk-17-jre-headless for the Spark engine test..." >&2; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >/dev/null 2>&1 \
		|| echo "warning: could not install openjdk-17-jre-headless; the Spark test will be skipped" >&2; }

test: install-test browser spreadsheet java
	$(BIN)/ruff check usagectl tests benchmarks
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,spark,bench]'
	@touch $@ $(VENV)/.installed $(VENV)/.installed-test

# The full run takes about an hour on 2 cores; BENCH_ARGS picks sizes, e.g.
# make bench BENCH_ARGS="--quick --output /tmp/bench.md" (see benchmarks/run.py --help).
BENCH_ARGS ?=
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

docs: install
	$(BIN)/python -m usagectl.cli.docgen > docs/cli-reference.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
