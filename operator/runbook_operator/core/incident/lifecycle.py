"""What people changed in an Incident's spec, as status and timeline: the lifecycle phase,
opening, resolution and reopening, acknowledgement, severity, commander and notes, with MTTA and
MTTR. Pure: the spec, the status as last written, and `now`.

The status remembers what was last recorded (phase, severity, commander, notes counted, who
acknowledged), so each change becomes exactly one timeline entry however often the incident is
reconciled, and a restarted operator adds none twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.incident import (
    Acknowledgement,
    IncidentSpec,
    IncidentStatus,
    TimelineEntry,
)

RESOLVED = "Resolved"


@dataclass(frozen=True)
class Observed:
    """The status after recording the spec's changes, and what changed."""

    status: IncidentStatus
    entries: tuple[TimelineEntry, ...]
    resolved_now: bool
    """The incident became resolved in this observation."""
    reopened: bool
    acknowledged_now: bool
    withdrawn_by: str | None
    """Who acknowledged, when that acknowledgement is gone from the spec."""
    severity_before: str | None


def effective_acknowledgement(spec: IncidentSpec,
                              status: IncidentStatus) -> Acknowledgement | None:
    """The acknowledgement that stops escalation: the spec's, unless it is the one whose
    ackTimeout already re-triggered the incident."""
    ack = spec.acknowledgement
    expired = status.escalation.expired_acknowledgement if status.escalation else None
    return None if ack is None or ack == expired else ack


def seconds_between(start: datetime, end: datetime) -> float:
    """Non-negative seconds (an acknowledgement stamped by a clock behind ours counts 0)."""
    return max(0.0, round((end - start).total_seconds(), 3))


def resolution(spec: IncidentSpec, status: IncidentStatus, now: datetime) -> datetime | None:
    """When the incident counts as resolved, if it does: people resolved it (now, when first
    seen), or its source recovered and spec.resolveWhenSourceRecovers."""
    if spec.status == RESOLVED:
        return now
    if spec.resolve_when_source_recovers and status.source_recovered_at is not None:
        return status.source_recovered_at
    return None


def _opened(spec: IncidentSpec, at: datetime) -> TimelineEntry:
    source = spec.source
    origin = f" by {source.kind} {source.name}".rstrip() if source else " by hand"
    return TimelineEntry(time=at, event="Opened",
                         message=f"opened{origin}: [{spec.severity}] {spec.title}"[:1024])


def observe(spec: IncidentSpec, status: IncidentStatus, created: datetime,
            now: datetime) -> Observed:
    """Record the spec's changes since the status was last written."""
    entries: list[TimelineEntry] = []
    update: dict[str, object] = {}
    opened_at = status.opened_at or created
    if status.opened_at is None:
        update["opened_at"] = opened_at
        if not any(e.event == "Opened" for e in status.timeline):
            entries.append(_opened(spec, opened_at))

    severity_before = status.severity
    if status.severity != spec.severity:
        update["severity"] = spec.severity
        if severity_before is not None:
            entries.append(TimelineEntry(
                time=now, event="SeverityChanged",
                message=f"severity {severity_before} → {spec.severity}"))

    if spec.commander != status.commander:
        update["commander"] = spec.commander
        message = (f"commander: {spec.commander}" if spec.commander else "no commander")
        if status.commander:
            message += f" (was {status.commander})"
        entries.append(TimelineEntry(time=now, event="Assigned", message=message))

    new_notes = spec.notes[status.notes_recorded:]
    entries += [TimelineEntry(time=note.at, event="NoteAdded", by=note.by,
                              message=note.text[:1024]) for note in new_notes]
    if len(spec.notes) != status.notes_recorded:
        update["notes_recorded"] = len(spec.notes)

    resolved_at = resolution(spec, status, now)
    phase = RESOLVED if resolved_at is not None else spec.status
    was_resolved = status.phase == RESOLVED
    resolved_now = phase == RESOLVED and not was_resolved
    reopened = was_resolved and phase != RESOLVED
    if phase != status.phase:
        update["phase"] = phase
    if resolved_now:
        assert resolved_at is not None
        update["resolved_at"] = resolved_at
        update["mttr_seconds"] = seconds_between(opened_at, resolved_at)
        recovered = spec.status != RESOLVED
        entries.append(TimelineEntry(
            time=resolved_at, event="Resolved",
            message="resolved: the source recovered" if recovered else "resolved"))
    elif reopened:
        update["resolved_at"] = None
        update["mttr_seconds"] = None
        entries.append(TimelineEntry(time=now, event="Reopened", message=f"reopened: {phase}"))
    elif status.phase is not None and phase != status.phase:
        entries.append(TimelineEntry(time=now, event="StatusChanged",
                                     message=f"{status.phase} → {phase}"))

    ack = effective_acknowledgement(spec, status)
    acknowledged_now = ack is not None and (ack.at, ack.by) != (
        status.acknowledged_at, status.acknowledged_by)
    withdrawn_by = status.acknowledged_by if ack is None else None
    if acknowledged_now:
        assert ack is not None
        update["acknowledged_at"] = ack.at
        update["acknowledged_by"] = ack.by
        if status.mtta_seconds is None:
            update["mtta_seconds"] = seconds_between(opened_at, ack.at)
        entries.append(TimelineEntry(time=ack.at, event="Acknowledged", by=ack.by,
                                     message=f"acknowledged by {ack.by}"))
    elif withdrawn_by is not None:
        update["acknowledged_at"] = None
        update["acknowledged_by"] = None

    return Observed(
        status=status.model_copy(update=update),
        entries=tuple(entries),
        resolved_now=resolved_now,
        reopened=reopened,
        acknowledged_now=acknowledged_now,
        withdrawn_by=withdrawn_by,
        severity_before=severity_before,
    )
