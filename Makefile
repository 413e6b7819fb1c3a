# Two commands do all the set-up: `make demo` and `make test`.
# Each bootstraps .venv on first use; a second call installs nothing.
#
# TORCH_SPEC picks the torch build. The default is the CPU wheel; on a GPU
# machine use e.g.  make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: demo test test-fast bench gpu-check clean-venv

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_SPEC)
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) -e ".[test]"
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/omni demo

test: $(VENV)/.test
	$(PY) -m pytest -q

test-fast: $(VENV)/.test
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.test
	$(PY) benchmarks/run.py

# Every stage's gpu preset for a few dozen steps, bf16 and fp16 + GradScaler, and cached decoding
# (≤ 8 min on one GPU); without CUDA it prints one line and exits 0.
gpu-check: $(VENV)/.test
	$(PY) benchmarks/gpu_check.py

clean-venv:
	rm -rf $(VENV)
