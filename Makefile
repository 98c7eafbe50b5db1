# The README names these targets: `make run` (set up + start on embedded defaults) and
# `make test` (set up + start what the tests need + run them).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSDEPS := ffmpeg espeak-ng sox chromium jq curl
PYTEST_ARGS ?=
# `ecg up` options for `make run`, e.g. UP_ARGS="--backend-port 9000 --ml-port 9080"
UP_ARGS ?=

.PHONY: install sysdeps run test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	# torch first and pinned: resolving it through the extras could pick a CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[ml,hf,dev]"
	touch $(STAMP)

install: $(STAMP)

# System tools the tests use: ffmpeg/espeak-ng/sox make test media, chromium runs the web test,
# curl and jq run the README's curl walk-through.
sysdeps:
	@missing=""; for t in $(SYSDEPS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSDEPS) >/dev/null; \
	fi

run: install
	$(BIN)/ecg up $(UP_ARGS)

test: install sysdeps
	$(BIN)/python -m tests.support.services
	$(BIN)/pytest $(PYTEST_ARGS)

PY_DIRS := app ml_server ecg_protocol ecg_serving ecg_cli tests bench

lint: install
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy app ml_server ecg_protocol ecg_serving ecg_cli

bench: install
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
