# lora-edu: the two commands you need are `make lab` and `make test`.
# Everything runs inside .venv, created on first use with the tested versions in constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
APP_PORT ?= 8866
BENCH_ARGS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))

.PHONY: help venv lab app slides test test-fast test-browser test-full execute figures fallback-model bench lint check-env clean

help:
	@echo "make lab        create .venv if missing, install, open JupyterLab on notebooks/ (localhost, token on)"
	@echo "make app        classroom page: every slider explorer, no code, on http://127.0.0.1:$(APP_PORT)/ (voila, offline)"
	@echo "make slides     lecture slides build/slides/*.slides.html (reveal.js, open offline from disk)"
	@echo "make test       create/update .venv, run unit tests, every notebook (nbval) and the browser tests"
	@echo "make test-fast  unit tests only (no notebooks, no browser)"
	@echo "make test-browser  only the real-browser tests (headless /usr/bin/chromium)"
	@echo "make test-full  full-size dry run: notebook 06 on a random gpt2-size model (LORA_EDU_MODEL=DIR, slow)"
	@echo "make execute    re-execute every notebook in place, fresh kernel, top to bottom"
	@echo "make figures    regenerate figures/ from code (lora_edu/tools/figures.py)"
	@echo "make fallback-model  re-pretrain the offline GPT-2 shipped in lora_edu/assets (~5 min on 2 cores)"
	@echo "make bench      performance ratios measured side by side (figures/bench.json, bench.png; ~8 min;"
	@echo "                BENCH_ARGS=--quick for the seconds-long smoke run)"
	@echo "make lint       ruff"
	@echo "make check-env  print OK/FAIL for every requirement"

# Torch goes first and pinned (its one pin is in constraints.txt): an unpinned torch resolves to a
# multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

lab: $(STAMP)
	$(BIN)/python -m lora_edu.check_env || true
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) \
		--ServerApp.open_browser=True $(if $(filter 0,$(shell id -u)),--allow-root,)

test: $(STAMP)
	$(BIN)/ruff check lora_edu tests
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not browser"

test-browser: $(STAMP)
	$(BIN)/python -m pytest -q tests -m browser

test-full: $(STAMP)
	$(BIN)/python -m pytest -q -s tests/test_fullsize.py -m full_size

app: $(STAMP)
	$(BIN)/python -m lora_edu.tools.app --port $(APP_PORT)

slides: $(STAMP)
	$(BIN)/python -m lora_edu.tools.slides

execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name=python3 \
		--ExecutePreprocessor.coalesce_streams=True $(NOTEBOOKS)
	$(BIN)/python -m lora_edu.tools.slides --annotate $(NOTEBOOKS)

figures: $(STAMP)
	$(BIN)/python -m lora_edu.tools.figures

fallback-model: $(STAMP)
	$(BIN)/python -m lora_edu.tools.fallback_model

bench: $(STAMP)
	$(BIN)/python -m lora_edu.tools.bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check lora_edu tests

check-env: $(STAMP)
	$(BIN)/python -m lora_edu.check_env

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache build/app build/slides test-artifacts
