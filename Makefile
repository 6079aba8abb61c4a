# Two commands for a new user: `make demo` and `make test`.
# Each creates .venv if it is missing and installs the project into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?= -n 2

.PHONY: test demo lint benchmark clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_FLAGS)

demo: $(STAMP)
	$(PY) experiments/generate_data.py --config configs/small.yaml --out runs/demo/data

lint: $(STAMP)
	$(VENV)/bin/ruff check sentinel_jax experiments tests

benchmark: $(STAMP)
	$(PY) experiments/benchmark.py --out runs/benchmark

clean-venv:
	rm -rf $(VENV)
