# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
# torch is installed explicitly as the CPU build 2.13.0 so that no multi-GB CUDA build is pulled.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/mtf demo

# Full suite: unit tests plus the slow, real-Slurm and DDP tests (installs Slurm via apt).
test: setup
	bash scripts/install_slurm.sh
	$(PY) -m pytest -m "" -q

# Fast subset for development: skips tests marked slow, slurm or ddp.
test-fast: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) bench/overhead.py
	$(PY) bench/scheduler.py
	$(PY) bench/resume_latency.py
	$(PY) bench/async_checkpoint.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
