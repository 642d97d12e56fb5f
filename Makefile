# The two commands that do everything on a fresh machine with Python 3.11:
#   make run    create the virtual environment, install, migrate, start all four services
#               on SQLite files and the embedded bus (Ctrl-C stops everything)
#   make test   run every test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := shared/pyproject.toml $(wildcard services/*/pyproject.toml) requirements-dev.txt

.PHONY: run test install bench fuzz clean

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e shared \
		-e services/leads -e services/sales -e services/service-desk -e services/notify \
		-r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/crm run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# nightly: every service's OpenAPI fuzzed with 10x the requests of `make test`, fresh random examples
fuzz: $(STAMP)
	FUZZ_REQUESTS=$${FUZZ_REQUESTS:-20000} FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/test_hostile_fuzz.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var
