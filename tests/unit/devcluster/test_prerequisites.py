"""Every make target that starts the cluster or its services installs what they use first,
through the one prerequisites step: a fresh machine once failed `make demo` because only
`make test` installed Prometheus."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("target", "runs"), [
    ("demo", "runbook_operator.devcluster.demo"),
    ("test", "pytest tests"),
    ("e2e", "pytest tests/e2e"),
    ("cluster-up", "runbook_operator.devcluster up"),
    ("bench", "bench/"),
])
def test_the_target_prepares_before_it_runs(target: str, runs: str) -> None:
    plan = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.splitlines()
    prepare = next(i for i, line in enumerate(plan)
                   if line.strip().split()[:1] == ["hack/prepare.sh"])
    assert any(runs in line for line in plan[prepare + 1:]), plan


@pytest.mark.parametrize(("target", "images"), [
    ("test", True), ("e2e", True), ("demo", False), ("cluster-up", False)])
def test_only_the_tests_wait_for_the_image_and_helm_builds(target: str, images: bool) -> None:
    plan = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.splitlines()
    (prepare,) = [line.split() for line in plan if line.startswith("hack/prepare.sh")]
    assert ("--images" in prepare) == images, prepare


def test_prepare_installs_the_packages_and_builds_the_services_the_harness_starts() -> None:
    prepare = (REPO / "hack" / "prepare.sh").read_text()
    for script in ("install-test-deps.sh", "build-control-plane.sh", "build-minio.sh",
                   "build-traefik.sh", "build-prometheus.sh", "build-istio-crds.sh",
                   "build-image.sh", "build-helm.sh"):
        assert script in prepare
    packages = (REPO / "hack" / "install-test-deps.sh").read_text()
    for package in ("postgresql-15", "mariadb-server", "prometheus", "prometheus-alertmanager",
                    "bubblewrap", "iproute2", "buildah", "mmdebstrap"):
        assert f"\n  {package} " in packages
