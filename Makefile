# Genesis: the two commands are `make run` (the platform on the bundled sample) and
# `make test`. `make help` lists the rest. Needs GNU make, bash and Python >= 3.11.
#
#   make run                         # store and run outputs under ~/.genesis
#   make run GENESIS_HOME=/data/gen  # ... or elsewhere
#   make test PYTHON=python3.11      # build the venv with another interpreter

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.SUFFIXES:

PYTHON ?= python3
VENV = .venv
BIN = $(VENV)/bin
GENESIS_HOME ?= $(HOME)/.genesis
SAMPLE = data/sample/usdm_btcusdt_20240808.jsonl.gz
SAMPLE_SYMBOL = binance-usdm:BTCUSDT
# A simulated market with spoofing and layering episodes (ground truth in the `episodes` table).
SIMULATION = --scenario spoofing --scenario layering --seconds 600 --seed 1
NOTEBOOK_TESTS = notebooks/01_ingest.ipynb notebooks/02_explore.ipynb notebooks/03_train_deeplob.ipynb notebooks/04_backtest.ipynb notebooks/05_surveillance.ipynb \
	notebooks/06_cross_asset.ipynb notebooks/surveillance_review.ipynb
TORCH_PIN = 2.13.0
# The venv is (re)installed when missing or when pyproject.toml changes.
STAMP = $(VENV)/.installed

# Commands run with the venv first on PATH (so `python`, `jupyter` and kernels are the venv's).
VENV_PATH = PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: help setup run where serve review nightly schedule test bench clean

help: ## list the targets
	@echo "Genesis: limit-order-book research platform"
	@echo
	@echo "  make run     set up, migrate the store, ingest the bundled sample and a simulated market, build features, run the demo pipeline,"
	@echo "               serve the dashboards (GENESIS_HOME=$(GENESIS_HOME); override with make run GENESIS_HOME=...)"
	@echo "  make test    unit/integration tests, then the notebooks under nbval (throwaway GENESIS_HOME)"
	@echo "  make bench   run every benchmarks/bench_*.py; each prints one JSON document"
	@echo "  make serve   the dashboards at http://127.0.0.1:5006 (SERVE_ARGS=\"--mode simulation --scenario spoofing\" ...)"
	@echo "  make review  the Voila surveillance review app at http://127.0.0.1:8866"
	@echo "  make nightly the nightly pipeline once; make schedule runs pipelines at their cron schedules"
	@echo "  make where   where the store, the run outputs and the notebooks are"
	@echo "  make setup   create/update the virtualenv $(VENV) (PYTHON=$(PYTHON))"
	@echo "  make clean   remove $(VENV) and caches (never GENESIS_HOME)"
	@echo "  make help    this list"

setup: $(STAMP) ## create/update the virtualenv

define CHECK_TORCH_PY
import importlib.metadata, sys
version = importlib.metadata.version("torch")
if version.split("+")[0] != "$(TORCH_PIN)":
    sys.exit(f"make: torch {version} is installed but pyproject.toml pins torch==$(TORCH_PIN)")
endef
export CHECK_TORCH_PY

# A broken venv (another machine's, or another interpreter that has gone away) is rebuilt
# from scratch; a working one is updated in place. torch comes only through pyproject's pin.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0)' 2>/dev/null || { \
		echo "make: '$(PYTHON)' not found; install Python >= 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { \
		echo "make: Genesis needs Python >= 3.11, '$(PYTHON)' is $$($(PYTHON) -V 2>&1); run make PYTHON=python3.11 ..." >&2; exit 1; }
	@if ! $(BIN)/python -c 'import sys, pip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then \
		echo "creating $(VENV) with $$($(PYTHON) -V 2>&1) ($(PYTHON))"; \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) || { \
			rm -rf $(VENV); \
			echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install the venv module" \
				"(apt-get install python3-venv, or python3.11-venv), then run make again" >&2; \
			exit 1; }; \
	fi
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	@$(BIN)/python -c "$$CHECK_TORCH_PY"
	@touch $@

# GENESIS_HOME is exported for `run` only: tests and benchmarks never see the user's store.
run: export GENESIS_HOME := $(GENESIS_HOME)
run: setup ## the platform on the bundled sample
	@echo "== 1/7 migrate the store: genesis db migrate"
	@$(VENV_PATH) $(BIN)/genesis db migrate
	@echo "== 2/7 ingest the bundled sample: genesis ingest binance-capture $(SAMPLE)"
	@$(VENV_PATH) $(BIN)/genesis ingest binance-capture $(SAMPLE)
	@echo "== 3/7 ingest a simulated market with labelled episodes: genesis ingest simulate $(SIMULATION)"
	@$(VENV_PATH) $(BIN)/genesis ingest simulate $(SIMULATION)
	@echo "== 4/7 build the sample's features into the store: genesis features build --symbol $(SAMPLE_SYMBOL)"
	@$(VENV_PATH) $(BIN)/genesis features build --symbol $(SAMPLE_SYMBOL)
	@echo "== 5/7 run the demo pipeline (notebooks 01_ingest, 02_explore, 05_surveillance, 04_backtest via papermill): genesis pipeline run demo"
	@$(VENV_PATH) $(BIN)/genesis pipeline run demo
	@echo "== 6/7 where everything is"
	@$(MAKE) --no-print-directory where
	@echo "== 7/7 serve dashboards"
	@$(MAKE) --no-print-directory serve

