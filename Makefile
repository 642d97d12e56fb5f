# The two commands that do everything on a fresh machine with Python 3.11:
#   make run    create the virtual environment, install, migrate, start all four services
#               on SQLite files and the embedded bus (Ctrl-C stops everything)
#   make test   run every test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := shared/pyproject.toml $(wildcard services/*/pyproject.toml) requirements-dev.txt

.PHONY: run test install bench fuzz reliability clean screenshots chromium

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e shared \
		-e services/leads -e services/sales -e services/service-desk -e services/notify \
		-r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) chromium

# The browser tests drive Debian's Chromium (Playwright never downloads a browser here): installed
# when missing and make runs as root (CI); otherwise those tests are skipped (failed in CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				chromium fonts-wqy-microhei >/dev/null; \
		else \
			echo "chromium is not installed (and this is not root): the browser tests will be skipped"; \
		fi; }

run: $(STAMP)
	$(BIN)/crm run

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# nightly: every service's OpenAPI fuzzed with 10x the requests of `make test`, fresh random examples
fuzz: $(STAMP)
	FUZZ_REQUESTS=$${FUZZ_REQUESTS:-20000} FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/test_hostile_fuzz.py $(PYTEST_ARGS)

screenshots: $(STAMP)
	CRM_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/browser -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

# the fault, end-to-end and hostile-input tests (pytest -m reliability), their figures rendered
# into docs/RELIABILITY.md (JSON per test in var/reliability/)
reliability: $(STAMP)
	$(BIN)/python scripts/reliability.py

clean:
	rm -rf $(VENV) var
