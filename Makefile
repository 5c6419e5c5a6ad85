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

# pytest exits 5 when it collected no tests; say so plainly (make then fails as for any error).
PYTEST = $(PY) -m pytest -q $(1) || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc; }

# Full suite: unit tests plus the slow, real-Slurm and DDP tests (installs Slurm via apt).
# MTF_REQUIRE_SLURM=1: the real-Slurm tests fail, not skip, when the test Slurm cannot start.
test: setup
	bash scripts/install_slurm.sh
	MTF_REQUIRE_SLURM=1 $(call PYTEST,-m "")

# Fast subset for development: skips tests marked slow, slurm or ddp.
test-fast: setup
	$(call PYTEST,)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The Lightning contender of overhead.py needs the `bench` extra (not part of `all`).
bench: setup
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) bench/overhead.py
	$(PY) bench/scheduler.py
	$(PY) bench/resume_latency.py
	$(PY) bench/async_checkpoint.py
	$(PY) bench/import_time.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