# Prints the effective settings (GENESIS_CLICKHOUSE_URL, if set, wins over GENESIS_HOME).
define WHERE_PY
import shlex
from genesis.config import DEFAULT_HOME, mask_password, settings
s = settings()
runs = sorted((d for d in (s.runs_dir / "demo").glob("*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
env = "" if s.home == DEFAULT_HOME.expanduser().resolve() else f"GENESIS_HOME={shlex.quote(str(s.home))} "
print(f"  GENESIS_HOME      {s.home}")
print(f"  store             {mask_password(s.clickhouse_url)}")
print(f"  latest demo run   {runs[-1] if runs else '(none yet: make run)'}")
if runs:
    print("                    (executed notebooks, HTML reports and run.json)")
print(f"  runs              {s.runs_dir}/<pipeline>/<UTC time>/")
print(f"  notebooks         {env}$(BIN)/jupyter lab notebooks/")
print(f"  SQL on the store  {env}$(BIN)/genesis sql 'SELECT count() FROM book_snapshots'")
endef
export WHERE_PY

where: export GENESIS_HOME := $(GENESIS_HOME)
where: $(STAMP) ## where the store, run outputs and notebooks are
	@$(BIN)/python -c "$$WHERE_PY"

nightly: export GENESIS_HOME := $(GENESIS_HOME)
nightly: setup ## the nightly pipeline once: ingest -> features -> surveillance -> train -> backtest
	@$(VENV_PATH) $(BIN)/genesis pipeline run nightly

schedule: export GENESIS_HOME := $(GENESIS_HOME)
schedule: setup ## run pipelines at their cron schedule (UTC) until Ctrl-C
	@$(VENV_PATH) $(BIN)/genesis pipeline schedule

review: export GENESIS_HOME := $(GENESIS_HOME)
review: setup ## the Voila surveillance review app at http://127.0.0.1:8866
	@$(VENV_PATH) $(BIN)/voila notebooks/surveillance_review.ipynb --no-browser --Voila.ip=127.0.0.1 --port=8866

# The last step of `make run`: the dashboards over the ingested store (REPLAY), until Ctrl-C.
# SERVE_ARGS="--mode live --venue usdm --symbols BTCUSDT" for Binance; "--mode simulation --scenario spoofing".
SERVE_ARGS ?=
serve: export GENESIS_HOME := $(GENESIS_HOME)
serve: $(STAMP) ## the dashboards at http://127.0.0.1:5006 (REPLAY of the store; SERVE_ARGS=... for more)
	@$(BIN)/genesis serve $(SERVE_ARGS)

test: setup ## tests/, then the notebooks under nbval; each with its own throwaway GENESIS_HOME
	@unit_home="$$(mktemp -d "$${TMPDIR:-/tmp}/genesis-test.XXXXXX")"; \
	nb_home="$$(mktemp -d "$${TMPDIR:-/tmp}/genesis-nbval.XXXXXX")"; \
	trap 'rm -rf "$$unit_home" "$$nb_home"' EXIT; \
	failed=""; \
	echo "== pytest tests/ (GENESIS_HOME=$$unit_home)"; \
	env -u GENESIS_CLICKHOUSE_URL GENESIS_HOME="$$unit_home" $(VENV_PATH) \
		$(BIN)/python -m pytest tests/ || failed="$$failed tests/"; \
	echo "== pytest --nbval-lax $(NOTEBOOK_TESTS) (GENESIS_HOME=$$nb_home)"; \
	env -u GENESIS_CLICKHOUSE_URL GENESIS_HOME="$$nb_home" $(VENV_PATH) \
		$(BIN)/python -m pytest --nbval-lax --nbval-current-env $(NOTEBOOK_TESTS) -p no:cacheprovider \
		|| failed="$$failed notebooks"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: all passed"

# hftbacktest (the backtester's peer) lives in its own benchmark-only venv, .venv-hftbacktest:
# it is never a project dependency. Without it the backtest benchmark reports Genesis alone.
bench: setup ## every benchmarks/bench_*.py (one JSON document each, on stdout), then the hftbacktest fill check
	@PYTHON=$(PYTHON) benchmarks/setup_hftbacktest.sh >/dev/null || \
		echo "make bench: no hftbacktest environment; bench_backtest.py reports Genesis alone" >&2
	@bench_home="$$(mktemp -d "$${TMPDIR:-/tmp}/genesis-bench.XXXXXX")"; \
	trap 'rm -rf "$$bench_home"' EXIT; \
	failed=""; \
	for script in benchmarks/bench_*.py benchmarks/hftbacktest_compare.py; do \
		echo "== $$script" >&2; \
		env -u GENESIS_CLICKHOUSE_URL GENESIS_HOME="$$bench_home" $(VENV_PATH) \
			$(BIN)/python "$$script" || failed="$$failed $$script"; \
	done; \
	if [ -n "$$failed" ]; then echo "make bench: FAILED:$$failed" >&2; exit 1; fi

clean: ## remove the venv and caches; GENESIS_HOME (the user's store) is left alone
	rm -rf $(VENV) .venv-hftbacktest .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./.git -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +
