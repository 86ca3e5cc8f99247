# Two entry points for a fresh clone: `make demo` and `make test` (`make docs` builds the documentation).
# Both create .venv on first use (Python 3.11), install torch/torchvision from the pinned
# releases in one pip call, then segprune with its extras, and reuse it afterwards.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.segprune-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev,export,prune,smp,docs
PYTEST_ARGS ?=

.PHONY: demo test lint docs bench-camvid clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/segprune demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# the documentation site into site/, warnings as errors (a broken link or a stale reference fails)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

lint: $(STAMP)
	$(VENV)/bin/ruff check segprune tests benchmarks

bench-camvid: $(STAMP)
	$(PY) benchmarks/camvid_baseline.py

clean-venv:
	rm -rf $(VENV)

# On a machine with an NVIDIA GPU: the cuda/tensorrt-marked tests, then unpruned vs compressed
# DeepLabV3+ R18 latency (PyTorch CUDA variants, TensorRT where installed) -> benchmarks/results/gpu_<device>.json
# (on a machine without network, run `python benchmarks/gpu_check.py` with the python that has torch instead)
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)
