# Two commands on a fresh machine: `make run` (demo on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# What is installed: the runtime packages alone for `make run`, the dev extra too (test tools, linters,
# browser driver) for everything else. The dev stamp is made after the runtime one, so a venv that
# `make run` made gets the dev extra at the first `make test`.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# The demo targets run with DEBUG on (a local development key, no HTTPS) unless the environment says
# otherwise; everything else, tests included, gets production's defaults (README.md, "Configuration").
migrate seed run screenshots: export DEBUG ?= true
run: export ALLOWED_HOSTS ?= $(HOST),localhost,127.0.0.1,[::1]

.PHONY: setup setup-runtime run test test-fast lint lint-imports migrate seed screenshots bench clean

$(RUNTIME_STAMP): pyproject.toml
	@echo "Installing the runtime packages into $(VENV) (the first time takes a few minutes)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	@echo "Installing the test and lint tools (the dev extra) into $(VENV)..."
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# plotly.js is served from the installed plotly package (workbench.staticfinders), never from a CDN.
setup-runtime: $(RUNTIME_STAMP)
	mkdir -p var

setup: setup-runtime $(STAMP)

migrate: setup-runtime
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# Web server plus one background worker; Ctrl-C stops both and exits 0 (demo/serve.py says how).
run: seed
	$(PY) manage.py refresh_dashboards --full
	@echo "Serving http://$(HOST):$(PORT)/  (demo logins in README.md; Ctrl-C stops)"
	@$(PY) -m demo.serve $(HOST):$(PORT)

lint-imports: setup
	$(VENV)/bin/lint-imports

# ruff's rules and mypy's scope (strict, on the pure engine) are set in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint-imports lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/pytest -m "not browser" $(PYTEST_ARGS)

screenshots: setup
	SCREENSHOTS=1 $(VENV)/bin/pytest tests/browser $(PYTEST_ARGS)

# One run of bench/ on the current code, written to docs/benchmarks.md; sizes: bench/report.py --help.
bench: setup
	$(PY) bench/report.py $(BENCH_ARGS)

clean:
	rm -rf var staticfiles .pytest_cache
