"""The e2e tests' side of the API: create, read and wait for runbook resources of any kind in
the registry, Secrets and channels, Jobs from a rendered CronJob, and backup runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import GROUP, VERSION, Resource
from runbook_operator.api.registry import KINDS
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION, POLICY_LABEL
from runbook_operator.devcluster.cluster import (
    EXIT_CODE_ANNOTATION,
    TERMINATION_MESSAGE_ANNOTATION,
    LocalCluster,
)
from runbook_operator.devcluster.runtime.images import is_runtime_image
from runbook_operator.devcluster.waiting import wait_for


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """The condition `type_` of an object (or of its status), `{}` while it has none."""
    status = obj.get("status", obj) if "metadata" in obj else obj
    return next((c for c in (status or {}).get("conditions") or [] if c["type"] == type_), {})


@dataclass(frozen=True)
class Kind:
    """One kind of the registry, addressed the way the tests need it."""

    model: type[Resource]

    @property
    def plural(self) -> str:
        return self.model.info.plural

    def create(self, api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict:
        return client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, self.plural, body)

    def get(self, api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, self.plural, name)

    def status(self, api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
        return self.get(api, namespace, name).get("status") or {}

    def patch(self, api: client.ApiClient, namespace: str, name: str,
              patch: dict[str, Any]) -> dict[str, Any]:
        return client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, self.plural, name, patch)

    def delete(self, api: client.ApiClient, namespace: str, name: str) -> None:
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, self.plural, name)

    def delete_all(self, api: client.ApiClient, namespace: str) -> None:
        client.CustomObjectsApi(api).delete_collection_namespaced_custom_object(
            GROUP, VERSION, namespace, self.plural)

    def wait_condition(self, api: client.ApiClient, namespace: str, name: str, type_: str,
                       status: str = "True", timeout: float = 60) -> dict[str, Any]:
        """The object once condition `type_` has `status` for its current generation."""

        def reached() -> dict[str, Any] | None:
            obj = self.get(api, namespace, name)
            observed = (obj.get("status") or {}).get("observedGeneration")
            if (condition(obj, type_).get("status") == status
                    and observed == obj["metadata"]["generation"]):
                return obj
            return None

        return wait_for(reached, f"{self.model.info.kind} {namespace}/{name} {type_}={status}",
                        timeout=timeout)

    def wait_ready(self, api: client.ApiClient, namespace: str, name: str,
                   timeout: float = 60) -> dict[str, Any]:
        return self.wait_condition(api, namespace, name, "Ready", "True", timeout)


def kind(name: str) -> Kind:
    return Kind(next(model for model in KINDS if model.info.kind == name))


BACKUP_POLICIES = kind("BackupPolicy")
ALERT_RULES = kind("AlertRule")
CHANNELS = kind("NotificationChannel")
INCIDENTS = kind("Incident")
ESCALATION_POLICIES = kind("EscalationPolicy")


def incidents(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """Every Incident in `namespace`, oldest first."""
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, INCIDENTS.plural)["items"]
    return sorted(found, key=lambda i: (i["metadata"]["creationTimestamp"],
                                        i["metadata"]["name"]))


def incidents_from(api: client.ApiClient, namespace: str, kind_: str,
                   name: str | None = None) -> list[dict[str, Any]]:
    """The Incidents a source of `kind_` (named `name`, if given) opened, oldest first."""
    return [i for i in incidents(api, namespace)
            if (i["spec"].get("source") or {}).get("kind") == kind_
            and name in (None, i["spec"]["source"].get("name"))]


@dataclass(frozen=True)
class Person:
    """Someone acting through the API under their own identity (a ServiceAccount here)."""

    username: str
    api: client.ApiClient
    kubeconfig: Path


def service_account(cluster: LocalCluster, api: client.ApiClient, namespace: str, name: str,
                    workdir: Path) -> Person:
    """A new ServiceAccount of `namespace`, with a client and a kubeconfig acting as it."""
    client.CoreV1Api(api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    kubeconfig = cluster.service_account_kubeconfig(namespace, name, workdir / name)
    return Person(f"system:serviceaccount:{namespace}:{name}",
                  config.new_client_from_config(config_file=str(kubeconfig)), kubeconfig)


def bind_cluster_role(api: client.ApiClient, namespace: str, role: str,
                      accounts: list[str]) -> None:
    """A RoleBinding of ClusterRole `role` to ServiceAccounts of `namespace`."""
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": a, "namespace": namespace}
                     for a in accounts]})


def grant(api: client.ApiClient, namespace: str, name: str, accounts: list[str],
          rules: list[dict[str, Any]]) -> None:
    """A Role `name` with `rules`, bound to ServiceAccounts of `namespace`."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": a, "namespace": namespace}
                     for a in accounts]})


