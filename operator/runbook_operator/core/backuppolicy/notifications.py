"""Who hears about a BackupPolicy, about what, and the log of what was sent.

Runs are notified once per Job (the first time it is recorded); an RPO breach once per breach,
and its end as an all-clear under the same dedup key, so an incident tool resolves what it
opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.backuppolicy import (
    NOTIFICATION_LOG_LIMIT,
    BackupPolicy,
    BackupPolicySpec,
    BackupPolicyStatus,
)
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.backuppolicy.job_outcome import RunVerdict, record_run
from runbook_operator.core.backuppolicy.rpo import RPOEvaluation
from runbook_operator.core.delivery import Notification, Source, fingerprint

KIND = BackupPolicy.info.kind
#: A notification and the final delivery record of each channel it went to.
Sent = tuple[Notification, list[NotificationRecord]]


@dataclass(frozen=True)
class Planned:
    """A notification to send, and the NotificationChannels (by name) to send it through."""

    notification: Notification
    channels: list[str]


def _source(policy: str, namespace: str) -> Source:
    return Source(kind=KIND, name=policy, namespace=namespace)


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
        dedup_key=fingerprint(KIND, namespace, policy, verdict.operation, record.name),
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
        dedup_key=fingerprint(KIND, namespace, policy, "rpo"),
    )


def plan_run_notification(
    spec: BackupPolicySpec | None, policy: str, namespace: str, verdict: RunVerdict,
    status: BackupPolicyStatus,
) -> Planned | None:
    """A finished run is told once, when it first changes `status` (a replayed Job event
    changes nothing): failures when `onFailure`, successes when `onSuccess`. Without a valid
    spec nobody is known to tell."""
    wanted = spec.notifications if spec is not None else None
    if wanted is None or not wanted.channels or record_run(status, verdict) == status:
        return None
    failed = verdict.record.outcome == "Failed"
    if not (wanted.on_failure if failed else wanted.on_success):
        return None
    return Planned(run_notification(policy, namespace, verdict), list(wanted.channels))


def plan_rpo_notification(
    spec: BackupPolicySpec, policy: str, namespace: str, rpo: RPOEvaluation | None,
    was_met: bool | None, now: datetime,
) -> Planned | None:
    """A breach once (`rpo.notify`), and the all-clear when a breach ends (`was_met` is the
    RPOMet condition before this evaluation, None when there was none), when `onRPOBreach`."""
    if rpo is None:
        return None
    recovered = rpo.met and was_met is False
    wanted = spec.notifications
    if not (rpo.notify or recovered) or wanted is None or not wanted.channels:
        return None
    if not wanted.on_rpo_breach:
        return None
    return Planned(rpo_notification(policy, namespace, rpo, now), list(wanted.channels))


def log_notifications(status: BackupPolicyStatus, sent: Sequence[Sent]) -> BackupPolicyStatus:
    """Status with every delivery of `sent` in its notification log: newest first, capped."""
    entries = [outcome for _, outcomes in sent for outcome in outcomes]
    if not entries:
        return status
    merged = sorted(entries + status.notifications, key=lambda e: e.time, reverse=True)
    return status.model_copy(update={"notifications": merged[:NOTIFICATION_LOG_LIMIT]})
