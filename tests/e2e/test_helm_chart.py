"""The Helm chart (charts/runbook-operator) beside the kustomize base: with default values it
renders the objects ``kubectl kustomize manifests/`` does, and ``helm install`` (helm built from
its Go module by hack/build-helm.sh) into the devcluster brings the operator, from the built
image, to Ready and reconciling.

What the comparison leaves out, and why:
- the labels helm adds to every object and pod template (:data:`HELM_LABELS`): release
  bookkeeping, not behaviour;
- manifests/' Namespace: a chart cannot create the namespace its release lives in (helm writes
  the release record there first); ``helm install --create-namespace`` or the user makes it;
And one normalisation: whitespace runs in CEL expressions (:data:`CEL_KEYS`) count as one
space, since kustomize re-folds a ``>-`` scalar's more-indented lines with doubled newlines
(CEL ignores whitespace).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from runbook_operator.devcluster.cluster import LocalCluster, repo_root
from runbook_operator.devcluster.waiting import wait_for
from tests.support.images import (
    HEALTH_PORT,
    METRICS_PORT,
    OPERATOR_NAMESPACE,
    assert_reconciles,
    built_images,
    fresh_namespace,
    helm_binary,
    image_reference,
    operator_pod,
)

CHART = repo_root() / "charts" / "runbook-operator"
HELM_LABELS = frozenset({"app.kubernetes.io/instance", "app.kubernetes.io/version",
                         "app.kubernetes.io/managed-by", "helm.sh/chart"})
CEL_KEYS = frozenset({"expression", "messageExpression"})
Key = tuple[str, str, str, str]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """helm with its config, cache and data in a directory of the test's own."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CONFIG", "CACHE", "DATA")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield [str(helm_binary())]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _objects(text: str) -> dict[Key, dict[str, Any]]:
    objects = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc["metadata"]
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in objects, f"{key} twice"
        objects[key] = doc
    return objects


