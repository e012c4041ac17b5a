"""Recovery point objective: is the newest good backup recent enough, and when to look again.

Evaluated from times stored in status and an explicit `now`, so a timer flags a breach even
when no Job runs (suspended CronJob, broken controller), and a restart neither loses nor
repeats the breach notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class RPOEvaluation:
    met: bool
    deadline: datetime
    """When the objective is (or was) breached if no newer backup succeeds."""
    breached_since: datetime | None
    notify: bool
    """True exactly once per breach: the first evaluation that finds it not yet notified."""
    message: str


def evaluate(
    rpo: timedelta,
    last_success: datetime | None,
    created: datetime,
    breach_notified_at: datetime | None,
    now: datetime,
) -> RPOEvaluation:
    """Compare the age of the newest successful backup with the objective.

    Messages name times, not ages, so status does not change (and is not rewritten) on every
    evaluation. Before the first success the policy's creation time is the reference, so a new
    policy gets one RPO of grace instead of being in breach at once. A breach is notified once:
    a later evaluation sees `breach_notified_at` at or after the breach start and stays quiet;
    a new success ends the breach, and the next breach is notified again.
    """
    reference = last_success or created
    deadline = reference + rpo
    newest = (
        f"the newest good backup finished at {_stamp(last_success)}"
        if last_success is not None
        else f"no successful backup since the policy was created at {_stamp(created)}"
    )
    if now < deadline:
        return RPOEvaluation(
            True, deadline, None, False, f"RPO {_age(rpo)} met until {_stamp(deadline)}: {newest}"
        )
    already = breach_notified_at is not None and breach_notified_at >= deadline
    return RPOEvaluation(
        False, deadline, deadline, not already,
        f"RPO {_age(rpo)} breached since {_stamp(deadline)}: {newest}",
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(delta: timedelta) -> str:
    """`1d2h`, `5m30s`, `12s`: the two largest units, as people read ages."""
    remaining = max(0, int(delta.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size or (unit == "s" and not parts):
            value, remaining = divmod(remaining, size)
            parts.append(f"{value}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts)
