# The two commands that work on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .cluster

.PHONY: help install crds test unit e2e demo cluster-up cluster-down control-plane test-services bench clean

help:
	@echo "make demo          local control plane + operator + examples, status shown (Ctrl-C stops)"
	@echo "make test          unit and end-to-end tests against a real local control plane"
	@echo "make unit | e2e    one half of the tests"
	@echo "make crds          regenerate crds/ from the pydantic models"
	@echo "make cluster-up    start the local control plane in the background (cluster-down stops it)"
	@echo "make bench         backup runner and AlertRule evaluation benchmarks (ratio tables)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

control-plane:
	hack/build-control-plane.sh >/dev/null

# Real services for the backup tests: PostgreSQL and MariaDB from Debian, MinIO from Go.
test-services:
	hack/install-test-deps.sh
	hack/build-minio.sh >/dev/null

crds: install
	$(PY) -m runbook_operator.api.crdgen

test: install control-plane test-services
	$(PY) -m pytest tests

unit: install
	$(PY) -m pytest tests/unit

e2e: install control-plane test-services
	$(PY) -m pytest tests/e2e

demo: install control-plane
	$(PY) -m runbook_operator.devcluster.demo

cluster-up: install control-plane
	$(PY) -m runbook_operator.devcluster up --state-dir $(STATE_DIR)

cluster-down: install
	$(PY) -m runbook_operator.devcluster down --state-dir $(STATE_DIR)

# Benchmarks print ratio tables against baselines measured in the same run (see bench/README.md).
bench: install control-plane test-services
	$(PY) bench/backup_runner.py
	$(PY) bench/alert_rules.py

clean:
	rm -rf $(VENV) $(STATE_DIR) .pytest_cache .hypothesis
