# pwes: every target sets up .venv itself (created on first use, refreshed when pyproject.toml or setup.py changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-all test-slurm bench bench-gpu clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch is pinned: this install takes the CPU build from local disk (an unpinned torch pulls a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install pwes with its dependencies

train: $(STAMP) ## run the main job: all LOSO folds of the embedded synthetic benchmark (ARGS="..." adds Hydra overrides)
	$(PY) -m pwes.train $(ARGS)

test: $(STAMP) ## run the test suite (fast tests; slow ones are marked and skipped)
	$(PY) -m pytest -q $(ARGS)

test-all: $(STAMP) ## run every test, the slow end-to-end ones and the SLURM ones (skipped where SLURM is missing) included
	$(PY) -m pytest -q -m "slow or not slow" $(ARGS)

test-slurm: $(STAMP) ## as root with Debian's slurm-wlm and munge: fold sweeps on a single-node SLURM that tests/slurm/cluster.sh starts and stops (skipped with the reason otherwise)
	$(PY) -m pytest -q -m slurm -rs tests/test_slurm.py $(ARGS)

bench: $(STAMP) ## print speed and memory figures (training fp32/bf16 and both dropouts, extraction, data memory, motion-energy baseline; ARGS=--full-run also times a whole make train)
	$(PY) benchmarks/run_all.py $(ARGS)

bench-gpu: ## on a GPU machine: the CUDA tests against the CPU and GPU training speed (benchmarks/cuda_check.sh, uses python3)
	bash benchmarks/cuda_check.sh

clean: ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .cache .pytest_cache
