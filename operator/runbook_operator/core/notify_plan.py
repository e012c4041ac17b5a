"""Notification planning for every kind that notifies: what is due now — new, repeat,
escalated, resolved — per subject and channel, deduplicated against the records kept in status.

A subject is what a notification is about, identified by a fingerprint: an alert instance
today, an Incident next. Per subject and channel, a problem is sent once per episode, again
after the channel's repeatInterval while it lasts, and again when escalation reaches a further
step; once the subject is no longer a problem, a resolved notification follows a sent problem
unless the channel has sendResolved: false. A failed delivery counts as sent (the channel
already retried), so a receiver that refuses is not hammered on every evaluation.

Planning is per subject and channel on purpose: grouping several subjects into one message per
channel (as Alertmanager groups alerts) is a matter of how the due items are sent, while the
records stay per subject, so restarts and partial resolves deduplicate exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from runbook_operator.api.common import DeliveryResultValue, NotificationRecord

RESOLVED = "resolved"
Reason = Literal["new", "repeat", "escalated", "resolved"]


@dataclass(frozen=True)
class ChannelRule:
    """A channel by name with its timing (an AlertRule's spec.channels[])."""

    name: str
    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True


@dataclass(frozen=True)
class Problem:
    """What a subject is notified about now, and to whom."""

    event: str
    """What is sent (firing, error, ...); a change of event is a new episode."""
    since: datetime
    """When this episode began: records older than that belong to an earlier one."""
    severity: str
    channels: tuple[str, ...]
    """Names of the channels that hear about it now (escalation may have added some)."""
    step: int = 0
    """Escalation steps reached: a channel told at a lower step is told again."""


@dataclass(frozen=True)
class Subject:
    """One thing notified about; without a problem, it is resolved if it was notified."""

    fingerprint: str
    problem: Problem | None = None


@dataclass(frozen=True)
class Due:
    """One notification to send now."""

    fingerprint: str
    channel: str
    event: str
    severity: str
    level: int
    reason: Reason


def newest_records(
    log: Sequence[NotificationRecord],
) -> dict[tuple[str, str], NotificationRecord]:
    """The newest record per (subject, channel)."""
    newest: dict[tuple[str, str], NotificationRecord] = {}
    for record in log:
        key = (record.fingerprint, record.channel)
        if key not in newest or record.time >= newest[key].time:
            newest[key] = record
    return newest


def plan(
    subjects: Sequence[Subject],
    channels: Mapping[str, ChannelRule],
    log: Sequence[NotificationRecord],
    now: datetime,
) -> list[Due]:
    """Every notification to send now (see the module docstring), subject by subject in the
    order given. `channels` holds every channel a subject may have been told through, by name:
    a resolved notification goes only to channels still in it."""
    by_subject: dict[str, list[NotificationRecord]] = {}
    for (fingerprint, _), record in sorted(newest_records(log).items()):
        by_subject.setdefault(fingerprint, []).append(record)
    due: list[Due] = []
    for subject in subjects:
        fingerprint, problem = subject.fingerprint, subject.problem
        records = by_subject.get(fingerprint, [])
        if problem is None:
            for record in records:
                rule = channels.get(record.channel)
                if record.event != RESOLVED and rule is not None and rule.send_resolved:
                    due.append(Due(fingerprint, record.channel, RESOLVED, record.severity, 0,
                                   "resolved"))
            continue
        last_by_channel = {r.channel: r for r in records}
        for name in problem.channels:
            last = last_by_channel.get(name)
            reason: Reason | None = None
            if last is None or last.event != problem.event or last.time < problem.since:
                reason = "new"
            elif last.level < problem.step:
                reason = "escalated"
            elif now - last.time >= channels[name].repeat_interval:
                reason = "repeat"
            if reason is not None:
                due.append(Due(fingerprint, name, problem.event, problem.severity,
                               problem.step, reason))
    return due


def sent_record(due: Due, result: DeliveryResultValue, now: datetime) -> NotificationRecord:
    """The record of delivering `due`. Stamp it with the evaluation's `now`, so that it is
    never later than the start of a following episode."""
    return NotificationRecord(time=now, channel=due.channel, fingerprint=due.fingerprint,
                              event=due.event, severity=due.severity, level=due.level,
                              result=result)


def record(
    log: Sequence[NotificationRecord],
    sent: Sequence[NotificationRecord],
    current: Collection[str],
    limit: int,
) -> list[NotificationRecord]:
    """The log after sending: the newest record per (subject, channel), for the `current`
    subjects only, newest first. Problem records go first when capping, because only they are
    needed to deduplicate and to plan the resolved notification."""
    kept = [r for (fp, _), r in newest_records([*log, *sent]).items() if fp in current]
    kept.sort(key=lambda r: (r.event == RESOLVED, -r.time.timestamp(), r.channel))
    return sorted(kept[:limit], key=lambda r: (-r.time.timestamp(), r.fingerprint, r.channel))
