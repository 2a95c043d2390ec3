# Developer entry points. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
FLASK  := $(BIN)/flask --app wsgi
PYBABEL := $(BIN)/pybabel
CHROMIUM ?= /usr/bin/chromium
# Two xdist workers (one per core; each gets its own PostgreSQL database and Redis db): ~40% faster.
PYTEST_ARGS ?= -p xdist -n 2

.PHONY: help venv install run test lint format translations compile-translations system-packages mail-servers deploy-tools db-upgrade bench clean

help:
	@echo "make run                   web app on http://\$$RUN_HOST:\$$RUN_PORT (default 127.0.0.1:5000) + RQ worker"
	@echo "                           + rq cron, restarted if they crash (demo data on first run); Ctrl-C stops all"
	@echo "make test                  lint, migrations check, the whole test suite (SQLite, PostgreSQL, Redis,"
	@echo "                           Dovecot, Postfix, rspamd, Chromium, the deploy/ files); installs what it needs as root"
	@echo "make lint                  ruff check and ruff format --check"
	@echo "make format                ruff check --fix and ruff format"
	@echo "make translations          extract messages and update the catalogs under translations/"
	@echo "make compile-translations  compile the catalogs (.mo files)"
	@echo "make bench                 run the benchmarks in bench/"
	@echo "make install               the virtualenv .venv with requirements-dev.txt (make venv: the same)"
	@echo "make db-upgrade            flask db upgrade (DATABASE_URL, default SQLite under instance/)"
	@echo "make system-packages       chromium for the browser tests (as root on Debian)"
	@echo "make mail-servers          Dovecot, Postfix, rspamd for the integration tests (as root on Debian)"
	@echo "make deploy-tools          nginx, openssl, psql, systemd-analyze to check deploy/ (as root on Debian)"
	@echo "make clean                 remove .venv and the caches"
	@echo "make help                  this list (also plain make)"

venv: $(STAMP)
install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

compile-translations: $(STAMP)
	@if ls translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(PYBABEL) compile -d translations; \
	fi

db-upgrade: $(STAMP)
	$(FLASK) db upgrade

run: $(STAMP) compile-translations db-upgrade
	$(FLASK) seed-demo
	$(PY) scripts/run.py

# Debian packages the browser tests need; installed only as root on Debian.
system-packages:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then \
		echo "Installing chromium (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else \
		echo "NOTE: $(CHROMIUM) is missing and this is not root on Debian: the browser tests (tests/e2e) will be skipped."; \
	fi

# Dovecot, Postfix and rspamd for the integration tests (throwaway instances on loopback ports);
# installed only as root on Debian, with the system-wide services left stopped.
mail-servers:
	@./scripts/install-mailservers.sh

# nginx, openssl, psql and systemd-analyze, with which tests/deploy checks the files under deploy/.
deploy-tools:
	@./scripts/install-deploy-tools.sh

test: $(STAMP) system-packages mail-servers deploy-tools compile-translations
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

translations: $(STAMP)
	mkdir -p translations
	$(PYBABEL) extract -F babel.cfg -k _l -k lazy_gettext -o translations/messages.pot .
	@if [ -f translations/en/LC_MESSAGES/messages.po ]; then \
		$(PYBABEL) update -d translations -l en -i translations/messages.pot; \
	else \
		$(PYBABEL) init -d translations -l en -i translations/messages.pot; \
	fi

bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .cache
