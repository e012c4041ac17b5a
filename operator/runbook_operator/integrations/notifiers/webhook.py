"""Generic webhook: an Alertmanager webhook v4 body, so any receiver that already understands
Alertmanager (incident tools, chat bridges, this operator's own receiver) works unchanged.
It is sent, like every outbound call, through `integrations.webhooks`.
"""

from __future__ import annotations

import json
from typing import Any

from runbook_operator.core.delivery import Notification, fingerprint, rfc3339

#: Alertmanager's zero time: `endsAt` of an alert that is still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"


def alert_labels(notification: Notification) -> dict[str, str]:
    """Identity labels of the alert: the notification's own labels plus where it comes from,
    the latter taking precedence so a label cannot disguise the source."""
    source = notification.source
    return {
        **notification.labels,
        "alertname": source.name,
        "namespace": source.namespace,
        "kind": source.kind,
        "severity": notification.severity,
    }


def alert_annotations(notification: Notification) -> dict[str, str]:
    """Prometheus' conventional `summary` (a headline) and `description`, plus the details."""
    annotations = {**notification.details, "summary": notification.title}
    if notification.summary:
        annotations["description"] = notification.summary
    return annotations


def render_webhook(notification: Notification, receiver: str) -> dict[str, Any]:
    """The Alertmanager webhook v4 body for one notification, a group of one alert."""
    labels = alert_labels(notification)
    annotations = alert_annotations(notification)
    status = "resolved" if notification.phase == "clear" else "firing"
    group_labels = {"alertname": labels["alertname"]}
    started = notification.started_at or notification.timestamp
    return {
        "version": "4",
        "groupKey": "{}:{" + ",".join(f"{k}={json.dumps(v)}" for k, v in group_labels.items())
                    + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(started),
                "endsAt": rfc3339(notification.timestamp) if status == "resolved" else ZERO_TIME,
                "generatorURL": notification.links[0].href if notification.links else "",
                "fingerprint": fingerprint(notification.dedup_key)[:16],
            }
        ],
    }
