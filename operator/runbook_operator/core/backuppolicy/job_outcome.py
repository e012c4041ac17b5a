"""What a finished backup or restore-test Job means, and how it folds into status.

A runner Job proves something only through the result its runner reported in the container's
termination message; `runner_message` is the one reader of it, for the operator and the
kubectl plugin alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook_operator.api.backuppolicy import (
    HISTORY_LIMIT,
    BackupAttempt,
    BackupPolicyStatus,
    BackupRecord,
    JobRecord,
    RestoreTestRecord,
)
from runbook_operator.core.backuppolicy.names import OPERATION_LABEL, RUNNER_CONTAINER, RUNNER_LABEL
from runbook_operator.core.conditions import set_condition
from runbook_operator.runner.results import BackupResult, RestoreResult, RunResult

VERIFIED_CONDITION = "Verified"
PRUNED_KEYS_KEPT = 10


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def runner_message(pods: Iterable[dict[str, Any]]) -> str | None:
    """The termination message of the newest finished runner container among a Job's pods
    (a Job that retried has several), or None while none has finished or it left none."""
    finished = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if container.get("name") == RUNNER_CONTAINER and terminated:
                finished.append((terminated.get("finishedAt") or "", terminated.get("message")))
    return max(finished)[1] if finished else None


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
        key_id=result.key_id, duration_seconds=result.duration_seconds,
        verified=result.verified, pruned_count=result.pruned_count,
        pruned=result.pruned[:PRUNED_KEYS_KEPT], prune_dry_run=result.prune_dry_run,
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
        key_id=verdict.backup.key_id if verdict.backup else None,
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
