# Two commands on a fresh machine: `make run` (demo on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# The demo targets run with DEBUG on (a local development key, no HTTPS) unless the environment says
# otherwise; everything else, tests included, gets production's defaults (README.md, "Configuration").
migrate seed run screenshots: export DEBUG ?= true
run: export ALLOWED_HOSTS ?= $(HOST),localhost,127.0.0.1,[::1]

.PHONY: setup run test test-fast lint lint-imports migrate seed screenshots bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# plotly.js is served from the installed plotly package (workbench.staticfinders), never from a CDN.
setup: $(STAMP)
	mkdir -p var

migrate: setup
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# Web server plus one background worker; Ctrl-C stops both.
run: seed
	$(PY) manage.py refresh_dashboards --full
	@echo "Serving http://$(HOST):$(PORT)/  (demo logins in README.md)"
	@trap 'kill 0' INT TERM EXIT; \
	  $(PY) manage.py qcluster & \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

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
