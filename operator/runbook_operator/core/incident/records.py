"""The parts of an Incident's status that grow, kept bounded: the timeline (newest entries in
status, the count of all) and the source's alerts (merged by fingerprint, the excess counted);
and what a source reports about itself. Pure functions shared by everything that writes an
Incident's status: its controller, the sources that open incidents, and the Alertmanager
receiver.

The Incident controller owns the lifecycle (phase, resolution, escalation); a source writes
only its alerts, its timeline entries and `sourceRecoveredAt` (`source_recovered`,
`source_firing_again`): with `spec.resolveWhenSourceRecovers` the controller resolves the
incident at that time. A source may set `openedAt` and an `Opened` entry when it creates the
incident; the controller adds them otherwise (never twice)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from runbook_operator.api.incident import (
    MAX_ALERTS,
    TIMELINE_LIMIT,
    IncidentAlert,
    IncidentStatus,
    TimelineEntry,
)
from runbook_operator.core.delivery import fingerprint

#: Label on every Incident opened by a source: the hash of its source, so one LIST with a label
#: selector finds the incident open for it (label values hold at most 63 characters).
SOURCE_LABEL = "runbook.dev/source"


def source_label(kind: str, name: str, source_fingerprint: str) -> str:
    """The SOURCE_LABEL value of a source: stable across restarts and processes."""
    return fingerprint(kind, name, source_fingerprint)[:63]


def with_timeline(status: IncidentStatus, entries: Iterable[TimelineEntry],
                  limit: int = TIMELINE_LIMIT) -> IncidentStatus:
    """`status` with `entries` appended in time order: the newest `limit` stay in status,
    `timelineTotal` counts them all (the whole timeline is kept elsewhere)."""
    added = sorted(entries, key=lambda entry: entry.time)
    if not added:
        return status
    timeline = sorted([*status.timeline, *added], key=lambda entry: entry.time)
    return status.model_copy(update={
        "timeline": timeline[-limit:],
        "timeline_total": max(status.timeline_total, len(status.timeline)) + len(added),
    })


def merged_alerts(current: Sequence[IncidentAlert], incoming: Iterable[IncidentAlert],
                  truncated_by_sender: int = 0,
                  limit: int = MAX_ALERTS) -> tuple[list[IncidentAlert], int]:
    """The alerts after a source reported `incoming`: one per fingerprint (the newest report
    wins), firing first, then by fingerprint; at most `limit`, with how many were left out
    (plus what the sender already truncated)."""
    by_fingerprint = {alert.fingerprint: alert for alert in current}
    by_fingerprint.update({alert.fingerprint: alert for alert in incoming})
    ordered = sorted(by_fingerprint.values(),
                     key=lambda alert: (alert.status != "firing", alert.fingerprint))
    return ordered[:limit], max(0, len(ordered) - limit) + truncated_by_sender


def source_recovered(status: IncidentStatus, at: datetime,
                     message: str = "the source recovered") -> IncidentStatus:
    """The source reports recovery at `at`: recorded once (a repeated report changes
    nothing), with a `SourceRecovered` timeline entry."""
    if status.source_recovered_at is not None:
        return status
    recovered = status.model_copy(update={"source_recovered_at": at})
    return with_timeline(recovered, [TimelineEntry(time=at, event="SourceRecovered",
                                                   message=message)])


def source_firing_again(status: IncidentStatus, at: datetime,
                        message: str = "the source fires again") -> IncidentStatus:
    """The source fires again after it reported recovery: the recovery no longer counts (an
    incident already resolved by it stays resolved; a new trigger opens a new incident)."""
    if status.source_recovered_at is None:
        return status
    firing = status.model_copy(update={"source_recovered_at": None})
    return with_timeline(firing, [TimelineEntry(time=at, event="AlertsChanged",
                                                message=message)])