def create_secret(api: client.ApiClient, namespace: str, name: str,
                  data: Mapping[str, str]) -> None:
    client.CoreV1Api(api).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name), string_data=dict(data)))


def create_secrets(api: client.ApiClient, namespace: str,
                   secrets: Mapping[str, Mapping[str, str]]) -> None:
    for name, data in secrets.items():
        create_secret(api, namespace, name, data)


def create_webhook_channel(api: client.ApiClient, namespace: str, url: str,
                           name: str = "oncall", secret: str = "hook") -> None:
    """A webhook NotificationChannel (URL in a Secret) with short retries."""
    create_secret(api, namespace, secret, {"url": url})
    CHANNELS.create(api, namespace, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationChannel",
        "metadata": {"name": name},
        "spec": {"webhook": {"urlSecretRef": {"name": secret, "key": "url"}},
                 "retry": {"initialBackoff": "1s", "maxBackoff": "2s"}}})


def create_slack_and_pagerduty(api: client.ApiClient, namespace: str, slack_url: str,
                               pagerduty_url: str) -> None:
    """Slack and PagerDuty channels whose endpoints are in-test receivers."""
    create_secret(api, namespace, "chat",
                  {"slack": slack_url, "pd": "R0UT1NGKEY0123456789abcdefABCDEF"})
    channels = {
        "slack": {"slack": {"webhookURLSecretRef": {"name": "chat", "key": "slack"}}},
        "pagerduty": {"pagerduty": {"routingKeySecretRef": {"name": "chat", "key": "pd"},
                                    "endpoint": pagerduty_url}},
    }
    for name, spec in channels.items():
        CHANNELS.create(api, namespace, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationChannel",
            "metadata": {"name": name}, "spec": spec})


def create_pagerduty_channels(api: client.ApiClient, namespace: str,
                              endpoints: Mapping[str, str]) -> None:
    """PagerDuty channels by name, each posting to its own endpoint (an in-test receiver's
    path), with short retries."""
    create_secret(api, namespace, "pagerduty", {"routing-key": "R0UT1NGKEY0123456789abcdefAB"})
    for name, endpoint in endpoints.items():
        CHANNELS.create(api, namespace, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationChannel",
            "metadata": {"name": name},
            "spec": {"pagerduty": {"routingKeySecretRef": {"name": "pagerduty",
                                                           "key": "routing-key"},
                                   "endpoint": endpoint},
                     "retry": {"initialBackoff": "1s", "maxBackoff": "2s"}}})


def configmap_data(api: client.ApiClient, namespace: str, name: str) -> dict[str, str] | None:
    """A ConfigMap's data, None while it does not exist."""
    try:
        return client.CoreV1Api(api).read_namespaced_config_map(name, namespace).data or {}
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _job_from_cronjob(cluster: LocalCluster, namespace: str, cronjob_name: str,
                      job_name: str) -> dict[str, Any]:
    """What `kubectl create job --from=cronjob/...` would create, not created yet."""
    rendered = cluster.kubectl("create", "job", job_name, f"--from=cronjob/{cronjob_name}",
                               "-n", namespace, "--dry-run=client", "-o", "json").stdout
    return json.loads(rendered)


def run_job_from_cronjob(cluster: LocalCluster, namespace: str, cronjob_name: str,
                         job_name: str, message: str | None = None, exit_code: int = 0) -> None:
    """What `kubectl create job --from=cronjob/...` does. kwok completes its pod: with the
    termination `message` and `exit_code` given (its pod-complete stage reads them from pod
    annotations), standing in for what a kubelet would report. Pods of the project's images
    run for real, so nothing can be made up for them: see :func:`run_job_with_command`."""
    job = _job_from_cronjob(cluster, namespace, cronjob_name, job_name)
    template = job["spec"]["template"]
    if (message is not None or exit_code) and any(
            is_runtime_image(c["image"]) for c in template["spec"]["containers"]):
        raise ValueError(f"{cronjob_name} runs the project's image for real; its result "
                         "cannot be injected")
    annotations = template["metadata"].setdefault("annotations", {})
    if message is not None:
        annotations[TERMINATION_MESSAGE_ANNOTATION] = message
    if exit_code:
        annotations[EXIT_CODE_ANNOTATION] = str(exit_code)
    cluster.kubectl("create", "-f", "-", "-n", namespace, input=json.dumps(job))


