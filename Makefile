# Warmline. `make run` serves the sample business on 127.0.0.1:8000; `make test` runs the suite.
# Both create .venv and install the pinned requirements on first use.
# `make serve` is the production entry point (settings from the environment, see docs/deploy.md);
# `make stack` runs a two-host deployment on loopback (redis, GCS emulator, one scheduler).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run serve stack doctor test bench demo soak venv system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# System packages the tests start for real (redis-server, headless Chromium); installed when missing.
system-deps:
	@command -v redis-server >/dev/null && command -v chromium >/dev/null || { \
	  echo "installing redis-server and chromium (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server chromium >/dev/null; }

run: venv
	$(PY) -m flask --app wsgi precompute run --fixed-only
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

# Production: gunicorn with WARMLINE_* from the environment (WARMLINE_ENV defaults to production here,
# so the secrets and WARMLINE_PUBLIC_URL are required); no demo precompute, no development defaults.
# The start-up check runs once in gunicorn's master; `kill -HUP <master pid>` reloads the business file.
serve: venv
	WARMLINE_ENV=$${WARMLINE_ENV:-production} exec $(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

# The start-up check on its own (exit 3 on any problem).
doctor: venv
	$(PY) -m flask --app wsgi doctor

# Two app hosts behind a round-robin balancer, redis-server, the GCS emulator (clips + events
# buckets) and one scheduler, all on loopback; Ctrl-C stops everything. See docs/deploy.md.
stack: venv system-deps
	$(PY) -m stack

test: venv system-deps
	$(PY) -m pytest -q

bench: venv
	$(PY) -m simulator.bench_speech
	$(PY) -m simulator bench

demo: venv
	$(PY) -m simulator demo

soak: venv
	$(PY) -m simulator soak --calls 100 --minutes 10 --fault-rate 0.05 --kill-every 60

clean:
	rm -rf var test-artifacts .pytest_cache
