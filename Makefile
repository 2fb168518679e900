# MuseHub — `make run` serves the embedded default, `make serve` a production app server
# (gunicorn, MUSEHUB_ENV=production, configured by the environment), `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two install levels: `make run` needs only the runtime; tests, lint and benchmarks add the dev tools.
STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
PG_URL ?= postgres://postgres@127.0.0.1:5432/musehub
HOST ?= 127.0.0.1
# Two workers (pytest-xdist): the machine has two cores.
PYTEST_ARGS ?= -n 2
PORT ?= 8000

.PHONY: install install-dev build browser nginx run serve migrate test test-sqlite test-postgres lint format bench bench-core bench-scale clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

# The C extensions (setup.py: the client's walk, the core's speedups), built in place; setuptools skips them
# when up to date, and without a C compiler leaves them out with a warning (the same code then runs in Python).
# Then the project's bytecode, once: where PYTHONDONTWRITEBYTECODE is set (this machine, the image) every
# process would otherwise compile every module again when it starts (0.2 s of each maintenance command).
PACKAGES := musehub repos wire api web hubhttp musehub_core musehub_client bench
build: $(STAMP)
	$(BIN)/python -W ignore setup.py -q build_ext --inplace
	$(BIN)/python -m compileall -q -j 0 $(PACKAGES) manage.py

# Real-browser tests drive Debian's chromium through chromium-driver (no download at test time).
# Installed here when missing and apt can; otherwise those tests skip and say why.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) || \
		echo "browser: could not install chromium and chromium-driver; the browser tests will skip"; \
	else echo "browser: chromium/chromedriver missing and apt-get unavailable; the browser tests will skip"; fi

# The proxy test (tests/test_proxy.py) runs Debian's nginx with deploy/nginx.conf in front of gunicorn. When it
# is missing, Debian's package is unpacked into build/nginx (nothing installed system-wide, no service started);
# where that cannot be done the test skips and says why.
NGINX_LOCAL := build/nginx/usr/sbin/nginx
nginx:
	@if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || [ -x $(NGINX_LOCAL) ]; then :; \
	elif command -v apt-get >/dev/null && command -v dpkg >/dev/null; then \
		rm -rf build/nginx-deb && mkdir -p build/nginx-deb && \
		( (cd build/nginx-deb && apt-get download nginx >/dev/null 2>&1) || \
		  ([ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && \
		   cd build/nginx-deb && apt-get download nginx >/dev/null 2>&1) ) && \
		dpkg -x build/nginx-deb/nginx_*.deb build/nginx && rm -rf build/nginx-deb || \
		echo "nginx: could not unpack Debian's nginx; tests/test_proxy.py will skip"; \
	else echo "nginx: missing and apt-get unavailable; tests/test_proxy.py will skip"; fi

# The embedded default with DEBUG off, as a stranger would see it; MUSEHUB_DEBUG=1 make run for Django's debug pages.
run: $(STAMP) build
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production: run `make migrate` once per deploy (not on every app server), then `make serve` on each.
migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

serve: $(STAMP) build
	MUSEHUB_ENV=$${MUSEHUB_ENV:-production} $(BIN)/python manage.py collectstatic --noinput -v 0
	MUSEHUB_ENV=$${MUSEHUB_ENV:-production} HOST=$(HOST) PORT=$(PORT) \
		$(BIN)/gunicorn -c deploy/gunicorn.conf.py musehub.wsgi

# mypy checks what [tool.mypy] in pyproject.toml lists (a cold run about 7 s, then .mypy_cache: under 1 s).
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# MUSEHUB_REQUIRE_NATIVE: C extensions that failed to build fail their tests instead of skipping them.
test-sqlite: $(DEV_STAMP) build browser nginx
	MUSEHUB_REQUIRE_NATIVE=1 DATABASE_URL= $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-postgres: $(DEV_STAMP) build browser nginx
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	MUSEHUB_REQUIRE_NATIVE=1 DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint test-sqlite test-postgres

# Benchmark (bench/README.md): PostgreSQL on 127.0.0.1:5432, moto S3, gunicorn and git daemon, all local.
# BENCH_ARGS="--quick" for a smoke run; results go to bench/results/, then bench.plot redraws
# bench/results/ratios.png (MuseHub/git per workload over the full runs; docs/performance.md).
bench: $(DEV_STAMP) build
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.plot

bench-core: $(DEV_STAMP)
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	$(BIN)/python -m bench.core_25k $(BENCH_CORE_ARGS)

# A hub grown to 1,000+ repositories through the real push path (bench/scale.py); BENCH_SCALE_ARGS="--quick" for a smoke run.
bench-scale: $(DEV_STAMP) build
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	$(BIN)/python -m bench.scale $(BENCH_SCALE_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache .mypy_cache build musehub_client/*.so musehub_core/*.so
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
