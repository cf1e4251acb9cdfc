# Lucent Admin. `make run`: the whole console on embedded defaults. `make test`: the whole suite.
# `make drills [DRILLS=name,name] [PARTITIONS=N] [REDIS=cluster|sentinel]`: the fault drills (tests/drills), one JSON line per drill; with PARTITIONS the user-keyed projections are split N ways; with REDIS every stack keeps its read models on a Redis Cluster or behind Sentinels.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast drills bench lint venv vendor-htmx constraints audit clean

# Installs the tested set: constraints.txt pins every dependency (`make constraints` rewrites it).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c constraints.txt pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	LUCENT_EMBEDDED=1 $(PY) manage.py migrate --noinput
	LUCENT_EMBEDDED=1 $(PY) manage.py ensure_operator
	$(PY) -m lucent_admin.devstack

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast tiers: pure folds, codecs, rules and the layer tests; the action layer with jobs run in-process
# (the test Redis and an empty embedded store; no worker, no market, no browser).
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit tests/service $(PYTEST_ARGS)

drills: $(STAMP)
	@$(PY) -m tests.drills $(if $(DRILLS),--drills $(DRILLS)) $(if $(PARTITIONS),--partitions $(PARTITIONS)) $(if $(REDIS),--redis $(REDIS))

lint: $(STAMP)
	@# the mypy plugin loads the test settings, which start a private redis-server when REDIS_URL is unset and
	@# never stop it (the plugin's process skips atexit): a URL nothing needs to answer keeps mypy from starting one
	REDIS_URL=redis://127.0.0.1:9/0 $(VENV)/bin/mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vulture

bench: $(STAMP)
	@$(PY) benchmarks/run_all.py $(BENCH_ARGS)

vendor-htmx:
	$(PY) scripts/vendor_htmx.py

constraints: $(STAMP)
	$(PY) scripts/lock_dependencies.py

audit: $(STAMP)
	$(PY) scripts/audit_dependencies.py

clean:
	rm -rf $(VENV) .data
