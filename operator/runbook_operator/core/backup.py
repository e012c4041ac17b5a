"""Pure decisions for BackupPolicy: the CronJob to render and how finished Jobs update status."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter

from runbook_operator.api.backuppolicy import (
    CRONJOB_SUFFIX,
    HISTORY_LIMIT,
    NOTIFICATION_LOG_LIMIT,
    NotificationLogEntry,
    RESTORE_TEST_SUFFIX,
    BackupAttempt,
    BackupRecord,
    CommandSource,
    RestoreTestRecord,
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
from runbook_operator.api.notificationchannel import DeliveryRecord
from runbook_operator.core.conditions import set_condition
from runbook_operator.core.delivery import Notification, Source, fingerprint
from runbook_operator.core.rpo import RPOEvaluation
from runbook_operator.runner.results import BackupResult, RestoreResult, RunResult

POLICY_LABEL = "runbook.dev/backuppolicy"
BACKUP_NOW_ANNOTATION = "runbook.dev/backup-now"
VERIFIED_CONDITION = "Verified"
OPERATION_LABEL = "runbook.dev/operation"
RUNNER_LABEL = "runbook.dev/runner"
RUNNER_CONTAINER = "runner"
RUNNER_CONFIG_ENV = "RUNBOOK_RUNNER_CONFIG"
ENCRYPTION_KEY_ENV = "RUNBOOK_ENCRYPTION_KEY"
SOURCE_PASSWORD_ENV = "RUNBOOK_SOURCE_PASSWORD"
S3_ACCESS_KEY_ENV = "RUNBOOK_S3_ACCESS_KEY_ID"
S3_SECRET_KEY_ENV = "RUNBOOK_S3_SECRET_ACCESS_KEY"
BACKUPS_MOUNT = "/var/lib/runbook/backups"
SOURCE_MOUNT = "/var/lib/runbook/source"
SCRATCH_MOUNT = "/var/lib/runbook/scratch"
SCRATCH_SUFFIX = "_restore_test"
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


def restore_test_cronjob_name(policy_name: str) -> str:
    return f"{policy_name}{RESTORE_TEST_SUFFIX}"


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


def _env_from_spec(command: CommandSource) -> list[dict[str, Any]]:
    env = []
    for var in command.env:
        if var.secret_key_ref is not None:
            env.append({"name": var.name, "valueFrom": _secret_ref(var.secret_key_ref)})
        else:
            env.append({"name": var.name, "value": var.value})
    return env


def _secret_ref(ref: SecretKeyRef) -> dict[str, Any]:
    return {"secretKeyRef": {"name": ref.name, "key": ref.key}}


def _resources(spec: BackupPolicySpec) -> dict[str, Any]:
    if spec.resources is None:
        return {}
    pairs = (("requests", spec.resources.requests), ("limits", spec.resources.limits))
    return {"resources": {key: value for key, value in pairs if value}}


_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _command_container(spec: BackupPolicySpec) -> dict[str, Any]:
    """Without a destination the user's command, in its own image, is the whole backup."""
    command = spec.source.command
    assert command is not None and command.image is not None
    return {
        "name": BACKUP_CONTAINER,
        "image": command.image,
        "command": command.command,
        "args": command.args,
        "env": _env_from_spec(command),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": _CONTAINER_SECURITY,
        **_resources(spec),
    }


@dataclass(frozen=True)
class RunnerParts:
    """What the runner container needs besides its config: env from Secrets, volumes."""

    env: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


def _storage_config(spec: BackupPolicySpec) -> tuple[dict[str, Any], RunnerParts]:
    destination = spec.destination
    assert destination is not None
    if destination.pvc is not None:
        volume = {"name": "backups",
                  "persistentVolumeClaim": {"claimName": destination.pvc.claim_name}}
        mount = {"name": "backups", "mountPath": BACKUPS_MOUNT}
        config = {"local": {"path": f"{BACKUPS_MOUNT}/{destination.pvc.path}"}}
        return config, RunnerParts([], [volume], [mount])
    s3 = destination.s3
    assert s3 is not None
    creds = s3.credentials_secret_ref
    env = [
        {"name": S3_ACCESS_KEY_ENV,
         "valueFrom": _secret_ref(SecretKeyRef(name=creds.name, key=creds.access_key_id_key))},
        {"name": S3_SECRET_KEY_ENV,
         "valueFrom": _secret_ref(SecretKeyRef(name=creds.name, key=creds.secret_access_key_key))},
    ]
    config = {"s3": {"endpointUrl": s3.endpoint, "region": s3.region, "bucket": s3.bucket,
                     "prefix": s3.prefix, "accessKeyIdEnv": S3_ACCESS_KEY_ENV,
                     "secretAccessKeyEnv": S3_SECRET_KEY_ENV,
                     "forcePathStyle": s3.force_path_style}}
    if s3.endpoint is None:
        del config["s3"]["endpointUrl"]
    return config, RunnerParts(env, [], [])


