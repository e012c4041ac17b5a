"""The message an AlertRule sends for one due notification, independent of the channel."""

from __future__ import annotations

from datetime import datetime

from runbook_operator.core.alertrule.decide import KIND, Key
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.alertrule.state import Instance
from runbook_operator.core.alertrule.templates import render_template
from runbook_operator.core.delivery import Event, Notification, Source
from runbook_operator.core.notify_plan import Due

_EVENTS: dict[str, Event] = {"firing": "firing", "error": "failed", "resolved": "resolved"}


def notification_for(key: Key, rule: Rule, instance: Instance, due: Due,
                     now: datetime) -> Notification:
    """The message for one due notification, with the rule's annotations rendered for the
    instance's labels and value. The dedup key is the instance's fingerprint, so an incident
    tool groups trigger, repeats, escalations and resolve of one series together."""
    namespace, name = key
    spec = rule.spec
    value = None if instance.last_value is None else float(instance.last_value)
    rendered = {k: render_template(v, instance.labels, value)
                for k, v in spec.annotations.items()}
    title = rendered.pop("summary", "") or f"{name} is {due.event}"
    summary = rendered.pop("description", "")
    if not summary and instance.last_value is not None and rule.threshold is not None:
        summary = (f"value {instance.last_value} {rule.threshold.operator} "
                   f"{rule.threshold.threshold:g}")
    if instance.last_error:
        summary = summary or instance.last_error
    return Notification(
        source=Source(kind=KIND, name=name, namespace=namespace),
        event="escalated" if due.reason == "escalated" else _EVENTS[due.event],
        severity=due.severity,
        title=title[:1024],
        summary=summary[:1024],
        details=rendered,
        labels={**spec.labels, **instance.labels},
        timestamp=now,
        started_at=instance.active_since or now,
        dedup_key=instance.fingerprint,
    )
