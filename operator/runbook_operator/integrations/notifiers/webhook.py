"""Generic webhook: an Alertmanager webhook v4 body, so any receiver that already understands
Alertmanager (incident tools, chat bridges, this operator's own receiver) works unchanged.

Also the HTTP transport the Slack and PagerDuty notifiers share: both are JSON webhooks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from runbook_operator.core.delivery import Answer, Notification, fingerprint, rfc3339

#: Alertmanager's zero time: `endsAt` of an alert that is still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"
USER_AGENT = "runbook-operator"
#: Response bodies are only read for a short reason in the delivery record.
MAX_BODY = 1000


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
        "groupKey": "{}:{" + ",".join(f"{k}={json.dumps(v)}" for k, v in group_labels.items()) + "}",
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


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST `payload` and describe the answer. Exception texts are not passed on (they may
    quote the URL), only the error class."""
    try:
        response = await client.post(
            url,
            json=payload,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.TimeoutException as error:
        return Answer(error="timeout", detail=f"{type(error).__name__} after {timeout:g}s")
    except (
        httpx.UnsupportedProtocol,
        httpx.LocalProtocolError,
        httpx.InvalidURL,
        UnicodeEncodeError,
    ) as error:
        return Answer(error="invalid", detail=f"invalid request: {type(error).__name__}")
    except httpx.TransportError as error:
        return Answer(error="connection", detail=type(error).__name__)
    return Answer(
        status_code=response.status_code,
        body=response.text[:MAX_BODY],
        retry_after=response.headers.get("retry-after"),
    )
