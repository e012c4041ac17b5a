"""What an AlertRule says about its alerts, independent of the channel: one `Notification` per
due alert for channels that speak per alert (Slack, PagerDuty, email), and one `AlertGroup`
per channel for those that send a group as one message (the Alertmanager webhook).

An alert's labels are the series' own, the rule's spec.labels over them and the operator's
(`alertname`, `namespace`, `kind`, `severity`) over both; a series label replaced by a
different value is kept as `exported_<name>` (`core.alert_group.overlay_labels`). Its texts
are the rule's annotations rendered for the series' labels and the value it last fired with,
so a resolved alert repeats the last firing text, as Prometheus does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from runbook_operator.core.alert_group import (
    AlertGroup,
    GroupedAlert,
    fingerprint,
    ordered,
    overlay_labels,
)
from runbook_operator.core.alertrule.decide import KIND, Key
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.alertrule.state import Instance
from runbook_operator.core.alertrule.templates import render_template
from runbook_operator.core.delivery import Event, Link, Notification, Source
from runbook_operator.core.escalation import raised
from runbook_operator.core.notify_plan import RESOLVED, Due

_EVENTS: dict[str, Event] = {"firing": "firing", "error": "failed", "resolved": "resolved"}
GENERATOR_LINK_TEXT = "Prometheus"


def alert_labels(key: Key, rule: Rule, instance: Instance, severity: str) -> dict[str, str]:
    """The alert's labels at `severity` (see the module docstring)."""
    namespace, name = key
    return overlay_labels(instance.labels, {**rule.labels, "alertname": name,
                                            "namespace": namespace, "kind": KIND,
                                            "severity": severity})


def shown_value(instance: Instance) -> str | None:
    """The value the texts show: the one the instance last fired with (also once it has
    resolved, and while keepFiringFor holds it firing after the condition cleared)."""
    return instance.active_value or instance.last_value


def annotations(rule: Rule, instance: Instance) -> dict[str, str]:
    """The rule's annotations rendered for the instance."""
    value = shown_value(instance)
    return {k: render_template(v, instance.labels, None if value is None else float(value))
            for k, v in rule.annotations.items()}


def started(instance: Instance, now: datetime) -> datetime:
    """When the alert's episode began (Prometheus' startsAt: when it started firing)."""
    return (instance.started_at or instance.firing_since or instance.active_since or now)


def ended(instance: Instance, due: Due, now: datetime) -> datetime | None:
    """When a resolved alert resolved; None for one that is still a problem."""
    return (instance.resolved_at or now) if due.event == RESOLVED else None


def notification_for(key: Key, rule: Rule, instance: Instance, due: Due,
                     now: datetime) -> Notification:
    """The message for one due alert. Without a summary annotation the title says what
    happened; without a description the condition or the error does. The dedup key is the
    instance's fingerprint, so an incident tool groups trigger, repeats, escalations and
    resolve of one series together."""
    namespace, name = key
    texts = annotations(rule, instance)
    title = texts.pop("summary", "") or f"{name} is {due.event}"
    summary = texts.pop("description", "")
    value = shown_value(instance)
    if not summary and value is not None and rule.threshold is not None:
        summary = f"value {value} {rule.threshold.operator} {rule.threshold.threshold:g}"
    if instance.last_error:
        summary = summary or instance.last_error
    link = rule.generator_url
    links = [Link(href=link, text=GENERATOR_LINK_TEXT)] if link else []
    return Notification(
        source=Source(kind=KIND, name=name, namespace=namespace),
        event="escalated" if due.reason == "escalated" else _EVENTS[due.event],
        severity=due.severity,
        title=title[:1024],
        summary=summary[:1024],
        details=texts,
        labels=alert_labels(key, rule, instance, due.severity),
        links=links,
        timestamp=ended(instance, due, now) or now,
        started_at=started(instance, now),
        dedup_key=instance.fingerprint,
    )


def grouped_alert(key: Key, rule: Rule, instance: Instance, due: Due,
                  now: datetime) -> GroupedAlert:
    """One alert of a group, as Prometheus would have sent it to Alertmanager. Its
    fingerprint is that of its labels at the rule's own severity, so an escalation that
    raises the `severity` label does not make it another alert for the receiver. An Error,
    which Prometheus has no equivalent of, says so in `summary` and `description` where the
    rule's annotations leave them out."""
    texts = annotations(rule, instance)
    if due.event == "error":
        texts.setdefault("summary", f"{key[1]} is error")
        if instance.last_error:
            texts.setdefault("description", instance.last_error)
    return GroupedAlert(
        subject=instance.fingerprint,
        status="resolved" if due.event == RESOLVED else "firing",
        labels=alert_labels(key, rule, instance, due.severity),
        annotations=texts,
        starts_at=started(instance, now),
        ends_at=ended(instance, due, now),
        generator_url=rule.generator_url,
        fingerprint=fingerprint(alert_labels(key, rule, instance, rule.severity)),
    )


def alert_group(key: Key, rule: Rule, alerts: Sequence[tuple[Instance, Due]],
                now: datetime) -> AlertGroup:
    """One channel's message: the rule's alerts that are due on it or still a problem on it,
    grouped by `alertname` and `namespace` (one group per rule)."""
    namespace, name = key
    severity = rule.severity
    for _, due in alerts:
        severity = raised(severity, due.severity)
    return AlertGroup(
        group_labels={"alertname": name, "namespace": namespace},
        alerts=tuple(ordered(grouped_alert(key, rule, i, d, now) for i, d in alerts)),
        severity=severity,
        external_url=rule.external_url,
    )
