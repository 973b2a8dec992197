# The two commands: `make run` starts the whole product, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi

.PHONY: run test redis venv bench bench-relay bench-peak

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# English catalog (Japanese is the source language); the .mo is a build output.
app/translations/en/LC_MESSAGES/messages.mo: app/translations/en/LC_MESSAGES/messages.po $(VENV)/.installed
	$(VENV)/bin/pybabel -q compile -d app/translations

venv: $(VENV)/.installed app/translations/en/LC_MESSAGES/messages.mo

# Redis comes from the system package; as root we install it, otherwise we say how.
redis:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else echo "redis-server is missing: sudo apt-get install redis-server"; exit 1; fi; }

run: venv redis
	mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(VENV)/bin/honcho start -f Procfile

# The whole suite on SQLite, then every database-touching test again on PostgreSQL
# (a throwaway cluster the tests start themselves; skipped with a note where it is not installed).
test: venv redis
	$(PY) -m pytest
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  TEST_DATABASE=postgresql $(PY) -m pytest --deselect tests/test_zoom_emulator.py --deselect tests/test_google_emulator.py \
	    --deselect tests/test_google_contract.py --deselect tests/test_translations.py; \
	else echo "PostgreSQL is not installed (apt-get install postgresql): the PostgreSQL run is skipped"; fi

bench: venv redis
	$(PY) bench/outbox_delivery.py

# The outbox against a distant relay (50 and 200 ms per message, 20 connections): 5,000 due at once each.
bench-relay: venv redis
	$(PY) bench/outbox_delivery.py --sink counting --latency-ms 50 --max-connections 20
	$(PY) bench/outbox_delivery.py --sink counting --latency-ms 200 --max-connections 20

# The top-of-the-hour peak on PostgreSQL: 50,000 URL emails due in one minute, 4 workers, one SIGKILLed.
bench-peak: venv redis
	$(PY) bench/peak_postgres.py
