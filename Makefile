# Lucent Admin. `make run`: the whole console on embedded defaults. `make test`: the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench lint venv vendor-htmx clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	LUCENT_EMBEDDED=1 $(PY) manage.py migrate --noinput
	LUCENT_EMBEDDED=1 $(PY) manage.py ensure_operator
	$(PY) -m lucent_admin.devstack

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vulture

bench: $(STAMP)
	@$(PY) benchmarks/run_all.py $(BENCH_ARGS)

vendor-htmx:
	$(PY) scripts/vendor_htmx.py

clean:
	rm -rf $(VENV) .data
