"""Notification planning for every kind that notifies: what is due now — new, repeat,
escalated, resolved — per subject and channel, deduplicated against the records kept in status.

A subject is what a notification is about, identified by a fingerprint: an alert instance
today, an Incident next. Per subject and channel, a problem is sent once per episode, again
after the channel's repeatInterval while it lasts, and again when escalation reaches a further
step; once the subject is no longer a problem, a resolved notification follows a sent problem
unless the channel has sendResolved: false. A failed delivery counts as sent (the channel
already retried), so a receiver that refuses is not hammered on every evaluation.

Planning is per subject and channel on purpose: the records stay per subject, so restarts and
partial resolves deduplicate exactly. Grouping is how the due items are sent (`batches`): a
channel that sends a group as one message (Alertmanager's webhook) gets, whenever any subject
is due on it, one message with every subject currently a problem on it ("grouped") and those
just resolved, and each of them is recorded as sent. So the group is re-sent once per
repeatInterval as a whole, as Alertmanager's repeat_interval does, and a partial resolve is
one message in which the other subjects still fire.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from runbook_operator.api.common import DeliveryResultValue, NotificationRecord

RESOLVED = "resolved"
Reason = Literal["new", "repeat", "escalated", "resolved", "grouped"]


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True)
class Batch:
    """What one channel hears now: the subjects due on it, and its other current problems,
    which a channel that sends a group as one message sends along (reason "grouped")."""

    channel: str
    due: tuple[Due, ...]
    along: tuple[Due, ...]


def batches(due: Sequence[Due], subjects: Sequence[Subject]) -> list[Batch]:
    """The due notifications by channel (in the order of their first due item), each with the
    channel's other current problems, in subject order."""
    by_channel: dict[str, list[Due]] = {}
    for item in due:
        by_channel.setdefault(item.channel, []).append(item)
    result = []
    for channel, items in by_channel.items():
        told = {item.fingerprint for item in items}
        along = tuple(
            Due(s.fingerprint, channel, s.problem.event, s.problem.severity, s.problem.step,
                "grouped")
            for s in subjects
            if s.problem is not None and channel in s.problem.channels
            and s.fingerprint not in told
        )
        result.append(Batch(channel, tuple(items), along))
    return result


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


def next_repeat(subjects: Sequence[Subject], channels: Mapping[str, ChannelRule],
                log: Sequence[NotificationRecord]) -> datetime | None:
    """When the first current problem already told on a channel is due there again by the
    channel's repeatInterval, time passing and nothing else changing (None: no problem has
    been told)."""
    newest = newest_records(log)
    told = [(s.fingerprint, name) for s in subjects if s.problem is not None
            for name in s.problem.channels]
    return min((newest[key].time + channels[key[1]].repeat_interval
                for key in told if key in newest), default=None)


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
