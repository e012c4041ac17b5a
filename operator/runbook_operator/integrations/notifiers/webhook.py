"""Generic webhook: an Alertmanager webhook v4 body, so any receiver that already understands
Alertmanager (incident tools, chat bridges, this operator's own receiver) works unchanged.
It is sent, like every outbound call, through `integrations.webhooks`.

An `AlertGroup` (`core.alert_group`) is rendered as Alertmanager renders a group: its alerts in
Alertmanager's order, `status` firing while any alert fires, `commonLabels` and
`commonAnnotations` the pairs all alerts share, the receiver's name as `regexp.QuoteMeta`
leaves it, and as many alerts as fit in MAX_BODY_BYTES, `truncatedAlerts` counting the rest
(Alertmanager computes status and common pairs over the alerts it keeps, as here). A single
`Notification` (other kinds) is a group of one alert.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from runbook_operator.core.alert_group import (
    AlertGroup,
    GroupedAlert,
    common,
    group_key,
    ordered,
    overlay_labels,
    quote_meta,
    status_of,
)
from runbook_operator.core.delivery import Notification, fingerprint

#: Alertmanager's zero time: `endsAt` of an alert that is still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"
#: Under the 1 MiB request body that common proxies accept by default (nginx's
#: client_max_body_size), so a group of many alerts with long texts is not refused whole.
MAX_BODY_BYTES = 1_000_000


def alert_labels(notification: Notification) -> dict[str, str]:
    """Identity labels of the alert: the notification's own labels with where it comes from
    over them, so a label cannot disguise the source (a replaced label is kept as
    `exported_<name>`)."""
    source = notification.source
    return overlay_labels(notification.labels, {
        "alertname": source.name,
        "namespace": source.namespace,
        "kind": source.kind,
        "severity": notification.severity,
    })


def alert_annotations(notification: Notification) -> dict[str, str]:
    """Prometheus' conventional `summary` (a headline) and `description`, plus the details."""
    annotations = {**notification.details, "summary": notification.title}
    if notification.summary:
        annotations["description"] = notification.summary
    return annotations


def single_group(notification: Notification, external_url: str = "") -> AlertGroup:
    """A notification as a group of one alert; its fingerprint is derived from its dedup key
    (what identifies it to the sender), grouped by alertname and namespace."""
    labels = alert_labels(notification)
    resolved = notification.phase == "clear"
    alert = GroupedAlert(
        subject=notification.dedup_key,
        status="resolved" if resolved else "firing",
        labels=labels,
        annotations=alert_annotations(notification),
        starts_at=notification.started_at or notification.timestamp,
        ends_at=notification.timestamp if resolved else None,
        generator_url=notification.links[0].href if notification.links else "",
        fingerprint=fingerprint(notification.dedup_key)[:16],
    )
    return AlertGroup({"alertname": labels["alertname"], "namespace": labels["namespace"]},
                      (alert,), notification.severity, external_url)


def _time(moment: datetime | None) -> str:
    """RFC 3339 in UTC as Go marshals a time (Alertmanager's): fractional seconds only as far
    as they go, `Z` for UTC; the zero time while an alert fires."""
    if moment is None:
        return ZERO_TIME
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0").rstrip(".")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _alert(alert: GroupedAlert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _time(alert.starts_at),
        "endsAt": _time(alert.ends_at),
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def _body(group: AlertGroup, receiver: str, alerts: list[GroupedAlert],
          truncated: int) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": group_key(group.group_labels),
        "truncatedAlerts": truncated,
        "status": status_of(alerts),
        "receiver": quote_meta(receiver),
        "groupLabels": dict(group.group_labels),
        "commonLabels": common([a.labels for a in alerts]),
        "commonAnnotations": common([a.annotations for a in alerts]),
        "externalURL": group.external_url,
        "alerts": [_alert(a) for a in alerts],
    }


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def render_group(group: AlertGroup, receiver: str) -> dict[str, Any]:
    """The Alertmanager webhook v4 body for a group (see the module docstring); at least one
    alert is always kept."""
    alerts = ordered(group.alerts)

    def keeping(count: int) -> dict[str, Any]:
        return _body(group, receiver, alerts[:count], len(alerts) - count)

    body = keeping(len(alerts))
    if _size(body) <= MAX_BODY_BYTES:
        return body
    fits, too_many = 1, len(alerts)  # the largest count that fits, by bisection
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if _size(keeping(middle)) <= MAX_BODY_BYTES:
            fits = middle
        else:
            too_many = middle
    return keeping(fits)


def render_webhook(notification: Notification, receiver: str) -> dict[str, Any]:
    """The Alertmanager webhook v4 body for one notification, a group of one alert."""
    return render_group(single_group(notification), receiver)
