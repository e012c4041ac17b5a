"""The message an incident sends for one delivery, whatever the channel: every page names the
incident, the level, the severity, who is on call, and the commands that acknowledge and resolve
it. All messages about one incident share one dedup key, so PagerDuty triggers, acknowledges and
resolves one alert, and email threads them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.incident import IncidentSpec, IncidentStatus
from runbook_operator.api.notificationchannel import Severity
from runbook_operator.core.delivery import Notification, Source, fingerprint, rfc3339
from runbook_operator.core.incident.notifications import Delivery

KIND = "Incident"
#: The runbooks' P0–P3 in the severities channels know (PagerDuty critical … warning).
SEVERITIES: dict[str, Severity] = {"P0": "critical", "P1": "high", "P2": "medium", "P3": "low"}


@dataclass(frozen=True)
class IncidentRef:
    """Which incident: its namespace, name and uid (a new incident of the same name is
    another incident)."""

    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> tuple[str, str]:
        """The scheduler's key: namespace and name."""
        return self.namespace, self.name

    @property
    def dedup_key(self) -> str:
        return fingerprint(KIND, self.namespace, self.name, self.uid)

    def command(self, verb: str) -> str:
        return f"kubectl runbook incident {verb} {self.name} -n {self.namespace}"


def _on_call(delivery: Delivery) -> str | None:
    page = delivery.page
    if page is None or page.rotation is None:
        return None
    if page.on_call is None:
        return f"nobody yet (rotation {page.rotation} has not started)"
    return (f"{page.on_call.member.name} (rotation {page.rotation}, until "
            f"{rfc3339(page.on_call.until)})")


def notification_for(ref: IncidentRef, spec: IncidentSpec, status: IncidentStatus,
                     delivery: Delivery, now: datetime) -> Notification:
    """The message for one delivery."""
    page = delivery.page
    details = {"incident": f"{ref.namespace}/{ref.name}", "incident severity": spec.severity,
               "status": status.phase or spec.status}
    if page is not None:
        repeat = f", pass {page.loop + 1}" if page.loop else ""
        details["level"] = f"L{page.level} of {page.levels} (step {page.step}{repeat})"
    on_call = _on_call(delivery)
    if on_call is not None:
        details["on call"] = on_call
    if spec.commander:
        details["commander"] = spec.commander
    if status.acknowledged_by and delivery.event != "resolved":
        details["acknowledged by"] = status.acknowledged_by
    if delivery.event in ("opened", "escalated"):
        details["acknowledge"] = ref.command("ack")
    if delivery.event != "resolved":
        details["resolve"] = ref.command("resolve")
    if spec.impact is not None and spec.impact.summary:
        details["impact"] = spec.impact.summary
    level = f" at L{page.level}" if page is not None else ""
    who = f", on call: {on_call}" if on_call else ""
    summary = f"Incident {ref.namespace}/{ref.name} {delivery.event}{level}{who}."
    if delivery.event in ("opened", "escalated"):
        summary += f" Acknowledge: {ref.command('ack')}"
    return Notification(
        source=Source(kind=KIND, name=ref.name, namespace=ref.namespace),
        event=delivery.event,
        severity=SEVERITIES[spec.severity],
        title=f"[{spec.severity}] {spec.title}",
        summary=summary[:1024],
        details=details,
        labels={"incident": ref.name, "severity": spec.severity},
        timestamp=now,
        started_at=status.opened_at or now,
        dedup_key=ref.dedup_key,
    )
