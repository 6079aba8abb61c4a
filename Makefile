# Two commands for a new user: `make demo` and `make test`.
# Each creates .venv if it is missing and installs the project into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?= -n 2

.PHONY: test demo lint benchmark adfa clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_FLAGS)

demo: $(STAMP)
	$(PY) experiments/pipeline.py --config configs/small.yaml --out runs/demo --quiet

lint: $(STAMP)
	$(VENV)/bin/ruff check sentinel_jax experiments tests

benchmark: $(STAMP)
	$(PY) experiments/benchmark.py --out runs/benchmark
	$(PY) experiments/benchmark_data.py --out runs/benchmark
	$(PY) experiments/benchmark_training.py --out runs/benchmark --samples 5000 --epochs 3

adfa: $(STAMP)
	$(PY) experiments/evaluate_adfa.py --config configs/adfa.yaml --out runs/adfa

clean-venv:
	rm -rf $(VENV)
