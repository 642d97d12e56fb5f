# The two commands that do everything on a fresh machine with Python 3.11:
#   make run    create the virtual environment, install, migrate, start all four services
#               on SQLite files and the embedded bus (Ctrl-C stops everything)
#   make test   run every test
#   make demo   load sample data into the platform `make run` started (in another terminal)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := shared/pyproject.toml $(wildcard services/*/pyproject.toml) requirements-dev.txt

.PHONY: run test install bench clean demo

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

demo: $(STAMP)
	$(BIN)/crm demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var