def _database_settings(spec: BackupPolicySpec) -> tuple[str, dict[str, Any], RunnerParts]:
    source = spec.source
    db = source.postgres or source.mysql
    assert db is not None
    kind = "postgres" if source.postgres else "mysql"
    settings: dict[str, Any] = {"host": db.host, "user": db.user, "database": db.database,
                                "passwordEnv": SOURCE_PASSWORD_ENV, "extraArgs": db.extra_args}
    if db.port is not None:
        settings["port"] = db.port
    env = [{"name": SOURCE_PASSWORD_ENV, "valueFrom": _secret_ref(db.password_secret_ref)}]
    return kind, settings, RunnerParts(env, [], [])


def _source_config(spec: BackupPolicySpec) -> tuple[dict[str, Any], RunnerParts]:
    source = spec.source
    if source.postgres or source.mysql:
        kind, settings, parts = _database_settings(spec)
        return {"kind": kind, "settings": settings}, parts
    if source.files is not None:
        volume = {"name": "source", "persistentVolumeClaim": {
            "claimName": source.files.claim_name, "readOnly": True}}
        mount = {"name": "source", "mountPath": SOURCE_MOUNT, "readOnly": True}
        path = f"{SOURCE_MOUNT}{source.files.path}".rstrip("/") or SOURCE_MOUNT
        settings = {"path": path, "exclude": source.files.exclude}
        return {"kind": "files", "settings": settings}, RunnerParts([], [volume], [mount])
    command = source.command
    assert command is not None
    literal = {e.name: e.value for e in command.env if e.value is not None}
    secret = [e.name for e in command.env if e.secret_key_ref is not None]
    env = [e for e in _env_from_spec(command) if "valueFrom" in e]
    settings = {"command": command.command, "args": command.args, "env": literal,
                "secretEnv": secret}
    return {"kind": "command", "settings": settings}, RunnerParts(env, [], [])


def _restore_target_config(spec: BackupPolicySpec) -> tuple[dict[str, Any], RunnerParts]:
    """Restore tests go into a scratch target that never touches the source's data."""
    source = spec.source
    test = spec.restore_test
    assert test is not None
    if source.postgres or source.mysql:
        kind, settings, parts = _database_settings(spec)
        settings.pop("extraArgs")
        settings["database"] = scratch_database(settings["database"])
        settings["dropExisting"] = True
        if test.check_query:
            settings["checkQuery"] = test.check_query
        return {"kind": kind, "settings": settings}, parts
    volume = {"name": "scratch", "emptyDir": {}}
    mount = {"name": "scratch", "mountPath": SCRATCH_MOUNT}
    return ({"kind": "files", "settings": {"path": SCRATCH_MOUNT}},
            RunnerParts([], [volume], [mount]))


def scratch_database(database: str) -> str:
    return f"{database[:63 - len(SCRATCH_SUFFIX)]}{SCRATCH_SUFFIX}"


def runner_config(spec: BackupPolicySpec, owner: Owner, operation: str) -> tuple[dict[str, Any], RunnerParts]:
    """The runner's non-secret JSON config and the Secret-backed env and volumes it needs."""
    storage, storage_parts = _storage_config(spec)
    source, source_parts = _source_config(spec)
    encryption = spec.encryption
    assert encryption is not None
    config: dict[str, Any] = {
        "operation": operation,
        "policy": owner.name,
        "namespace": owner.namespace,
        "compression": spec.compression,
        "encryption": {"mode": encryption.mode, "keyEnv": ENCRYPTION_KEY_ENV},
        "storage": storage,
        "source": source,
    }
    parts = [storage_parts, source_parts]
    if encryption.key_secret_ref is not None:
        parts.append(RunnerParts(
            [{"name": ENCRYPTION_KEY_ENV, "valueFrom": _secret_ref(encryption.key_secret_ref)}],
            [], []))
    if operation == "backup" and spec.retention is not None:
        rules = spec.retention
        config["retention"] = {
            "keepLast": rules.keep_last, "keepDaily": rules.keep_daily,
            "keepWeekly": rules.keep_weekly, "keepMonthly": rules.keep_monthly,
            "keepYearly": rules.keep_yearly, "dryRun": rules.dry_run,
            "timeZone": spec.time_zone,
        }
        if rules.max_age is not None:
            config["retention"]["maxAgeSeconds"] = int(
                parse_duration(rules.max_age).total_seconds())
    if operation == "restore":
        target, target_parts = _restore_target_config(spec)
        config["restoreTarget"] = target
        parts.append(target_parts)
    unique_env = {e["name"]: e for p in reversed(parts) for e in p.env}
    merged = RunnerParts(
        env=sorted(unique_env.values(), key=lambda e: e["name"]),
        volumes=[v for p in parts for v in p.volumes],
        mounts=[m for p in parts for m in p.mounts],
    )
    return config, merged


