# credit_gateway: `make demo` brings the gateway up and runs its scenario; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every storage-touching test runs on each of these (see tests/support/databases.py).
TEST_DATABASES ?= sqlite,postgresql,mariadb
# pytest-xdist workers: each has its own databases (tests/support/databases.py) and ports.
TEST_WORKERS ?= 2

.PHONY: install demo test test-sqlite lint typecheck protos check-protos docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) scripts/gen_protos.py --check
	CREDIT_GATEWAY_TEST_DATABASES=$(TEST_DATABASES) $(PY) -m pytest -q -n $(TEST_WORKERS) --durations=25 --cov --cov-branch --cov-report=term

test-sqlite: $(STAMP)
	CREDIT_GATEWAY_TEST_DATABASES=sqlite $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

check-protos: $(STAMP)
	$(PY) scripts/gen_protos.py --check

# The reasons tables in docs/clients.md, from the source (tests/unit/test_reasons_doc.py checks).
docs: $(STAMP)
	$(PY) scripts/gen_reasons.py

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var .demo .pytest_cache .mypy_cache .ruff_cache
