"""The CronJobs a BackupPolicy renders (backups and restore tests) and the on-demand Job a
`runbook.dev/backup-now` request creates from the backup CronJob."""

from __future__ import annotations

from typing import Any

from croniter import croniter

from runbook_operator.api.backuppolicy import BackupPolicy, BackupPolicySpec
from runbook_operator.api.common import API_VERSION, parse_duration
from runbook_operator.core.backuppolicy.names import (
    BACKUP_CONTAINER,
    BACKUP_NOW_ANNOTATION,
    COMPONENT_LABEL,
    OPERATION_LABEL,
    POLICY_LABEL,
    RUNNER_CONTAINER,
    RUNNER_LABEL,
    Owner,
    cronjob_name,
    on_demand_job_name,
    restore_test_cronjob_name,
    selector_labels,
)
from runbook_operator.core.backuppolicy.runner_config import (
    RUNNER_CONFIG_ENV,
    command_env,
    config_text,
    runner_config,
)
from runbook_operator.runner.config import Operation

NON_ROOT_ID = 65532
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def semantic_problems(spec: BackupPolicySpec) -> list[str]:
    """What the schema cannot catch but the operator can: checked before rendering."""
    problems = []
    if not spec.schedule.startswith("@") and not croniter.is_valid(spec.schedule):
        problems.append(f"schedule {spec.schedule!r} is not a valid cron expression")
    if parse_duration(spec.timeout).total_seconds() < 1:
        problems.append("timeout must be at least 1s")
    return problems


def _resources(spec: BackupPolicySpec) -> dict[str, Any]:
    if spec.resources is None:
        return {}
    pairs = (("requests", spec.resources.requests), ("limits", spec.resources.limits))
    return {"resources": {key: value for key, value in pairs if value}}


def _command_container(spec: BackupPolicySpec) -> dict[str, Any]:
    """Without a destination the user's command, in its own image, is the whole backup."""
    command = spec.source.command
    assert command is not None and command.image is not None
    return {
        "name": BACKUP_CONTAINER,
        "image": command.image,
        "command": command.command,
        "args": command.args,
        "env": command_env(command),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": _CONTAINER_SECURITY,
        **_resources(spec),
    }


def _runner_container(
    spec: BackupPolicySpec, owner: Owner, operation: Operation, image: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config, parts = runner_config(spec, owner, operation)
    container = {
        "name": RUNNER_CONTAINER,
        "image": image,
        "command": ["runbook-operator", "runner"],
        "env": [{"name": RUNNER_CONFIG_ENV, "value": config_text(config)}, *parts.env],
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *parts.mounts],
        "securityContext": _CONTAINER_SECURITY,
        **_resources(spec),
    }
    return container, parts.volumes


def _pod_spec(spec: BackupPolicySpec, container: dict[str, Any],
              volumes: list[dict[str, Any]]) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": spec.service_account_name is not None,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_ID,
            "runAsGroup": NON_ROOT_ID,
            "fsGroup": NON_ROOT_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    return pod_spec


def _cronjob(
    spec: BackupPolicySpec, owner: Owner, name: str, operation: str, schedule: str,
    suspend: bool, timeout: str, pod_spec: dict[str, Any], runner: bool,
) -> dict[str, Any]:
    labels = {**selector_labels(owner.name), COMPONENT_LABEL: "backup",
              OPERATION_LABEL: operation, RUNNER_LABEL: "true" if runner else "false"}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
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
            "schedule": schedule,
            "timeZone": spec.time_zone,
            "suspend": suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": int(parse_duration(spec.starting_deadline).total_seconds()),
            "successfulJobsHistoryLimit": spec.successful_jobs_history_limit,
            "failedJobsHistoryLimit": spec.failed_jobs_history_limit,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": spec.backoff_limit,
                    "activeDeadlineSeconds": max(1, int(parse_duration(timeout).total_seconds())),
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


def render_cronjob(spec: BackupPolicySpec, owner: Owner, runner_image: str) -> dict[str, Any]:
    """The CronJob that runs the policy's backups, as a server-side-apply body.

    A native CronJob (not an in-process scheduler) keeps ticks while the operator is down, and
    `startingDeadlineSeconds` with `Forbid` stops missed runs from storming on recovery. With
    a destination the runner does the backup; without, the user's command is the backup.
    """
    if spec.destination is None:
        container, volumes = _command_container(spec), []
    else:
        container, volumes = _runner_container(spec, owner, "backup", runner_image)
    return _cronjob(spec, owner, cronjob_name(owner.name), "backup", spec.schedule, spec.suspend,
                    spec.timeout, _pod_spec(spec, container, volumes),
                    runner=spec.destination is not None)


def render_restore_test_cronjob(
    spec: BackupPolicySpec, owner: Owner, runner_image: str
) -> dict[str, Any] | None:
    """The CronJob that restores the newest backup into a scratch target, or None."""
    test = spec.restore_test
    if test is None or spec.destination is None:
        return None
    container, volumes = _runner_container(spec, owner, "restore", runner_image)
    return _cronjob(spec, owner, restore_test_cronjob_name(owner.name), "restore-test",
                    test.schedule, spec.suspend or test.suspend, test.timeout,
                    _pod_spec(spec, container, volumes), runner=True)


def may_have_restore_test(generation: int | None) -> bool:
    """Whether a restore-test CronJob of this policy may exist when its spec asks for none:
    only if the spec changed since the policy was created (generation 1), so a policy created
    without a restore test is not asked about one on every reconcile. A CronJob left by an
    earlier policy of the same name belongs to that policy's uid, not to this one."""
    return generation is None or generation > 1


def on_demand_job(cronjob: dict[str, Any], token: str) -> dict[str, Any]:
    """A Job from the backup CronJob's template for a `runbook.dev/backup-now` request, as
    `kubectl create job --from=cronjob/...` makes it. Its name derives from the token, so
    acting on the same request twice (after a restart) creates nothing new."""
    meta = cronjob["metadata"]
    template = cronjob["spec"]["jobTemplate"]
    policy = meta["labels"][POLICY_LABEL]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": on_demand_job_name(policy, token),
            "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual",
                            BACKUP_NOW_ANNOTATION: token[:253]},
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": template["spec"],
    }
