"""The namespace-scoped install (manifests-namespaced/): the operator runs as that overlay's
ServiceAccount with its Role in one namespace and `--namespace` set to it. It reconciles
there, leaves a runbook in another namespace untouched, and the API server would refuse it
there anyway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from tests.support.builders import policy_body
from tests.support.kube import BACKUP_POLICIES, CHANNELS, allowed, read_cronjob

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "runbook-operator"
#: The operator's identity in the overlay: the objects installed into the test's namespace.
IDENTITY = {"ServiceAccount", "Role", "RoleBinding"}


def identity_in(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """The overlay's ServiceAccount, Roles and RoleBindings (its rights and the Lease's) moved
    to `namespace`, as a `namespace:` kustomization would."""
    rendered = cluster.kubectl("kustomize", str(REPO / "manifests-namespaced")).stdout
    chosen = []
    for obj in yaml.safe_load_all(rendered):
        if obj["kind"] in IDENTITY:
            obj["metadata"]["namespace"] = namespace
            for subject in obj.get("subjects", []):
                subject["namespace"] = namespace
            chosen.append(obj)
    assert {o["kind"] for o in chosen} == IDENTITY
    return chosen


@pytest.fixture
def elsewhere(api: client.ApiClient) -> Iterator[str]:
    """A second namespace, which the namespaced operator does not watch."""
    name = f"elsewhere-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def namespaced_operator(cluster: LocalCluster, namespace: str, operator: LocalOperator,
                        tmp_path: Path) -> Iterator[LocalOperator]:
    """The operator as the overlay runs it, alone: the session's cluster-wide one is stopped
    meanwhile (it would reconcile every namespace) and started again afterwards."""
    objects = identity_in(cluster, namespace)
    cluster.kubectl("apply", "--server-side", "-f", "-",
                    input="\n---\n".join(json.dumps(o) for o in objects))
    kubeconfig = cluster.service_account_kubeconfig(namespace, ACCOUNT,
                                                    tmp_path / "kubeconfig")
    was_running = operator.alive()
    operator.stop()
    process = LocalOperator(kubeconfig, tmp_path / "namespaced-operator.log",
                            extra_args=(f"--namespace={namespace}",
                                        f"--lease-namespace={namespace}"))
    try:
        process.start()
        yield process
    finally:
        process.stop()
        if was_running:
            operator.start()


def channel(name: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "NotificationChannel", "metadata": {"name": name},
            "spec": {"webhook": {"url": "http://hooks.example/runbook"}}}


def test_it_reconciles_its_own_namespace_and_neither_acts_nor_may_act_in_another(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, elsewhere: str,
    namespaced_operator: LocalOperator, tmp_path: Path,
) -> None:
    for where in (elsewhere, namespace):
        CHANNELS.create(api, where, channel("oncall"))
        BACKUP_POLICIES.create(api, where, policy_body("nightly"))
    CHANNELS.wait_ready(api, namespace, "oncall", timeout=120)
    BACKUP_POLICIES.wait_ready(api, namespace, "nightly", timeout=120)
    assert read_cronjob(api, namespace, "nightly-backup") is not None

    assert "status" not in CHANNELS.get(api, elsewhere, "oncall")
    assert "status" not in BACKUP_POLICIES.get(api, elsewhere, "nightly")
    assert read_cronjob(api, elsewhere, "nightly-backup") is None

    own = config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))
    rights = [("list", "notificationchannels", "runbook.dev", ""),
              ("patch", "backuppolicies", "runbook.dev", "status"),
              ("create", "cronjobs", "batch", ""), ("get", "secrets", "", ""),
              ("patch", "deployments", "apps", "")]
    for verb, resource, group, subresource in rights:
        assert allowed(own, namespace, verb, resource, group, subresource=subresource)
        assert not allowed(own, elsewhere, verb, resource, group, subresource=subresource)
    log = namespaced_operator.log_text()
    assert "Forbidden" not in log and "Not enough permissions" not in log
