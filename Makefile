# The two commands that work on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .cluster

.PHONY: help install prerequisites crds test unit e2e demo cluster-up cluster-down bench clean

help:
	@echo "make demo          local cluster + gateway + demo app under traffic + operator + examples,"
	@echo "                   status shown (Ctrl-C stops); in a network namespace of its own"
	@echo "make test          unit and end-to-end tests against a real local control plane"
	@echo "make unit | e2e    one half of the tests"
	@echo "make crds          regenerate crds/ from the pydantic models"
	@echo "make cluster-up    start the local control plane and gateway in the background (in its own"
	@echo "                   network namespace, relayed to this shell; cluster-down stops it)"
	@echo "make prerequisites install and build what the targets above use (cached; demo and test run it)"
	@echo "make bench         backup runner, AlertRule, CanaryRollout and load benchmarks (ratio tables)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Everything a target that starts the cluster or its services uses: Debian packages, the
# control plane, Traefik, Prometheus and MinIO (built from Go, cached). The cluster runs in a
# network namespace with no route out, so nothing can be fetched once it runs. Every such target depends on it, so none can
# lack what another installs (a unit test checks `make -n` of each).
prerequisites: install
	hack/prepare.sh $(PREPARE_ARGS)

# The tests also install the operator from its built images and the Helm chart.
test e2e: PREPARE_ARGS := --images

crds: install
	$(PY) -m runbook_operator.api.crdgen

test: prerequisites
	$(PY) -m pytest tests --durations=25

unit: install
	$(PY) -m pytest tests/unit

e2e: prerequisites
	$(PY) -m pytest tests/e2e

# DEMO_ARGS=--once stops after showing the status (as the e2e test runs it).
demo: prerequisites
	$(PY) -m runbook_operator.devcluster.demo $(DEMO_ARGS)

cluster-up: prerequisites
	$(PY) -m runbook_operator.devcluster up --state-dir $(STATE_DIR)

cluster-down: install
	$(PY) -m runbook_operator.devcluster down --state-dir $(STATE_DIR)

# Benchmarks print ratio tables against baselines measured in the same run (see bench/README.md).
bench: prerequisites
	$(PY) bench/backup_runner.py
	$(PY) bench/alert_rules.py
	$(PY) bench/canary.py
	$(PY) bench/load.py

clean:
	rm -rf $(VENV) $(STATE_DIR) .pytest_cache .hypothesis
