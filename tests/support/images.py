"""The project's built images and helm, for the tests that install the operator as users do.

Both are built by hack/ scripts (cached per user) that download, so they run before the test
session enters its network namespace, which has no way out: :func:`builds_for` names the
scripts the selected tests need, and later calls print the cached result at once.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from runbook_operator.devcluster.cluster import repo_root, run_build
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import policy_body
from tests.support.kube import BACKUP_POLICIES, condition, read_cronjob

OPERATOR_NAMESPACE = "runbook-system"
OPERATOR_ACCOUNT = "runbook-operator"
OPERATOR_SELECTOR = "app.kubernetes.io/name=runbook-operator"
#: The operator pod's health and metrics ports in these tests. The runtime runs every pod of
#: every cluster of a test session in one network namespace, where the session's gateway and
#: demo-app pods already listen on 8080 (the operator's default health port binds all
#: addresses, so it would find it taken and the pod never become Ready).
HEALTH_PORT, METRICS_PORT = 18080, 19090
#: Test files and the hack/ build scripts they need beyond the cluster's own.
BUILDS = {
    "tests/e2e/test_operator_image.py": ("build-image.sh",),
    "tests/e2e/test_helm_chart.py": ("build-image.sh", "build-helm.sh"),
}


def builds_for(args: Sequence[str]) -> list[Path]:
    """The build scripts the test files selected by pytest's `args` need (a directory selects
    every file under it)."""
    root = repo_root()
    scripts: dict[Path, None] = {}
    for arg in args:
        selected = Path(arg.split("::", 1)[0]).resolve()
        for test_file, needed in BUILDS.items():
            path = (root / test_file).resolve()
            if path == selected or selected in path.parents:
                scripts.update({root / "hack" / name: None for name in needed})
    return list(scripts)


def built_images() -> Path:
    """hack/build-image.sh's export: images.json, each image's rootfs and config."""
    return run_build("build-image.sh", ("images.json", "runtime-setpriv"))


def image_reference(images: Path, target: str) -> str:
    """The reference the build gave `target` (operator, runner), e.g.
    ``runbook-operator:0.1.0-<digest>``."""
    return json.loads((images / "images.json").read_text())[target]["reference"]


_UNITS_MB = {"kB": 1e-3, "MB": 1.0, "GB": 1e3}


def image_size_mb(images: Path, target: str) -> float:
    """The size the build reported for `target` (buildah's ``340 MB``), in MB."""
    value, unit = json.loads((images / "images.json").read_text())[target]["size"].split()
    return float(value) * _UNITS_MB[unit]


def helm_binary() -> Path:
    """helm built from its Go module by hack/build-helm.sh."""
    return run_build("build-helm.sh")


def overlay(directory: Path, images: Path) -> Path:
    """A kustomization over manifests/ that points the images at the built ones, as a user's
    overlay (or ``kustomize edit set image``) does, and, for the runtime's one network namespace
    shared by every pod (and by the test session's own operator), listens on ports of its own
    (:data:`HEALTH_PORT`) at each pod's own IP (``--bind-address``), so the manifests' two
    replicas run side by side."""
    operator = image_reference(images, "operator")
    runner = image_reference(images, "runner")
    manifests = os.path.relpath(repo_root() / "manifests", directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
          - {manifests}
        images:
          - name: runbook-operator
            newTag: "{operator.rsplit(':', 1)[1]}"
        patches:
          - patch: |-
              apiVersion: apps/v1
              kind: Deployment
              metadata: {{name: runbook-operator, namespace: {OPERATOR_NAMESPACE}}}
              spec:
                template:
                  spec:
                    containers:
                      - name: operator
                        env:
                          - {{name: RUNBOOK_RUNNER_IMAGE, value: "{runner}"}}
                          - name: POD_IP
                            valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
          - target: {{kind: Deployment, name: runbook-operator}}
            patch: |-
              - op: replace
                path: /spec/template/spec/containers/0/args
                value: [run, --json-logs, --health-port={HEALTH_PORT},
                        --metrics-port={METRICS_PORT}, "--bind-address=$(POD_IP)"]
              - op: replace
                path: /spec/template/spec/containers/0/ports
                value:
                  - {{name: health, containerPort: {HEALTH_PORT}}}
                  - {{name: metrics, containerPort: {METRICS_PORT}}}
        """))
    return directory


def operator_pods(api: client.ApiClient, count: int = 1, namespace: str = OPERATOR_NAMESPACE,
                  timeout: float = 180) -> list[dict[str, Any]]:
    """The operator's pods that are Running and Ready, once there are at least `count`."""
    core = client.CoreV1Api(api)

    def ready() -> list[dict[str, Any]] | None:
        pods = [api.sanitize_for_serialization(pod) for pod in core.list_namespaced_pod(
            namespace, label_selector=OPERATOR_SELECTOR).items
            if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
            and {c.type: c.status for c in pod.status.conditions or []}.get("Ready") == "True"]
        return pods if len(pods) >= count else None

    return wait_for(ready, f"{count} operator pod(s) Running and Ready", timeout=timeout)


def operator_pod(api: client.ApiClient, namespace: str = OPERATOR_NAMESPACE,
                 timeout: float = 180) -> dict[str, Any]:
    """An operator pod once it is Running and Ready."""
    return operator_pods(api, 1, namespace, timeout)[0]


@dataclasses.dataclass(frozen=True)
class PodMetrics:
    """An operator pod's own /metrics, at its IP (see :func:`overlay`)."""

    pod: dict[str, Any]

    @property
    def name(self) -> str:
        return self.pod["metadata"]["name"]

    def metrics(self) -> str:
        url = f"http://{self.pod['status']['podIP']}:{METRICS_PORT}/metrics"
        return httpx.get(url, timeout=10).raise_for_status().text


def token_subject(token: str) -> str:
    """The ``sub`` claim of a ServiceAccount token (a JWT), unverified."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


@contextlib.contextmanager
def fresh_namespace(api: client.ApiClient, prefix: str) -> Iterator[str]:
    """A new namespace whose ``default`` ServiceAccount exists, deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: core.list_namespaced_service_account(name).items,
             f"default ServiceAccount in {name}")
    try:
        yield name
    finally:
        core.delete_namespace(name)


def assert_reconciles(api: client.ApiClient, namespace: str) -> None:
    """The installed operator turns a BackupPolicy into its CronJob and marks it Ready."""
    BACKUP_POLICIES.create(api, namespace, policy_body("nightly"))
    policy = BACKUP_POLICIES.wait_ready(api, namespace, "nightly", timeout=120)
    assert condition(policy, "Stalled")["status"] == "False"
    cronjob = read_cronjob(api, namespace, policy["status"]["cronJobName"])
    assert cronjob is not None
    assert "runbook-operator" in {m.manager for m in cronjob.metadata.managed_fields}
