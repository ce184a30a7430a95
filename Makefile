# exportwatch: the project's habits. Every target installs what it needs through `make install`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.13; the venv, the tests and `sam build` use the same version.
PYTHON_VERSION := 3.13
PY := $(shell for p in python$(PYTHON_VERSION) $$HOME/.pyenv/versions/$(PYTHON_VERSION)*/bin/python$(PYTHON_VERSION) /usr/local/bin/python$(PYTHON_VERSION) /usr/bin/python$(PYTHON_VERSION); do \
        $$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# aws-sam-cli pins an older boto3, so it lives in its own venv, never in .venv; checkov too (heavy pins). For the
# same reason each has its own uv project and lock under tools/: locked with .venv, they would drag it back.
SAM_VENV := .venv-sam
SAM_PROJECT := tools/sam
TOOLS_VENV := .venv-tools
TOOLS_PROJECT := tools/security

# Every venv is built from a uv.lock by uv, pinned here and kept in a small venv of its own (the only one pip
# makes: pip cannot read the lock). A new UV_VERSION means a new stamp, so the next target reinstalls uv.
UV_VERSION := 0.13.9
UV_VENV := .venv-uv
UV_STAMP := $(UV_VENV)/.uv-$(UV_VERSION)
# uv reads no pip.conf: it resolves from PyPI, as the locks record. It runs on $(PY) and never downloads a Python
# (CI reaches package registries only).
UV := UV_PYTHON=$(PY) UV_PYTHON_DOWNLOADS=never $(UV_VENV)/bin/uv
# --locked: install exactly the lock, and fail (never re-lock) when its pyproject.toml has moved on without it.
SYNC := $(UV) sync --locked

# The layer's requirements are derived from uv.lock, never edited. boto3, and what only boto3 pulls in (botocore,
# s3transfer, python-dateutil, six), is pruned: the Lambda runtime provides it.
LAYER_REQUIREMENTS := layers/exportwatch/requirements.txt
LAYER_EXPORT := export --frozen --no-dev --no-emit-project --no-header --format requirements-txt --prune boto3

.PHONY: help install requirements test pytest unit lint security demo sandbox bench build faults clean

help:
	@echo "make install  create .venv (python$(PYTHON_VERSION)) from uv.lock: exportwatch and its dev tools"
	@echo "make demo     run everything locally: moto server + Intercom emulator, no AWS account"
	@echo "make sandbox  the demo's local stack, left running to try things against (exportwatch demo --keep)"
	@echo "make test     lint, the security checks, then the whole test suite: every tier (unit, integration against"
	@echo "              moto server and the emulator over HTTP, faults, infra)"
	@echo "make unit     the fast tier only (tests/unit: pure, sockets off, under 30 s); prints its time"
	@echo "make faults   only the fault-injection suite; rewrites docs/RELIABILITY.md"
	@echo "make lint     ruff (complexity gate C901 included), ruff format, mypy, vulture (dead code)"
	@echo "make security checkov on template.yaml, bandit on the packages"
	@echo "make bench    benchmarks (not part of the tests), writes bench/RESULTS.md (BENCH=workspaces: that section alone)"
	@echo "make build    sam build (aws-sam-cli in its own venv)"
	@echo "make requirements  after editing a pyproject.toml: update the locks, regenerate $(LAYER_REQUIREMENTS)"
	@echo "              (to take newer releases: make requirements UV_LOCK_FLAGS=--upgrade)"
	@echo "make clean    remove every venv, cache and build output the targets create"

$(UV_STAMP):
	@test -n "$(PY)" || { echo "python$(PYTHON_VERSION) not found (try: pyenv install $(PYTHON_VERSION))" >&2; exit 1; }
	@test -x $(UV_VENV)/bin/python || $(PY) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'
	@rm -f $(UV_VENV)/.uv-* && touch $@

# uv makes the venv from $(PY) when it is missing and installs exactly the locked versions, exportwatch editable.
$(STAMP): uv.lock pyproject.toml | $(UV_STAMP)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --extra dev --extra local
	@touch $(STAMP)

install: $(STAMP)

# Re-locks (minimal changes, unless UV_LOCK_FLAGS asks for --upgrade or --upgrade-package NAME), then derives the
# layer's requirements. tests/infra/test_lockfile.py runs it with UV_LOCK_FLAGS=--check and another LAYER_REQUIREMENTS.
requirements: | $(UV_STAMP)
	$(UV) lock $(UV_LOCK_FLAGS)
	$(UV) lock --project $(TOOLS_PROJECT) $(UV_LOCK_FLAGS)
	$(UV) lock --project $(SAM_PROJECT) $(UV_LOCK_FLAGS)
	@{ echo '# GENERATED from uv.lock by `make requirements`: do not edit. sam build pip-installs it into the layer:'; \
	   echo '#   uv $(LAYER_EXPORT)'; \
	   echo '# boto3 comes with the Lambda runtime, so it is pruned with what only it needs. Powertools has no'; \
	   echo '# [tracer] extra: Tracer is not used (it costs ~0.5 s of cold start).'; \
	   $(UV) $(LAYER_EXPORT); } > $(LAYER_REQUIREMENTS).tmp
	@mv $(LAYER_REQUIREMENTS).tmp $(LAYER_REQUIREMENTS)

# lint and security first, so the run closes on pytest's summary line.
test: lint security pytest

# Every tier (pyproject's testpaths): tests/unit, tests/integration, tests/faults, tests/infra.
# One worker per core (pytest-xdist); each worker starts its own moto server and emulators on free ports. A
# module's tests stay on one worker (--dist loadfile): module-scoped fixtures are built once.
pytest: install
	$(VPY) -m pytest -n auto --dist loadfile

# The fast tier: pure tests with sockets switched off (tests/unit/conftest.py). It must stay under 30 s.
unit: install
	@TIMEFORMAT='make unit: %1R s (the tier must stay under 30 s)'; time $(VPY) -m pytest tests/unit

faults: install
	EXPORTWATCH_RELIABILITY_REPORT=docs/RELIABILITY.md $(VPY) -m pytest tests/faults

# checkov and bandit, as $(TOOLS_PROJECT)/uv.lock pins them.
$(TOOLS_VENV)/.installed: $(TOOLS_PROJECT)/uv.lock $(TOOLS_PROJECT)/pyproject.toml | $(UV_STAMP)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(TOOLS_VENV) $(SYNC) --project $(TOOLS_PROJECT)
	@touch $@

# checkov: every failed check must be skipped in template.yaml with a written reason. bandit: the package.
security: $(TOOLS_VENV)/.installed
	$(TOOLS_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(TOOLS_VENV)/bin/bandit -q -c pyproject.toml -r layers/exportwatch/exportwatch local/exportwatch_local functions

# ruff's rules include the complexity gate (C901; ceilings in pyproject.toml and local/ruff.toml); vulture reads its
# paths, confidence and whitelist from pyproject.toml. .pre-commit-config.yaml runs the same commands.
lint: install
	$(VENV)/bin/ruff check layers local functions tests bench
	$(VENV)/bin/ruff format --check layers local functions tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/vulture

demo: install
	$(VENV)/bin/exportwatch demo

sandbox: install
	$(VENV)/bin/exportwatch demo --keep

# The bench extra on top of .venv's (a later `make install` after a lock change drops it again).
bench: install
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) --extra dev --extra local --extra bench
	$(VPY) bench/run.py $(if $(BENCH),--only $(BENCH))

# aws-sam-cli, as $(SAM_PROJECT)/uv.lock pins it. sam build pip-installs $(LAYER_REQUIREMENTS) with the
# python$(PYTHON_VERSION) on PATH.
$(SAM_VENV)/.installed: $(SAM_PROJECT)/uv.lock $(SAM_PROJECT)/pyproject.toml | $(UV_STAMP)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(SAM_VENV) $(SYNC) --project $(SAM_PROJECT)
	@touch $@

build: $(SAM_VENV)/.installed
	PATH="$(dir $(PY)):$$PATH" $(SAM_VENV)/bin/sam build

# Everything the targets create in the checkout. The per-user download caches (~/.cache/pip, ~/.cache/uv) are
# shared with other projects and stay: `uv cache clean` and `pip cache purge` empty them.
clean:
	rm -rf $(VENV) $(SAM_VENV) $(TOOLS_VENV) $(UV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis \
	       bench/out build dist $(LAYER_REQUIREMENTS).tmp
	find . -path ./.git -prune -o -type d \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
