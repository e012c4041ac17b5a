"""The roles people get, from manifests/user-roles.yaml: runbook-view, -edit and -admin are
aggregated into Kubernetes' built-in view, edit and admin, so a RoleBinding of a built-in role
is all a person needs. Each person is a ServiceAccount acting under its own identity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.cluster import LocalCluster
from tests.support.builders import alert_rule, escalation_policy, incident, policy_body
from tests.support.kube import (
    ALERT_RULES,
    BACKUP_POLICIES,
    CHANNELS,
    ESCALATION_POLICIES,
    INCIDENTS,
    Kind,
    Person,
    bind_cluster_role,
    incidents,
    service_account,
    wait_allowed,
)

#: A valid object of every kind that names no Secret and no Deployment.
BODIES: dict[str, tuple[Kind, dict[str, Any]]] = {
    "backuppolicies": (BACKUP_POLICIES, policy_body("nightly")),
    "alertrules": (ALERT_RULES, alert_rule("errors", "http://prometheus.example:9090")),
    "notificationchannels": (CHANNELS, {
        "apiVersion": API_VERSION, "kind": "NotificationChannel", "metadata": {"name": "hook"},
        "spec": {"webhook": {"url": "http://hooks.example/runbook"}}}),
    "escalationpolicies": (ESCALATION_POLICIES, escalation_policy(
        "ladder", [{"after": "0m", "channels": ["hook"]}])),
    "incidents": (INCIDENTS, incident("checkout-down")),
}


def forbidden(call: Callable[[], Any]) -> None:
    """The request was refused by RBAC (not by an admission policy)."""
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status == 403, raised.value.body
    assert "ValidatingAdmissionPolicy" not in raised.value.body


@pytest.fixture
def people(cluster: LocalCluster, api: client.ApiClient, namespace: str,
           tmp_path: Path) -> dict[str, Person]:
    """One person per built-in role, bound to it in the test namespace."""
    found = {}
    for role in ("view", "edit", "admin"):
        found[role] = service_account(cluster, api, namespace, role, tmp_path)
        bind_cluster_role(api, namespace, role, [role])
    for role in found:
        wait_allowed(found[role].api, namespace, "list", "incidents", "runbook.dev")
    return found


def test_view_reads_every_runbook_resource_and_changes_none(
    api: client.ApiClient, namespace: str, people: dict[str, Person],
) -> None:
    viewer = people["view"]
    for plural, (kind, body) in BODIES.items():
        kind.create(api, namespace, body)
        name = body["metadata"]["name"]
        assert kind.get(viewer.api, namespace, name)["metadata"]["name"] == name
        forbidden(lambda: kind.create(viewer.api, namespace, {
            **body, "metadata": {"name": f"{name}-too"}}))
        forbidden(lambda: kind.patch(viewer.api, namespace, name,
                                     {"metadata": {"labels": {"by": "viewer"}}}))
        forbidden(lambda: kind.delete(viewer.api, namespace, name))


def test_edit_declares_runbooks_and_works_incidents_but_keeps_the_record(
    api: client.ApiClient, namespace: str, people: dict[str, Person],
) -> None:
    editor = people["edit"]
    for plural, (kind, body) in BODIES.items():
        kind.create(editor.api, namespace, body)
        name = body["metadata"]["name"]
        kind.patch(editor.api, namespace, name, {"metadata": {"labels": {"team": "shop"}}})
        forbidden(lambda: client.CustomObjectsApi(editor.api)
                  .patch_namespaced_custom_object_status(
                      "runbook.dev", "v1alpha1", namespace, plural, name,
                      {"status": {"observedGeneration": 1}}))
        if kind is INCIDENTS:
            forbidden(lambda: kind.delete(editor.api, namespace, name))
        else:
            kind.delete(editor.api, namespace, name)


def test_admin_also_clears_incidents(
    api: client.ApiClient, namespace: str, people: dict[str, Person],
) -> None:
    admin = people["admin"]
    INCIDENTS.create(admin.api, namespace, incident("old"))
    forbidden(lambda: client.CustomObjectsApi(admin.api).patch_namespaced_custom_object_status(
        "runbook.dev", "v1alpha1", namespace, INCIDENTS.plural, "old",
        {"status": {"observedGeneration": 1}}))
    INCIDENTS.delete(admin.api, namespace, "old")
    assert "old" not in [i["metadata"]["name"] for i in incidents(api, namespace)]
