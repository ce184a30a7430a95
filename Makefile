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
# aws-sam-cli pins an older boto3, so it lives in its own venv, never in .venv; checkov too (heavy pins).
SAM_VENV := .venv-sam
TOOLS_VENV := .venv-tools

.PHONY: help install test pytest lint security demo bench build faults clean

help:
	@echo "make install  create .venv (python$(PYTHON_VERSION)) with exportwatch and its dev tools"
	@echo "make demo     run everything locally: moto server + Intercom emulator, no AWS account"
	@echo "make test     lint, the security checks, then the test suite (pytest against moto server and the"
	@echo "              emulator over HTTP, the fault suite included)"
	@echo "make faults   only the fault-injection suite; rewrites docs/RELIABILITY.md"
	@echo "make lint     ruff + mypy"
	@echo "make security checkov on template.yaml, bandit on the package"
	@echo "make bench    benchmarks (not part of the tests), writes bench/RESULTS.md"
	@echo "make build    sam build (aws-sam-cli in its own venv)"

$(STAMP): pyproject.toml layers/exportwatch/requirements.txt
	@test -n "$(PY)" || { echo "python$(PYTHON_VERSION) not found (try: pyenv install $(PYTHON_VERSION))" >&2; exit 1; }
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[dev,local]'
	@touch $(STAMP)

install: $(STAMP)

# lint and security first, so the run closes on pytest's summary line.
test: lint security pytest

pytest: install
	$(VPY) -m pytest

faults: install
	EXPORTWATCH_RELIABILITY_REPORT=docs/RELIABILITY.md $(VPY) -m pytest tests/faults

$(TOOLS_VENV)/.installed:
	@test -n "$(PY)" || { echo "python$(PYTHON_VERSION) not found" >&2; exit 1; }
	@test -x $(TOOLS_VENV)/bin/python || $(PY) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet 'checkov>=3.2,<4' 'bandit>=1.8,<2'
	@touch $@

# checkov: every failed check must be skipped in template.yaml with a written reason. bandit: the package.
security: $(TOOLS_VENV)/.installed
	$(TOOLS_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(TOOLS_VENV)/bin/bandit -q -c pyproject.toml -r layers/exportwatch/exportwatch functions

lint: install
	$(VENV)/bin/ruff check layers functions tests bench
	$(VENV)/bin/ruff format --check layers functions tests bench
	$(VENV)/bin/mypy

demo: install
	$(VENV)/bin/exportwatch demo

bench: install
	$(VPY) -m pip install --quiet -e '.[dev,local,bench]'
	$(VPY) bench/run.py

$(SAM_VENV)/bin/sam:
	@test -n "$(PY)" || { echo "python$(PYTHON_VERSION) not found" >&2; exit 1; }
	$(PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

build: $(SAM_VENV)/bin/sam
	PATH="$(dir $(PY)):$$PATH" $(SAM_VENV)/bin/sam build

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
