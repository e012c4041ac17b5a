"""What a CanaryRollout tells its NotificationChannels, once per revision and event: due
notifications derive from status (a rollback of revision R, a promotion of R), less those
already recorded in status.notifications, so a restarted operator neither repeats nor loses
one. Records of deliveries whose status write failed are carried onto the fresh status
(`sent_between`, `kept`), so a conflicting write neither loses nor repeats one either."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.canaryrollout import (
    NOTIFICATION_LOG_LIMIT,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    NotifiedEvent,
)
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.delivery import Event, Notification, Source, fingerprint

KIND = "CanaryRollout"
_DELIVERY_EVENTS: dict[NotifiedEvent, Event] = {
    "Started": "progressing", "Paused": "progressing", "WaitingPromotion": "progressing",
    "Promoted": "succeeded", "RolledBack": "failed",
}


def subject(namespace: str, name: str, revision: str) -> str:
    """What a rollout's notifications are about: one revision of one CanaryRollout."""
    return f"{namespace}/{name}@{revision}"


def happened(status: CanaryRolloutStatus) -> list[NotifiedEvent]:
    """The events the status shows for its revision."""
    events: list[NotifiedEvent] = []
    if status.revision is None or status.phase in (None, "Initializing", "Initialized"):
        return events
    if status.rollout_started_at is not None:
        events.append("Started")
    if status.paused_at is not None:
        events.append("Paused")
    if status.phase == "WaitingPromotion":
        events.append("WaitingPromotion")
    if status.phase == "Succeeded":
        events.append("Promoted")
    if status.phase == "Failed" and status.rollback is not None:
        events.append("RolledBack")
    return events


def _notification(name: str, namespace: str, status: CanaryRolloutStatus,
                  event: NotifiedEvent, now: datetime) -> Notification:
    revision = status.revision or ""
    details = {"revision": revision, "phase": status.phase or "", "weight": str(status.weight),
               "step": status.step, "failedChecks": str(status.failed_checks)}
    summary = status.message
    if event == "RolledBack" and status.rollback is not None:
        summary = f"{status.rollback.reason}: {status.rollback.message}"
        failing = [m for m in status.measurements
                   if m.revision == revision and m.verdict == "Fail"][:5]
        details.update({f"measurement {i + 1}": f"{m.metric} = {m.value} ({m.message}) at "
                        f"{m.time.isoformat()}" for i, m in enumerate(failing)})
    severity = "critical" if event == "RolledBack" else "info"
    titles = {"Started": "rollout started", "Paused": "rollout paused",
              "WaitingPromotion": "rollout waiting for promotion",
              "Promoted": "revision promoted", "RolledBack": "rolled back"}
    return Notification(
        source=Source(kind=KIND, name=name, namespace=namespace),
        event=_DELIVERY_EVENTS[event], severity=severity,
        title=f"{namespace}/{name}: {titles[event]} ({revision})", summary=summary,
        details=details, timestamp=now,
        dedup_key=fingerprint(KIND, namespace, name, revision,
                              "rollout" if event in ("Promoted", "RolledBack") else event))


@dataclass(frozen=True)
class Due:
    """A notification to send, and the event it records."""

    event: NotifiedEvent
    notification: Notification
    channels: list[str]


def due(spec: CanaryRolloutSpec, name: str, namespace: str, status: CanaryRolloutStatus,
        now: datetime) -> list[Due]:
    """Notifications the status calls for that were not sent yet."""
    wanted = spec.notifications
    if wanted is None or status.revision is None:
        return []
    about = subject(namespace, name, status.revision)
    sent = {r.event for r in status.notifications if r.fingerprint == about}
    return [Due(event, _notification(name, namespace, status, event, now), list(wanted.channels))
            for event in happened(status) if event in wanted.events and event not in sent]


def record(status: CanaryRolloutStatus, namespace: str, name: str, event: NotifiedEvent,
           outcomes: Sequence[NotificationRecord]) -> CanaryRolloutStatus:
    """Status with the deliveries of one due notification in its log, under the rollout's
    subject and event (newest first, capped)."""
    about = subject(namespace, name, status.revision or "")
    entries = [r.model_copy(update={"fingerprint": about, "event": event}) for r in outcomes]
    return _logged(status, entries)


def _logged(status: CanaryRolloutStatus,
            entries: Sequence[NotificationRecord]) -> CanaryRolloutStatus:
    merged = sorted([*entries, *status.notifications], key=lambda r: r.time, reverse=True)
    return status.model_copy(update={"notifications": merged[:NOTIFICATION_LOG_LIMIT]})


def sent_between(old: CanaryRolloutStatus,
                 new: CanaryRolloutStatus) -> list[NotificationRecord]:
    """The delivery records `new` holds that `old` did not: what a tick sent."""
    before = [r.to_wire() for r in old.notifications]
    return [r for r in new.notifications if r.to_wire() not in before]


def kept(fresh: CanaryRolloutStatus, sent: Sequence[NotificationRecord]) -> CanaryRolloutStatus:
    """`fresh` (the status someone else wrote meanwhile) with the deliveries `sent` that it
    does not hold yet: they happened, whatever the rollout's revision is now; a record an
    earlier, seemingly failed write did store is not added twice."""
    held = [r.to_wire() for r in fresh.notifications]
    missing = [r for r in sent if r.to_wire() not in held]
    return _logged(fresh, missing) if missing else fresh
