"""A CanaryRollout's kstatus conditions, from its phase: `Ready` once the primary runs the
target's revision and has every request; `Reconciling` while a rollout, a rollback or
initialization is under way (reason WaitingForBackup or BackupPolicyNotFound while the first
step waits for spec.backupBefore's backup); `Stalled` after a rollback (nothing moves until
the target changes or `retry`) or while something only a person can fix stands in the way."""

from __future__ import annotations

from datetime import datetime

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, RouterStatus, Verified
from runbook_operator.core.canary.backup import current
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome

_RECONCILING = {
    "Initializing": "Initializing", "Progressing": "Progressing", "Paused": "Paused",
    "WaitingPromotion": "WaitingPromotion", "Promoting": "Promoting",
    "Finalising": "Finalising",
}


#: Reasons while a rollout waits for spec.backupBefore's backup, by the backup's state.
_BACKUP_WAIT = {"Requested": "WaitingForBackup", "PolicyNotFound": "BackupPolicyNotFound"}


def outcome(status: CanaryRolloutStatus) -> Outcome:
    phase, message = status.phase, status.message
    backup = current(status.backup, status.rollout_started_at)
    if phase == "Progressing" and status.step_index == 0 and backup is not None \
            and backup.state in _BACKUP_WAIT:
        return Outcome(Phase.RECONCILING, _BACKUP_WAIT[backup.state], message)
    if phase in _RECONCILING:
        return Outcome(Phase.RECONCILING, _RECONCILING[phase], message)
    if phase == "Failed":
        rollback = status.rollback
        if rollback is not None and rollback.completed_at is None:
            return Outcome(Phase.RECONCILING, "RollingBack", message)
        return Outcome(Phase.STALLED, "RolledBack", message)
    if phase == "Succeeded":
        return Outcome(Phase.READY, "Promoted", message)
    return Outcome(Phase.READY, "Initialized", message)


def with_conditions(status: CanaryRolloutStatus, now: datetime,
                    generation: int | None) -> CanaryRolloutStatus:
    """`status` with its conditions and observedGeneration for what its phase says."""
    conditions = apply_outcome(status.conditions, outcome(status), now, generation)
    return status.model_copy(update={"conditions": conditions,
                                     "observed_generation": generation})


def stalled(status: CanaryRolloutStatus, reason: str, message: str, now: datetime,
            generation: int | None) -> CanaryRolloutStatus:
    """`status` Stalled for a reason outside the state machine (an invalid spec, a missing
    target, a router that cannot work), everything else kept."""
    conditions = apply_outcome(status.conditions, Outcome(Phase.STALLED, reason, message),
                               now, generation)
    return status.model_copy(update={"conditions": conditions, "observed_generation":
                                     generation, "message": message[:1024]})


def confirmed_at(previous: RouterStatus | None, weight: int, verified: Verified,
                 read_at: datetime) -> datetime | None:
    """When the router first read back `weight`: kept from `previous` while it still carries
    that weight, `read_at` when it first does, absent while it does not."""
    if verified != "Yes":
        return None
    if previous is not None and previous.weight == weight and previous.confirmed_at is not None:
        return previous.confirmed_at
    return read_at
