# MuseHub — `make run` serves the embedded default, `make serve` a production app server
# (gunicorn, MUSEHUB_ENV=production, configured by the environment), `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/musehub
HOST ?= 127.0.0.1
# Two workers (pytest-xdist): the machine has two cores.
PYTEST_ARGS ?= -n 2
PORT ?= 8000

.PHONY: install run serve migrate test test-sqlite test-postgres lint format bench bench-core clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	MUSEHUB_DEBUG=$${MUSEHUB_DEBUG:-1} $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production: run `make migrate` once per deploy (not on every app server), then `make serve` on each.
migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

serve: $(STAMP)
	MUSEHUB_ENV=$${MUSEHUB_ENV:-production} $(BIN)/python manage.py collectstatic --noinput -v 0
	MUSEHUB_ENV=$${MUSEHUB_ENV:-production} HOST=$(HOST) PORT=$(PORT) \
		$(BIN)/gunicorn -c deploy/gunicorn.conf.py musehub.wsgi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-sqlite: $(STAMP)
	DATABASE_URL= $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-postgres: $(STAMP)
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint test-sqlite test-postgres

# Benchmark (bench/README.md): PostgreSQL on 127.0.0.1:5432, moto S3, gunicorn and git daemon, all local.
# BENCH_ARGS="--quick" for a smoke run; results go to bench/results/.
bench: $(STAMP)
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-core: $(STAMP)
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	$(BIN)/python -m bench.core_25k $(BENCH_CORE_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
