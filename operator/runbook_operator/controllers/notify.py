"""Send a notification through NotificationChannels by name and record every delivery.

Shared by every kind that notifies (BackupPolicy now; AlertRule and Incident later). Delivery
is at-least-once: callers record that they notified only after this returns, and receivers
deduplicate repeats by the notification's stable dedup key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.api.notificationchannel import NotificationChannel
from runbook_operator.controllers.notificationchannel import record_delivery
from runbook_operator.core.delivery import Notification
from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.notifiers import Channel, deliver, resolve_secrets

log = logging.getLogger(__name__)
CHANNEL_KIND = NotificationChannel.info.kind


def _failed(channel: str, notification: Notification, message: str) -> NotificationRecord:
    return NotificationRecord(
        time=datetime.now(UTC), channel=channel, fingerprint=notification.dedup_key,
        event=notification.event, severity=notification.severity, result="failed",
        message=message, attempt=1,
    )


def notify(
    kube: Kube, namespace: str, channel_names: Sequence[str], notification: Notification
) -> list[NotificationRecord]:
    """Deliver to each channel in turn (blocking: call from a worker thread). Returns the final
    record per channel; a missing or invalid channel is a failed record, never an exception."""
    outcomes = []
    for name in channel_names:
        body = kube.get(API_VERSION, CHANNEL_KIND, name, namespace)
        if body is None:
            outcomes.append(_failed(name, notification, f"NotificationChannel {name!r} not found"))
            continue
        try:
            channel = Channel.from_body(body)
        except ValidationError as error:
            reason = f"invalid NotificationChannel: {error.errors()[0]['msg']}"
            outcomes.append(_failed(name, notification, reason))
            continue
        secrets = resolve_secrets(
            channel.spec, lambda secret: kube.get("v1", "Secret", secret, namespace)
        )
        attempts = asyncio.run(deliver(channel, notification, secrets))
        record_delivery(kube, namespace, name, attempts)
        final = attempts[-1]
        log.info("notified %s via %s: %s %s", notification.event, name, final.result,
                 final.message)
        outcomes.append(final)
    return outcomes
