"""No confused deputy, against the real API server with manifests/author-rights-admission.yaml:
a ServiceAccount bound to runbook-edit (it may declare runbooks, nothing else) cannot make the
operator read a Secret, run pods as a ServiceAccount, or scale or restart a Deployment that it
may not touch itself; granted exactly that right, the same spec is accepted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.cluster import LocalCluster
from tests.support.builders import alert_rule, policy_body, runner_policy
from tests.support.canary import ROLLOUTS, rollout
from tests.support.kube import (
    ALERT_RULES,
    BACKUP_POLICIES,
    CHANNELS,
    Kind,
    Person,
    bind_cluster_role,
    create_secret,
    grant,
    service_account,
    wait_allowed,
)

POLICY = "ValidatingAdmissionPolicy 'runbook-author-rights'"
PROMETHEUS = "http://prometheus.example:9090"
#: Where a spec would have the operator send what a Secret holds.
ELSEWHERE = "http://collector.example/v2/enqueue"


def refused(call: Callable[[], Any]) -> str:
    """The admission policy's message for a request it denied."""
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status == 403, raised.value.body
    message = json.loads(raised.value.body)["message"]
    assert POLICY in message, message
    return message


@pytest.fixture
def author(cluster: LocalCluster, api: client.ApiClient, namespace: str,
           tmp_path: Path) -> Person:
    """Someone who may declare runbooks in the namespace and has no other right there."""
    person = service_account(cluster, api, namespace, "author", tmp_path)
    bind_cluster_role(api, namespace, "runbook-edit", ["author"])
    wait_allowed(person.api, namespace, "create", "notificationchannels", "runbook.dev")
    return person


def channel(name: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "NotificationChannel", "metadata": {"name": name},
            "spec": {"pagerduty": {"routingKeySecretRef": {"name": secret, "key": "token"},
                                   "endpoint": ELSEWHERE}}}


def env_from(secret: str) -> dict[str, Any]:
    return {"command": {"image": "busybox:1.36", "command": ["true"],
                        "env": [{"name": "TOKEN",
                                 "secretKeyRef": {"name": secret, "key": "token"}}]}}


#: A spec of each kind that names the Secret `payroll` somewhere the operator reads it (or
#: mounts it in a pod it creates), and the kind.
SECRET_READERS: dict[str, tuple[Kind, Callable[[], dict[str, Any]]]] = {
    "channel-routing-key": (CHANNELS, lambda: channel("pager", "payroll")),
    "channel-header": (CHANNELS, lambda: {
        "apiVersion": API_VERSION, "kind": "NotificationChannel",
        "metadata": {"name": "hook"},
        "spec": {"webhook": {"url": ELSEWHERE, "headers": [
            {"name": "Authorization", "secretKeyRef": {"name": "payroll", "key": "token"}}]}}}),
    "alertrule-prometheus-token": (ALERT_RULES, lambda: alert_rule(
        "errors", PROMETHEUS,
        prometheus={"url": ELSEWHERE, "authSecretRef": {"name": "payroll", "key": "token"}})),
    "alertrule-webhook-action": (ALERT_RULES, lambda: alert_rule(
        "errors", PROMETHEUS,
        actions={"webhook": {"urlSecretRef": {"name": "payroll", "key": "token"}}})),
    "backup-env": (BACKUP_POLICIES, lambda: policy_body("nightly", source=env_from("payroll"))),
}

CREATE_CRONJOBS = {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["create"]}
#: The CronJobs the operator applies for BackupPolicy "nightly" (they may exist already).
PATCH_NIGHTLY = {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["patch"],
                 "resourceNames": ["nightly-backup", "nightly-restore"]}


@pytest.mark.parametrize("case", SECRET_READERS)
def test_a_secret_the_author_may_not_read_is_refused_until_they_may(
    api: client.ApiClient, namespace: str, author: Person, case: str,
) -> None:
    kind, body = SECRET_READERS[case]
    create_secret(api, namespace, "payroll", {"token": "not-for-the-author"})
    if kind is BACKUP_POLICIES:
        grant(api, namespace, "workloads", ["author"], [CREATE_CRONJOBS, PATCH_NIGHTLY])
        wait_allowed(author.api, namespace, "patch", "cronjobs", "batch", name="nightly-restore")
    message = refused(lambda: kind.create(author.api, namespace, body()))
    assert ("the operator would read Secrets payroll for you, and you may not get each of "
            f"them in namespace {namespace}") in message

    grant(api, namespace, "read-payroll", ["author"], [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["payroll"],
         "verbs": ["get"]}])
    wait_allowed(author.api, namespace, "get", "secrets", name="payroll")
    created = kind.create(author.api, namespace, body())
    assert created["metadata"]["name"] == body()["metadata"]["name"]


