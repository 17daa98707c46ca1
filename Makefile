# siScore platform.  Two commands matter: `make demo` and `make test`.
# Every target first runs the idempotent, cached setup of .venv (scripts/setup_env.sh).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)
export SISCORE_DATA_ROOT ?= data
export PYTHONHASHSEED := 0
# Cache bytecode: torch, dagster and statsmodels import several times faster from .pyc.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup browser demo test dev bench lint clean

setup:
	@bash scripts/setup_env.sh

browser:  ## headless Chromium + chromedriver from Debian, for the annotation-kit browser test
	@bash scripts/setup_browser.sh

demo: setup  ## set up, then materialise every asset of the default country (SYN, 2016-2019)
	@mkdir -p $(SISCORE_DATA_ROOT)
	$(VENV)/bin/siscore run

.PHONY: nk
# Without ../shared, the sample `siscore sample nk` downloads to $(SISCORE_DATA_ROOT)/nk_sample.
nk: export SISCORE_PRK_ROOT := $(or $(SISCORE_PRK_ROOT),$(if $(wildcard ../shared/data/nk_sample/tiles),,$(wildcard $(SISCORE_DATA_ROOT)/nk_sample)))
nk: setup  ## set up, then materialise every asset of the real North Korea sample (PRK, 2016-2019)
	@mkdir -p $(SISCORE_DATA_ROOT)
	$(VENV)/bin/siscore run --country PRK

.PHONY: prks
prks: setup  ## the NK sample from scratch (no cluster folder; induced annotators, not people)
	@mkdir -p $(SISCORE_DATA_ROOT)
	SISCORE_COUNTRIES=benchmarks/prks/countries.yaml $(PY) -m benchmarks.prks

test: setup browser  ## set up, then run the test suite (SISCORE_SKIP_BROWSER=1: no browser test)
	$(PY) -m pytest -q -n 2 --dist loadgroup

# `dg dev`, Dagster's way now: this checkout is a dg project ([tool.dg] in pyproject.toml) whose
# code location is siscore_assets.definitions:defs; dg wants its project's venv active.
dev: setup  ## the Dagster UI (and daemon) on http://127.0.0.1:3000 (PORT=... to change)
	@mkdir -p $(SISCORE_DATA_ROOT)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
	  $(VENV)/bin/dg dev --host 127.0.0.1 --port $(or $(PORT),3000)

bench: setup  ## benchmarks; figures go to benchmarks/RESULTS.md by hand
	$(PY) -m benchmarks.demo_bench

lint: setup
	$(VENV)/bin/ruff check .

clean:  ## remove generated data (keeps .venv)
	rm -rf data