def run_job_with_command(cluster: LocalCluster, namespace: str, cronjob_name: str,
                         job_name: str, command: list[str]) -> None:
    """A Job from the CronJob whose (single) container runs `command` instead: a runner
    that dies early or writes a broken result, run for real by the devcluster runtime."""
    job = _job_from_cronjob(cluster, namespace, cronjob_name, job_name)
    [container] = job["spec"]["template"]["spec"]["containers"]
    container["command"] = command
    cluster.kubectl("create", "-f", "-", "-n", namespace, input=json.dumps(job))


def read_cronjob(api: client.ApiClient, namespace: str, name: str) -> client.V1CronJob | None:
    try:
        return client.BatchV1Api(api).read_namespaced_cron_job(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def history_entry(api: client.ApiClient, namespace: str, name: str, job_name: str) -> dict | None:
    status = BACKUP_POLICIES.get(api, namespace, name).get("status", {})
    return next((a for a in status.get("history", []) if a["jobName"] == job_name), None)


def alert_state(api: client.ApiClient, namespace: str, name: str) -> str | None:
    """An AlertRule's overall state (status.state), None before its first evaluation."""
    return ALERT_RULES.status(api, namespace, name).get("state")


def alert_notifications(api: client.ApiClient, namespace: str, name: str) -> list[dict]:
    """An AlertRule's status.notifications: the last notification per instance and channel."""
    return ALERT_RULES.status(api, namespace, name).get("notifications") or []


def backup_now(api: client.ApiClient, namespace: str, policy: str, token: str) -> str:
    """Ask for a run with the `runbook.dev/backup-now` annotation, as `kubectl runbook backup
    now` does; the name of the Job the operator starts for it."""
    BACKUP_POLICIES.patch(api, namespace, policy,
                          {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: token}}})
    batch = client.BatchV1Api(api)

    def started() -> str | None:
        jobs = batch.list_namespaced_job(namespace, label_selector=f"{POLICY_LABEL}={policy}")
        for job in jobs.items:
            if (job.metadata.annotations or {}).get(BACKUP_NOW_ANNOTATION) == token:
                return job.metadata.name
        return None

    return wait_for(started, f"the Job for backup-now {token} of {namespace}/{policy}",
                    timeout=120)


def wait_run(api: client.ApiClient, namespace: str, policy: str, job_name: str,
             timeout: float = 240) -> dict[str, Any]:
    """The policy's history entry for a finished run of `job_name`."""
    return wait_for(lambda: history_entry(api, namespace, policy, job_name),
                    f"the run {job_name} of {namespace}/{policy} in its history",
                    timeout=timeout)


def username(api: client.ApiClient) -> str:
    """Who `api` acts as, as the API server knows them (what `kubectl auth whoami` prints): the
    name an acknowledgement or a note must be signed with."""
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review.status.user_info.username


def allowed(api: client.ApiClient, namespace: str, verb: str, resource: str, group: str = "",
            name: str = "", subresource: str = "") -> bool:
    """Whether `api`'s user may do it, as the API server's authorizer answers
    (`kubectl auth can-i`)."""
    review = client.AuthorizationV1Api(api).create_self_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "namespace": namespace, "verb": verb, "group": group, "resource": resource,
            "name": name, "subresource": subresource}}})
    return bool(review.status.allowed)


def wait_allowed(api: client.ApiClient, namespace: str, verb: str, resource: str,
                 group: str = "", name: str = "", subresource: str = "") -> None:
    """Until the authorizer has seen a new binding that lets `api`'s user do it."""
    wait_for(lambda: allowed(api, namespace, verb, resource, group, name, subresource),
             f"{verb} {resource}/{subresource} {name!r} in {namespace} allowed", timeout=60)