def test_every_secret_is_checked_however_many_a_spec_names(
    api: client.ApiClient, namespace: str, author: Person,
) -> None:
    """Four by name (the authorizer is asked at most twice per expression); beyond that, the
    author must be able to read every Secret of the namespace."""
    grant(api, namespace, "workloads", ["author"], [CREATE_CRONJOBS, PATCH_NIGHTLY])

    def reading(*secrets: str) -> dict[str, Any]:
        env = [{"name": f"VALUE_{i}", "secretKeyRef": {"name": name, "key": "token"}}
               for i, name in enumerate(secrets)]
        return policy_body("nightly", source={"command": {
            "image": "busybox:1.36", "command": ["true"], "env": env}})

    grant(api, namespace, "read-three", ["author"], [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a", "b", "c"],
         "verbs": ["get"]}])
    wait_allowed(author.api, namespace, "get", "secrets", name="c")
    wait_allowed(author.api, namespace, "patch", "cronjobs", "batch", name="nightly-restore")
    message = refused(lambda: BACKUP_POLICIES.create(author.api, namespace,
                                                     reading("a", "b", "c", "d")))
    assert "the operator would read Secrets c, d for you" in message
    BACKUP_POLICIES.create(author.api, namespace, reading("a", "b", "c", "a"))

    message = refused(lambda: BACKUP_POLICIES.patch(author.api, namespace, "nightly", {
        "spec": reading("a", "b", "c", "a", "b")["spec"]}))
    assert ("the operator would read 5 Secret references for you, more than are checked by "
            f"name, and you may not get every Secret in namespace {namespace}") in message
    grant(api, namespace, "read-all", ["author"], [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    wait_allowed(author.api, namespace, "get", "secrets")
    BACKUP_POLICIES.patch(author.api, namespace, "nightly", {
        "spec": reading("a", "b", "c", "d", "e")["spec"]})


def test_an_edit_that_sends_a_secret_elsewhere_is_checked_again(
    api: client.ApiClient, namespace: str, author: Person,
) -> None:
    """A channel an administrator set up stays theirs to redirect: the author may label it,
    not point its routing key at another endpoint."""
    create_secret(api, namespace, "pagerduty", {"token": "R0UT1NGKEY0123456789abcdefAB"})
    CHANNELS.create(api, namespace, channel("oncall", "pagerduty"))
    message = refused(lambda: CHANNELS.patch(author.api, namespace, "oncall", {
        "spec": {"pagerduty": {"endpoint": "http://elsewhere.example/v2/enqueue"}}}))
    assert "the operator would read Secrets pagerduty for you" in message
    labelled = CHANNELS.patch(author.api, namespace, "oncall",
                              {"metadata": {"labels": {"team": "payments"}}})
    assert labelled["metadata"]["labels"] == {"team": "payments"}
    assert CHANNELS.get(api, namespace, "oncall")["spec"]["pagerduty"]["endpoint"] == ELSEWHERE


def test_backup_pods_need_the_right_to_run_workloads_and_to_act_as_their_account(
    api: client.ApiClient, namespace: str, author: Person,
) -> None:
    body = policy_body("nightly", serviceAccountName="backup")
    message = refused(lambda: BACKUP_POLICIES.create(author.api, namespace, body))
    assert ("the operator would create CronJobs and run their Jobs for you, and you may not "
            f"create cronjobs.batch in namespace {namespace}") in message
    grant(api, namespace, "workloads", ["author"], [CREATE_CRONJOBS])
    wait_allowed(author.api, namespace, "create", "cronjobs", "batch")
    message = refused(lambda: BACKUP_POLICIES.create(author.api, namespace, body))
    assert ("the operator would apply CronJobs nightly-backup, nightly-restore for you, which "
            f"may exist already, and you may not patch them in namespace {namespace}") in message

    grant(api, namespace, "nightly-cronjobs", ["author"], [PATCH_NIGHTLY])
    wait_allowed(author.api, namespace, "patch", "cronjobs", "batch", name="nightly-restore")
    message = refused(lambda: BACKUP_POLICIES.create(author.api, namespace, body))
    assert "spec.serviceAccountName" in message
    assert ("backup pods would run as ServiceAccount backup, and you may not impersonate it "
            f"in namespace {namespace}") in message
    refused(lambda: BACKUP_POLICIES.create(author.api, namespace, policy_body("other")))

    grant(api, namespace, "act-as-backup", ["author"], [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": ["backup"],
         "verbs": ["impersonate"]}])
    wait_allowed(author.api, namespace, "impersonate", "serviceaccounts", name="backup")
    BACKUP_POLICIES.create(author.api, namespace, body)
    refused(lambda: BACKUP_POLICIES.patch(author.api, namespace, "nightly",
                                          {"spec": {"serviceAccountName": "deployer"}}))


def test_deployment_actions_need_the_authors_own_right_on_that_deployment(
    api: client.ApiClient, namespace: str, author: Person,
) -> None:
    def rule(name: str, **action: Any) -> dict[str, Any]:
        return alert_rule(name, PROMETHEUS, actions=action)

    scale = rule("scale", scaleDeployment={"name": "checkout", "by": 1, "max": 5})
    restart = rule("restart", restartDeployment={"name": "checkout"})
    message = refused(lambda: ALERT_RULES.create(author.api, namespace, scale))
    assert "spec.actions.scaleDeployment: " in message
    assert ("the operator would scale Deployment checkout for you, and you may not update "
            f"deployments/scale in namespace {namespace}") in message
    message = refused(lambda: ALERT_RULES.create(author.api, namespace, restart))
    assert ("the operator would restart Deployment checkout for you, and you may not patch "
            f"deployments in namespace {namespace}") in message

    grant(api, namespace, "operate-checkout", ["author"], [
        {"apiGroups": ["apps"], "resources": ["deployments/scale"],
         "resourceNames": ["checkout"], "verbs": ["update"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["checkout"],
         "verbs": ["patch"]}])
    wait_allowed(author.api, namespace, "patch", "deployments", "apps", name="checkout")
    wait_allowed(author.api, namespace, "update", "deployments", "apps", name="checkout",
                 subresource="scale")
    ALERT_RULES.create(author.api, namespace, scale)
    ALERT_RULES.create(author.api, namespace, restart)
    refused(lambda: ALERT_RULES.create(author.api, namespace, rule(
        "scale-other", scaleDeployment={"name": "payments", "by": 1, "max": 5})))


def test_a_canary_needs_the_authors_own_rights_on_its_target_and_route(
    api: client.ApiClient, namespace: str, author: Person,
) -> None:
    """A CanaryRollout has the operator scale its target, create `<target>-primary` from the
    target's pod template and set its route's weights: each is refused until granted."""
    body = rollout(PROMETHEUS)
    message = refused(lambda: ROLLOUTS.create(author.api, namespace, body))
    assert ("spec.targetRef: the operator would scale Deployment checkout and create "
            "checkout-primary from its pod template for you") in message
    grant(api, namespace, "roll-checkout", ["author"], [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["checkout"],
         "verbs": ["patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}])
    wait_allowed(author.api, namespace, "create", "deployments", "apps")
    message = refused(lambda: ROLLOUTS.create(author.api, namespace, body))
    assert ("spec.router.gatewayAPI.httpRoute: the operator would set the weights of HTTPRoute "
            f"checkout for you, and you may not patch it in namespace {namespace}") in message

    grant(api, namespace, "route-checkout", ["author"], [
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"],
         "resourceNames": ["checkout"], "verbs": ["patch"]}])
    wait_allowed(author.api, namespace, "patch", "httproutes", "gateway.networking.k8s.io",
                 name="checkout")
    ROLLOUTS.create(author.api, namespace, body)


def test_a_canary_that_backs_up_first_needs_the_authors_patch_on_that_backup_policy(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, tmp_path: Path,
) -> None:
    """backupBefore has the operator set a BackupPolicy's backup-now annotation: someone who
    may roll the target out but not patch that policy cannot have it run the backup."""
    releaser = service_account(cluster, api, namespace, "releaser", tmp_path)
    grant(api, namespace, "release-checkout", ["releaser"], [
        {"apiGroups": ["runbook.dev"], "resources": ["canaryrollouts"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["checkout"],
         "verbs": ["patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"],
         "resourceNames": ["checkout"], "verbs": ["patch"]}])
    wait_allowed(releaser.api, namespace, "create", "canaryrollouts", "runbook.dev")
    body = rollout(PROMETHEUS, backupBefore={"backupPolicyRef": {"name": "orders"}})
    message = refused(lambda: ROLLOUTS.create(releaser.api, namespace, body))
    assert ("spec.backupBefore: the operator would run a backup of BackupPolicy orders for "
            f"you, and you may not patch it in namespace {namespace}") in message

    grant(api, namespace, "back-up-orders", ["releaser"], [
        {"apiGroups": ["runbook.dev"], "resources": ["backuppolicies"],
         "resourceNames": ["orders"], "verbs": ["patch"]}])
    wait_allowed(releaser.api, namespace, "patch", "backuppolicies", "runbook.dev",
                 name="orders")
    ROLLOUTS.create(releaser.api, namespace, body)


def test_the_built_in_edit_role_may_declare_all_of_it(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, tmp_path: Path,
) -> None:
    """Whoever holds `edit` may already run pods as any account with any Secret of the
    namespace and scale its Deployments: runbooks give them nothing new, so none is refused."""
    editor = service_account(cluster, api, namespace, "editor", tmp_path)
    bind_cluster_role(api, namespace, "edit", ["editor"])
    wait_allowed(editor.api, namespace, "create", "backuppolicies", "runbook.dev")
    create_secret(api, namespace, "payroll", {"token": "an-editor-may-read-this"})
    for kind, body in SECRET_READERS.values():
        kind.create(editor.api, namespace, body())
        kind.delete(api, namespace, body()["metadata"]["name"])
    BACKUP_POLICIES.create(editor.api, namespace, policy_body(
        "as-backup", serviceAccountName="backup"))
    BACKUP_POLICIES.create(editor.api, namespace, runner_policy("runner"))
    ALERT_RULES.create(editor.api, namespace, alert_rule("scale", PROMETHEUS, actions={
        "scaleDeployment": {"name": "checkout", "by": 1, "max": 5},
        "restartDeployment": {"name": "checkout"}}))
