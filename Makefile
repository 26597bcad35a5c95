# The commands developers type and CI runs (.ci/run): make install | services | lint | test.
# Everything runs from the project's own virtualenv in .venv.

VENV := .venv
BIN  := $(VENV)/bin

# The broker for tests, demo and benchmarks, unless the caller already chose one.
BUS_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/%2F
export BUS_AMQP_URL

# Extra pytest arguments, e.g. make test PYTEST_ARGS='-x -k outbox'
PYTEST_ARGS ?=

.PHONY: install services lint test demo bench clean

install: $(VENV)/.installed

# The stamp keeps `install` a no-op until pyproject.toml, the dependency list, changes.
$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

services:
	.ci/services

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole pipeline on this machine, bounded: exits 0 once the portal simulator holds every
# dossier. Options go in DEMO_ARGS, e.g. make demo DEMO_ARGS='--keep-running --dossiers 200'.
demo: install services
	$(BIN)/bus demo $(DEMO_ARGS)

# Every benchmark at its issue's size (chaos at its CI size), one JSON line each (about 12
# minutes on 2 cores).
# One alone: make bench BENCHES=sync
BENCHES ?= contract publish consume sync connector chaos scale
bench: install services
	@for name in $(BENCHES); do $(BIN)/python -m bench $$name --json || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
