"""Automated remediation for a firing AlertRule: scale or rollout-restart a Deployment in the
rule's namespace, or call a webhook — opt-in, at most once per cooldown, each run recorded in
status and as an Event. The operator's RBAC allows exactly these Deployment changes."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from runbook_operator.api.alertrule import ActionRecord, Actions, AlertInstance
from runbook_operator.core.alertrule.actions import scaled_replicas
from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.secrets import read_secret
from runbook_operator.integrations.webhooks import Endpoint, call_json

log = logging.getLogger(__name__)
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
WEBHOOK_TIMEOUT_SECONDS = 10.0


def _scale(kube: Kube, namespace: str, actions: Actions) -> str:
    scale = actions.scale_deployment
    assert scale is not None
    deployment = kube.get("apps/v1", "Deployment", scale.name, namespace)
    if deployment is None:
        raise LookupError(f"Deployment {scale.name!r} not found")
    current = int((deployment.get("spec") or {}).get("replicas", 1))
    wanted = scaled_replicas(current, scale.by, scale.min, scale.max)
    if wanted == current:
        return (f"Deployment {scale.name} stays at {current} replicas "
                f"(bounds {scale.min}..{scale.max})")
    kube.merge_patch("apps/v1", "Deployment", scale.name, namespace,
                     {"spec": {"replicas": wanted}})
    return f"scaled Deployment {scale.name} from {current} to {wanted} replicas"


def _restart(kube: Kube, namespace: str, actions: Actions, now: datetime) -> str:
    restart = actions.restart_deployment
    assert restart is not None
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now.isoformat()}}}}}
    kube.merge_patch("apps/v1", "Deployment", restart.name, namespace, patch)
    return f"rollout-restarted Deployment {restart.name}"


def _webhook(kube: Kube, namespace: str, actions: Actions, payload: dict[str, Any]) -> str:
    ref = actions.webhook.url_secret_ref if actions.webhook else None
    assert ref is not None
    endpoint = Endpoint.secret(read_secret(kube, namespace, ref))
    return call_json(endpoint, payload, WEBHOOK_TIMEOUT_SECONDS)


def run_actions(
    kube: Kube, body: dict[str, Any], actions: Actions, instance: AlertInstance,
    now: datetime,
) -> list[ActionRecord]:
    """Run every configured action once; a failure is recorded, never raised."""
    namespace = body["metadata"]["namespace"]
    payload = {"rule": body["metadata"]["name"], "namespace": namespace,
               "labels": instance.labels, "value": instance.last_value,
               "firingSince": instance.firing_since.isoformat() if instance.firing_since else None}
    steps = []
    if actions.scale_deployment is not None:
        steps.append(("scaleDeployment", lambda: _scale(kube, namespace, actions)))
    if actions.restart_deployment is not None:
        steps.append(("restartDeployment", lambda: _restart(kube, namespace, actions, now)))
    if actions.webhook is not None:
        steps.append(("webhook", lambda: _webhook(kube, namespace, actions, payload)))
    records = []
    for name, step in steps:
        try:
            message, result = step(), "succeeded"
        except Exception as error:  # noqa: BLE001 - every failure is recorded, none escapes
            message, result = f"{type(error).__name__}: {error}", "failed"
        log.info("action %s for %s/%s: %s", name, namespace, body["metadata"]["name"], message)
        kube.event(body, "Normal" if result == "succeeded" else "Warning",
                   "ActionSucceeded" if result == "succeeded" else "ActionFailed",
                   f"{name}: {message}")
        records.append(ActionRecord(time=now, action=name, fingerprint=instance.fingerprint,
                                    result=result, message=message[:1024]))
    return records
