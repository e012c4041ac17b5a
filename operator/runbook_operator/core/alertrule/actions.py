"""Automated actions of a firing AlertRule: when they may run again, how far a Deployment is
scaled, and the capped log of what ran (the running itself is I/O, in the controller)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from runbook_operator.api.alertrule import ACTION_LOG_LIMIT, ActionRecord


def last_action_at(actions: Sequence[ActionRecord]) -> datetime | None:
    return max((a.time for a in actions), default=None)


def action_due(last_action_at: datetime | None, cooldown: timedelta, now: datetime) -> bool:
    """Whether actions may run again: never run, or the cooldown has passed since the last
    run (successful or not, so a failing action is not retried every tick)."""
    return last_action_at is None or now - last_action_at >= cooldown


def scaled_replicas(current: int, by: int, minimum: int, maximum: int) -> int:
    """Replicas after scaling by `by`, clamped to [minimum, maximum]."""
    return max(minimum, min(maximum, current + by))


def record_actions(
    log: Sequence[ActionRecord], records: Sequence[ActionRecord]
) -> list[ActionRecord]:
    """The action log with `records` added: newest first, capped."""
    merged = sorted([*records, *log], key=lambda a: a.time, reverse=True)
    return merged[:ACTION_LOG_LIMIT]
