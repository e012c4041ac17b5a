"""Pure decisions for BackupPolicy: the CronJob to render and how finished Jobs update status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter

from runbook_operator.api.backuppolicy import (
    CRONJOB_SUFFIX,
    BackupPolicy,
    BackupPolicySpec,
    BackupPolicyStatus,
    JobRecord,
)
from runbook_operator.api.common import (
    API_VERSION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SecretKeyRef,
    parse_duration,
)

POLICY_LABEL = "runbook.dev/backuppolicy"
COMPONENT_LABEL = "app.kubernetes.io/component"
BACKUP_CONTAINER = "backup"
NON_ROOT_ID = 65532


@dataclass(frozen=True)
class Owner:
    """Identity of the BackupPolicy a rendered object belongs to."""

    name: str
    namespace: str
    uid: str


def cronjob_name(policy_name: str) -> str:
    return f"{policy_name}{CRONJOB_SUFFIX}"


def selector_labels(policy_name: str) -> dict[str, str]:
    """Labels that find everything rendered for one policy (CronJob, Jobs, Pods)."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, POLICY_LABEL: policy_name}


def semantic_problems(spec: BackupPolicySpec) -> list[str]:
    """What the schema cannot catch but the operator can: checked before rendering."""
    problems = []
    if not spec.schedule.startswith("@") and not croniter.is_valid(spec.schedule):
        problems.append(f"schedule {spec.schedule!r} is not a valid cron expression")
    if parse_duration(spec.timeout).total_seconds() < 1:
        problems.append("timeout must be at least 1s")
    return problems


def _env(spec: BackupPolicySpec) -> list[dict[str, Any]]:
    command = spec.source.command
    assert command is not None
    env = []
    for var in command.env:
        if var.secret_key_ref is not None:
            ref = var.secret_key_ref
            env.append(
                {"name": var.name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            )
        else:
            env.append({"name": var.name, "value": var.value})
    return env


def _container(spec: BackupPolicySpec) -> dict[str, Any]:
    command = spec.source.command
    assert command is not None
    container: dict[str, Any] = {
        "name": BACKUP_CONTAINER,
        "image": command.image,
        "command": command.command,
        "args": command.args,
        "env": _env(spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if spec.resources is not None:
        container["resources"] = {
            key: value
            for key, value in (("requests", spec.resources.requests), ("limits", spec.resources.limits))
            if value
        }
    return container


def render_cronjob(spec: BackupPolicySpec, owner: Owner) -> dict[str, Any]:
    """The CronJob that runs the policy's backups, as a server-side-apply body.

    A native CronJob (not an in-process scheduler) keeps ticks while the operator is down, and
    `startingDeadlineSeconds` with `Forbid` stops missed runs from storming on recovery.
    """
    labels = {**selector_labels(owner.name), COMPONENT_LABEL: "backup"}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": spec.service_account_name is not None,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_ID,
            "runAsGroup": NON_ROOT_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": BackupPolicy.info.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "schedule": spec.schedule,
            "timeZone": spec.time_zone,
            "suspend": spec.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": int(parse_duration(spec.starting_deadline).total_seconds()),
            "successfulJobsHistoryLimit": spec.successful_jobs_history_limit,
            "failedJobsHistoryLimit": spec.failed_jobs_history_limit,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": spec.backoff_limit,
                    "activeDeadlineSeconds": max(
                        1, int(parse_duration(spec.timeout).total_seconds())
                    ),
                    "podFailurePolicy": {
                        "rules": [
                            {
                                "action": "Ignore",
                                "onPodConditions": [
                                    {"type": "DisruptionTarget", "status": "True"}
                                ],
                            }
                        ]
                    },
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                },
            },
        },
    }


def missing_secrets(
    refs: list[SecretKeyRef], secrets: dict[str, set[str] | None]
) -> list[str]:
    """Describe each reference whose Secret or key does not exist.

    `secrets` maps a Secret name to its key names as read from the API (None when absent);
    only key names are ever looked at, never values.
    """
    problems = []
    for ref in refs:
        data = secrets.get(ref.name)
        if data is None:
            problems.append(f"Secret {ref.name!r} not found")
        elif ref.key not in data:
            problems.append(f"Secret {ref.name!r} has no key {ref.key!r}")
    return sorted(set(problems))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def finished_job(job: dict[str, Any]) -> JobRecord | None:
    """The outcome of a Job that has finished, or None while it runs.

    A Job counts as succeeded only on a `Complete=True` condition; `Failed=True` (including
    deadline exceeded and pod-failure-policy rules) is a failure.
    """
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "Failed"):
            finished = (
                job["status"].get("completionTime")
                if condition["type"] == "Complete"
                else None
            ) or condition.get("lastTransitionTime")
            return JobRecord(
                name=job["metadata"]["name"],
                outcome="Succeeded" if condition["type"] == "Complete" else "Failed",
                finished_at=_parse_time(finished),
                reason=condition.get("reason") or "",
                message=condition.get("message") or "",
            )
    return None


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def record_job(status: BackupPolicyStatus, record: JobRecord) -> BackupPolicyStatus:
    """Fold one finished Job into status. Idempotent and order-independent: replaying events
    after a restart, or seeing Jobs out of order, gives the same status."""
    update: dict[str, Any] = {}
    if record.outcome == "Succeeded":
        update["last_successful_time"] = _later(status.last_successful_time, record.finished_at)
    else:
        update["last_failure_time"] = _later(status.last_failure_time, record.finished_at)
    latest = status.last_job
    if latest is None or (record.finished_at, record.name, record.outcome) >= (
        latest.finished_at,
        latest.name,
        latest.outcome,
    ):
        update["last_job"] = record
    return status.model_copy(update=update)