def _runner_container(
    spec: BackupPolicySpec, owner: Owner, operation: str, image: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config, parts = runner_config(spec, owner, operation)
    container = {
        "name": RUNNER_CONTAINER,
        "image": image,
        "command": ["runbook-operator", "runner"],
        "env": [{"name": RUNNER_CONFIG_ENV,
                 "value": json.dumps(config, separators=(",", ":"), sort_keys=True)},
                *parts.env],
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


def on_demand_job(cronjob: dict[str, Any], token: str) -> dict[str, Any]:
    """A Job from the backup CronJob's template for a `runbook.dev/backup-now` request, as
    `kubectl create job --from=cronjob/...` makes it. Its name derives from the token, so
    acting on the same request twice (after a restart) creates nothing new."""
    meta = cronjob["metadata"]
    template = cronjob["spec"]["jobTemplate"]
    digest = hashlib.sha256(token.encode()).hexdigest()[:10]
    policy = meta["labels"][POLICY_LABEL]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{policy}-now-{digest}",
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


@dataclass(frozen=True)
class RunVerdict:
    """How one finished Job counts: its record, and what it proved (a backup or a restore)."""

    operation: str
    record: JobRecord
    backup: BackupRecord | None = None
    restore: RestoreTestRecord | None = None


def _parse_result(message: str | None, model: type[RunResult]) -> RunResult | None:
    if not message:
        return None
    try:
        return model.model_validate_json(message)
    except ValueError:
        return None


def judge_run(job: dict[str, Any], termination_message: str | None) -> RunVerdict | None:
    """Decide what a finished Job means; None while it runs.

    A runner Job counts as a success only when the Job completed AND the runner reported a
    valid, successful result: a completed Job without one is a failure (`NoResult`), and a
    failed Job takes the runner's reason when it gave one. Jobs of a plain command (no
    destination) succeed when they complete.
    """
    base = finished_job(job)
    if base is None:
        return None
    labels = job["metadata"].get("labels") or {}
    operation = labels.get(OPERATION_LABEL, "backup")
    if operation not in ("backup", "restore-test"):
        return None  # e.g. an on-demand restore: not a backup run, not a restore test
    if labels.get(RUNNER_LABEL) != "true":
        return RunVerdict(operation, base)
    model: type[RunResult] = RestoreResult if operation == "restore-test" else BackupResult
    result = _parse_result(termination_message, model)
    if result is None:
        if base.outcome == "Succeeded":
            message = "the Job completed without a valid runner result; not counted as a backup"
            record = base.model_copy(update={"outcome": "Failed", "reason": "NoResult",
                                             "message": message})
        else:
            record = base
        return RunVerdict(operation, record)
    if not result.ok or base.outcome == "Failed":
        reason = result.reason if not result.ok else base.reason
        message = result.message if not result.ok else base.message
        record = base.model_copy(update={"outcome": "Failed", "reason": reason,
                                         "message": message})
        return RunVerdict(operation, record)
    record = base.model_copy(update={"reason": result.reason, "message": result.message})
    if isinstance(result, RestoreResult):
        restore = RestoreTestRecord(
            time=base.finished_at, job_name=base.name, outcome="Succeeded",
            backup_key=result.key or "", duration_seconds=result.duration_seconds,
            message=result.message,
        )
        return RunVerdict(operation, record, restore=restore)
    assert isinstance(result, BackupResult)
    stored = BackupRecord(
        time=base.finished_at, job_name=base.name, location=result.location or "",
        key=result.key or "", size_bytes=result.size_bytes or 0, sha256=result.sha256 or "",
        duration_seconds=result.duration_seconds, verified=result.verified,
        pruned_count=result.pruned_count, pruned=result.pruned[:10],
        prune_dry_run=result.prune_dry_run,
    )
    return RunVerdict(operation, record, backup=stored)


def record_run(status: BackupPolicyStatus, verdict: RunVerdict) -> BackupPolicyStatus:
    """Fold a judged Job into status; idempotent, so replayed events change nothing."""
    if verdict.operation == "restore-test":
        return _record_restore_test(status, verdict)
    status = record_job(status, verdict.record)
    record = verdict.record
    attempt = BackupAttempt(
        time=record.finished_at, job_name=record.name, outcome=record.outcome,
        reason=record.reason, message=record.message[:1024],
        size_bytes=verdict.backup.size_bytes if verdict.backup else None,
    )
    history = [a for a in status.history if a.job_name != record.name] + [attempt]
    history.sort(key=lambda a: (a.time, a.job_name), reverse=True)
    update: dict[str, Any] = {"history": history[:HISTORY_LIMIT]}
    newest = status.last_backup
    if verdict.backup and (newest is None or verdict.backup.time >= newest.time):
        update["last_backup"] = verdict.backup
    return status.model_copy(update=update)


def _record_restore_test(status: BackupPolicyStatus, verdict: RunVerdict) -> BackupPolicyStatus:
    record = verdict.record
    test = verdict.restore or RestoreTestRecord(
        time=record.finished_at, job_name=record.name, outcome=record.outcome,
        message=f"{record.reason}: {record.message}".strip(": ")[:1024],
    )
    previous = status.last_verified_backup
    if previous is not None and (previous.time, previous.job_name) > (test.time, test.job_name):
        return status
    ok = test.outcome == "Succeeded"
    conditions = set_condition(
        status.conditions, VERIFIED_CONDITION, "True" if ok else "False",
        "RestoreSucceeded" if ok else "RestoreFailed",
        (f"restored {test.backup_key} in {test.duration_seconds:.1f}s" if ok else test.message),
        test.time, None,
    )
    return status.model_copy(update={"last_verified_backup": test, "conditions": conditions})


def _source(policy: str, namespace: str) -> Source:
    return Source(kind=BackupPolicy.info.kind, name=policy, namespace=namespace)


def run_notification(policy: str, namespace: str, verdict: RunVerdict) -> Notification:
    """What to tell people about a finished run: a failure (one per failed Job: its name is in
    the dedup key) or a success."""
    record = verdict.record
    what = "Restore test" if verdict.operation == "restore-test" else "Backup"
    failed = record.outcome == "Failed"
    details = {"job": record.name, "reason": record.reason or record.outcome}
    if verdict.backup is not None:
        details |= {"location": verdict.backup.location,
                    "sizeBytes": str(verdict.backup.size_bytes)}
    return Notification(
        source=_source(policy, namespace),
        event="failed" if failed else "succeeded",
        severity="high" if failed else "info",
        title=f"{what} {namespace}/{policy} {'failed' if failed else 'succeeded'}",
        summary=(f"{record.reason}: {record.message}" if failed else record.message)[:1024],
        details=details,
        timestamp=record.finished_at,
        dedup_key=fingerprint(BackupPolicy.info.kind, namespace, policy, verdict.operation,
                              record.name),
    )


def rpo_notification(
    policy: str, namespace: str, rpo: RPOEvaluation, now: datetime
) -> Notification:
    """RPO breached (a problem) or met again (all clear), under one dedup key per policy so
    an incident tool resolves what it opened."""
    return Notification(
        source=_source(policy, namespace),
        event="resolved" if rpo.met else "breached",
        severity="info" if rpo.met else "critical",
        title=f"Backup RPO {'met again' if rpo.met else 'breached'} for {namespace}/{policy}",
        summary=rpo.message,
        details={"deadline": rpo.deadline.isoformat()},
        timestamp=now,
        started_at=rpo.breached_since,
        dedup_key=fingerprint(BackupPolicy.info.kind, namespace, policy, "rpo"),
    )


def log_notifications(
    status: BackupPolicyStatus, notification: Notification, outcomes: list[DeliveryRecord]
) -> BackupPolicyStatus:
    entries = [
        NotificationLogEntry(time=o.time, event=notification.event, channel=o.channel,
                             result=o.result, message=o.message[:1024])
        for o in outcomes
    ]
    merged = sorted(entries + status.notifications, key=lambda e: e.time, reverse=True)
    return status.model_copy(update={"notifications": merged[:NOTIFICATION_LOG_LIMIT]})
