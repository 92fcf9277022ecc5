# bitrix24-sync: every set-up step a fresh machine needs lives here (and nowhere else).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test notebook lint bench soak emulator postgres-server clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# the demo needs the package alone; the tests, benchmarks and lint need the test extras too
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

## make demo: start the emulator with seeded data, sync it into ./demo.duckdb, show what was loaded
demo: $(DEMO_STAMP)
	$(BIN)/bitrix24-sync demo

## make test: install what the tests need (PostgreSQL server binaries included, when run as root) and run them
test: $(STAMP) postgres-server
	$(BIN)/python -m pytest -q -n auto --dist loadfile

## make bench: the sync against the emulator (limits off) beside today's offset strategies; BIG=1 adds 1M deals
bench: $(STAMP) postgres-server
	$(BIN)/python -m tests.bench $(if $(BIG),--big)

## make soak: hundreds of SIGKILLs at random points with random faults; every run after a kill must converge
soak: $(STAMP)
	$(BIN)/python -m tests.soak --kills $(or $(KILLS),300) --seed $(or $(SEED),1)

## make notebook: run the analyses on ./demo.duckdb (make demo first) into notebooks/crm_analyses.executed.ipynb,
## charts included (BITRIX24_DUCKDB=your.duckdb for your own warehouse)
notebook: $(STAMP)
	$(BIN)/python -c "import nbclient, nbformat; nb = nbformat.read('notebooks/crm_analyses.ipynb', 4); \
	    nbclient.NotebookClient(nb, resources={'metadata': {'path': 'notebooks'}}).execute(); \
	    nbformat.write(nb, 'notebooks/crm_analyses.executed.ipynb')"
	@echo "wrote notebooks/crm_analyses.executed.ipynb"

lint: $(STAMP)
	$(BIN)/ruff check .

## make emulator: serve a seeded emulator on :8765 until Ctrl-C
emulator: $(DEMO_STAMP)
	$(BIN)/python -m bitrix24_emulator --port 8765 --seed 7

# The tests start a throwaway PostgreSQL server themselves (initdb + pg_ctl, unprivileged user); they only need
# the server binaries. Debian's package provides them when missing and we may install (root, as in CI).
postgres-server:
	@if [ -n "$$BITRIX24_TEST_POSTGRES_URL" ] || command -v initdb >/dev/null 2>&1 \
	    || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql package (server binaries for the tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	    echo "PostgreSQL server binaries not found: install Debian's 'postgresql' package or set" \
	         "BITRIX24_TEST_POSTGRES_URL; the Postgres tests will be skipped"; \
	fi

clean:
	rm -rf $(VENV) demo.duckdb .demo .pytest_cache