def _cel_spaces_collapsed(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _cel_spaces_collapsed(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_cel_spaces_collapsed(v) for v in value]
    if isinstance(value, str) and key in CEL_KEYS:
        return re.sub(r"\s+", " ", value)
    return value


def _without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata")):
        if meta and "labels" in meta:
            meta["labels"] = {k: v for k, v in meta["labels"].items() if k not in HELM_LABELS}
    return obj


def _render(helm: list[str], *values: str) -> dict[Key, dict[str, Any]]:
    out = subprocess.run(
        [*helm, "template", "runbook-operator", str(CHART), "--namespace", OPERATOR_NAMESPACE,
         "--include-crds", *values], capture_output=True, text=True, check=True).stdout
    return {k: _without_helm_labels(v) for k, v in _objects(out).items()}


def test_the_chart_with_default_values_installs_what_manifests_install(
    helm: list[str],
) -> None:
    kustomized = _objects(subprocess.run(
        ["kubectl", "kustomize", str(repo_root() / "manifests")], capture_output=True,
        text=True, check=True).stdout)
    namespace = kustomized.pop(("v1", "Namespace", "", OPERATOR_NAMESPACE))
    assert namespace["metadata"]["name"] == OPERATOR_NAMESPACE
    charted = _render(helm)
    assert sorted(charted) == sorted(kustomized)
    for key, obj in kustomized.items():
        assert _cel_spaces_collapsed(charted[key]) == _cel_spaces_collapsed(obj), key


def test_the_values_set_image_replicas_namespaces_scope_and_monitoring(
    helm: list[str],
) -> None:
    charted = _render(helm, "--set", "image.repository=registry.example/runbook-operator",
                      "--set", "image.tag=1.2.3", "--set", "replicaCount=2",
                      "--set", "watchNamespaces={shop,billing}", "--set", "rbac.scope=namespace",
                      "--set", "metrics.serviceMonitor.enabled=true",
                      "--set", "resources.limits.memory=256Mi")
    deployment = charted[("apps/v1", "Deployment", OPERATOR_NAMESPACE, "runbook-operator")]
    spec = deployment["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert spec["replicas"] == 2
    assert container["image"] == "registry.example/runbook-operator:1.2.3"
    assert container["args"][-2:] == ["--namespace=shop", "--namespace=billing"]
    assert container["resources"]["limits"] == {"memory": "256Mi"}
    cluster_role = charted[("rbac.authorization.k8s.io/v1", "ClusterRole", "",
                            "runbook-operator")]
    assert {(g, r) for rule in cluster_role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"]} == {("apiextensions.k8s.io", "customresourcedefinitions")}
    for watched in ("shop", "billing"):
        role = charted[("rbac.authorization.k8s.io/v1", "Role", watched, "runbook-operator")]
        assert {"batch", "runbook.dev", ""} <= {g for r in role["rules"] for g in r["apiGroups"]}
        binding = charted[("rbac.authorization.k8s.io/v1", "RoleBinding", watched,
                           "runbook-operator")]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "runbook-operator",
                                        "namespace": OPERATOR_NAMESPACE}]
    monitor = charted[("monitoring.coreos.com/v1", "ServiceMonitor", OPERATOR_NAMESPACE,
                       "runbook-operator")]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    without_service = subprocess.run(
        [*helm, "template", "x", str(CHART), "--set", "metrics.service.enabled=false",
         "--set", "metrics.serviceMonitor.enabled=true"], capture_output=True, text=True)
    assert without_service.returncode != 0
    assert "metrics.serviceMonitor needs metrics.service.enabled" in without_service.stderr


def _install(helm: list[str], cluster: LocalCluster, *values: str) -> None:
    """``helm install`` of the chart, its images the built ones."""
    images = built_images()
    operator_tag = image_reference(images, "operator").rsplit(":", 1)[1]
    runner_tag = image_reference(images, "runner").rsplit(":", 1)[1]
    subprocess.run(
        [*helm, "install", "runbook-operator", str(CHART),
         "--kubeconfig", str(cluster.admin_kubeconfig), "--namespace", OPERATOR_NAMESPACE,
         "--create-namespace", "--set", f"image.tag={operator_tag}",
         "--set", f"runnerImage.tag={runner_tag}",
         # One replica on ports of its own: the runtime runs every pod in one network
         # namespace (see overlay()).
         "--set", "replicaCount=1", "--set", f"healthPort={HEALTH_PORT}",
         "--set", f"metrics.port={METRICS_PORT}", *values], check=True, capture_output=True)


def test_helm_install_brings_the_operator_to_ready_and_it_reconciles(
    helm: list[str], tmp_path_factory: pytest.TempPathFactory,
) -> None:
    images = built_images()
    operator_tag = image_reference(images, "operator").rsplit(":", 1)[1]
    with LocalCluster(workdir=tmp_path_factory.mktemp("helm-cluster"),
                      built_images=images) as cluster:
        _install(helm, cluster)
        kubeconfig = str(cluster.admin_kubeconfig)
        api = config.new_client_from_config(config_file=kubeconfig)
        pod = operator_pod(api)
        assert pod["spec"]["containers"][0]["image"] == f"runbook-operator:{operator_tag}"
        releases = subprocess.run(
            [*helm, "list", "--kubeconfig", kubeconfig, "-n", OPERATOR_NAMESPACE, "-o", "yaml"],
            capture_output=True, text=True, check=True).stdout
        assert [r["status"] for r in yaml.safe_load(releases)] == ["deployed"]
        with fresh_namespace(api, "helm") as namespace:
            assert_reconciles(api, namespace)


def test_a_namespace_scoped_install_reconciles_in_its_namespace_with_roles_only(
    helm: list[str], tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with LocalCluster(workdir=tmp_path_factory.mktemp("helm-ns-cluster"),
                      built_images=built_images()) as cluster:
        api = config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
        with fresh_namespace(api, "watched") as namespace:
            _install(helm, cluster, "--set", "rbac.scope=namespace",
                     "--set", f"watchNamespaces={{{namespace}}}")
            pod = operator_pod(api)
            # It leads: the Lease in its own namespace names it.
            wait_for(lambda: client.CoordinationV1Api(api).read_namespaced_lease(
                "runbook-operator", OPERATOR_NAMESPACE).spec.holder_identity
                     == pod["metadata"]["name"], "the operator holding its Lease")
            rbac = client.RbacAuthorizationV1Api(api)
            assert [b.metadata.name for b in rbac.list_namespaced_role_binding(namespace).items
                    if b.metadata.name == "runbook-operator"] == ["runbook-operator"]
            review = client.AuthorizationV1Api(api).create_subject_access_review(
                client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                    user=f"system:serviceaccount:{OPERATOR_NAMESPACE}:runbook-operator",
                    resource_attributes=client.V1ResourceAttributes(
                        group="batch", resource="cronjobs", verb="create",
                        namespace="default"))))
            assert not review.status.allowed  # nothing outside the watched namespace
            assert_reconciles(api, namespace)
