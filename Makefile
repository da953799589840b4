# Scalpel: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.scalpel-installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv browser demo serve test lint typecheck pytest bench-fisher bench-oneshot bench-recipe bench-latency bench-api-load bench-architectures clean

# torch 2.13.0 goes in first (a CPU build lies on disk here); then the project with its extras,
# so nothing pulls a CUDA build of torch.
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ./client
	$(PIP) install -q -e '.[worker,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) scripts/demo.py

serve: venv
	$(PY) scripts/serve.py

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

# The dashboard's browser tests drive Debian's chromium; they skip, saying why, without it.
browser:
	@command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null \
		|| echo "no chromium: the dashboard browser tests will skip" >&2

pytest: venv browser
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench-fisher: venv
	$(PY) bench/fisher.py

bench-oneshot: venv
	$(PY) bench/oneshot.py

# The built-in recipes end to end (in-process pipeline), one JSON line each; RECIPE_ARGS adds
# options (e.g. RECIPE_ARGS="--configs gmp-80 --steps 500", or "--smoke").
bench-recipe: venv
	$(PY) bench/recipe.py --out bench/results $(RECIPE_ARGS)

# A kept recipe job's ONNX files timed again against the dense model, at 1 thread and at all
# cores, on a quiet machine (LATENCY_ARGS="--keep DIR"; DIR from RECIPE_ARGS="--keep DIR ...").
bench-latency: venv
	$(PY) bench/latency.py --out bench/results $(LATENCY_ARGS)

# Every encoder family's tiny model trained from scratch on SST-2, pruned one-shot to 50/70% by
# magnitude and oBERT, exported to ONNX fp32/int8: one JSON line per family, at 1 thread
# (ARCH_ARGS adds options, e.g. ARCH_ARGS="--families roberta deberta-v2 --steps 200").
bench-architectures: venv
	$(PY) bench/architectures.py --out bench/results $(ARCH_ARGS)

# Polling clients aiming at 1,200 status reads/s (the latency a client sees at that load), then
# every connection back-to-back (the most the API serves).
bench-api-load: venv
	$(PY) bench/api_load.py --rate 1200 --list-rate 100
	$(PY) bench/api_load.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
