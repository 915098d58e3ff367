# The two commands of the README, and a few more. Each target bootstraps what it needs.
#   make run suite=cnn_baseline [profile=smoke|full] [args="train.epochs=2 backend=all"]
#   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
suite ?= mlp_baseline
profile ?= smoke
args ?=
EXTRAS ?= torch,tensorflow,container,ray,dev

.PHONY: setup data run test test-fast bench nightly list clean

# The virtual environment, rebuilt when the package's requirements change.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/.installed

data: setup
	$(BIN)/harness data

run: data
	$(BIN)/harness run suite=$(suite) profile=$(profile) $(args)

list: setup
	$(BIN)/harness list

test: data
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: data
	$(BIN)/python -m pytest -m "not slow and not container and not browser" $(PYTEST_ARGS)

nightly: data
	$(BIN)/harness nightly $(args)

bench: data
	$(BIN)/python benchmarks/bench_epoch.py --backend all

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
