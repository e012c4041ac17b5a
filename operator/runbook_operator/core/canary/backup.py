"""spec.backupBefore: a BackupPolicy's backup runs before a revision's first weight shift.

The rollout asks for the backup the way `kubectl runbook backup now` does, through the
policy's `runbook.dev/backup-now` annotation, with a token derived from the rollout (its name,
revision and start, all in status before the request), so a restarted operator asks with the
same token — the policy runs one Job per token — and a newer revision asks again. The Job's
name derives from the token, so the run made for the request is found in the policy's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from runbook_operator.api.canaryrollout import BackupWait, CanaryRolloutSpec, CanaryRolloutStatus
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION, on_demand_job_name


@dataclass(frozen=True)
class BackupSeen:
    """What the policy says about this rollout's request."""

    token: str
    found: bool
    """The policy exists."""
    acknowledged: bool = False
    """The policy acted on the request (created its Job)."""
    outcome: Literal["Succeeded", "Failed"] | None = None
    """How the request's run ended (None: not finished)."""
    message: str = ""


def current(record: BackupWait | None, started: datetime | None) -> BackupWait | None:
    """The backup of the rollout that started at `started` (None: none yet, or an earlier
    rollout's)."""
    if record is None or started is None or record.since < started:
        return None
    return record


def waiting(spec: CanaryRolloutSpec, status: CanaryRolloutStatus) -> bool:
    """Whether the rollout waits for its backup now (so whether to look at the policy): at
    its first step, not paused, its backup not yet over."""
    if spec.backup_before is None or status.phase != "Progressing" \
            or status.paused_at is not None or status.step_index != 0:
        return False
    record = current(status.backup, status.rollout_started_at)
    return record is None or record.state in ("PolicyNotFound", "Requested")


def token(name: str, status: CanaryRolloutStatus) -> str:
    """The backup-now token of this rollout: one per rollout name, revision and start."""
    started = status.rollout_started_at
    when = started.strftime("%Y%m%dT%H%M%S.%fZ") if started else "unstarted"
    return f"canary-{name}-{status.revision}-{when}"


def seen(name: str, status: CanaryRolloutStatus, policy: Mapping[str, Any] | None
         ) -> BackupSeen:
    """The policy's answer to this rollout's request, read from its status."""
    asked = token(name, status)
    if policy is None:
        return BackupSeen(asked, found=False)
    policy_status = policy.get("status") or {}
    job = on_demand_job_name(policy["metadata"]["name"], asked)
    attempt = next((a for a in policy_status.get("history") or []
                    if a.get("jobName") == job), None)
    acknowledged = policy_status.get("backupNowToken") == asked
    if attempt is None:
        return BackupSeen(asked, True, acknowledged, message=f"Job {job}")
    why = ": ".join(p for p in (attempt.get("reason"), attempt.get("message")) if p)
    return BackupSeen(asked, True, True, attempt.get("outcome"),
                      f"Job {job}" + (f" ({why})" if why else ""))


def request_patch(asked: str) -> dict[str, Any]:
    """The merge patch that asks the policy for a backup, touching nothing else."""
    return {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: asked}}}
