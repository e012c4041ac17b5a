"""PagerDuty Events API v2: trigger, acknowledge and resolve alerts under a stable `dedup_key`,
so a retried or repeated event updates one PagerDuty alert instead of opening another."""

from __future__ import annotations

from typing import Any

from runbook_operator.api.notificationchannel import PagerDutyChannel
from runbook_operator.core.delivery import MAX_DEDUP_KEY, Notification, rfc3339, truncate

SUMMARY_LIMIT = 1024
_ACTIONS = {"problem": "trigger", "acknowledged": "acknowledge", "clear": "resolve"}


def summary(notification: Notification) -> str:
    text = notification.title
    if notification.summary:
        text = f"{text}: {notification.summary}"
    return truncate(text, SUMMARY_LIMIT)


def render_pagerduty(
    spec: PagerDutyChannel, notification: Notification, routing_key: str
) -> dict[str, Any]:
    """The Events v2 body. Acknowledge and resolve carry only the key fields, as documented;
    a trigger carries the payload and links."""
    n = notification
    action = _ACTIONS[n.phase]
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.dedup_key[:MAX_DEDUP_KEY],
    }
    if action != "trigger":
        return body
    custom_details: dict[str, Any] = {**n.details, "event": n.event, "severity": n.severity}
    if n.labels:
        custom_details["labels"] = n.labels
    body["payload"] = {
        "summary": summary(n),
        "source": f"{n.source.namespace}/{n.source.name}",
        "severity": getattr(spec.severity_mapping, n.severity),
        "timestamp": rfc3339(n.timestamp),
        "component": n.source.name,
        "group": n.source.namespace,
        "class": n.source.kind,
        "custom_details": custom_details,
    }
    body["links"] = [{"href": link.href, "text": link.text or link.href} for link in n.links]
    return body
