# The two commands: `make run` starts the whole product, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi

.PHONY: run test redis venv bench

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Redis comes from the system package; as root we install it, otherwise we say how.
redis:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else echo "redis-server is missing: sudo apt-get install redis-server"; exit 1; fi; }

run: venv redis
	mkdir -p instance/mailbox
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(VENV)/bin/honcho start -f Procfile

test: venv redis
	$(PY) -m pytest

bench: venv redis
	$(PY) bench/outbox_delivery.py
