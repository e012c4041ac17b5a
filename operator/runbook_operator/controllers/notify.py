"""Send messages through NotificationChannels by name and record every delivery.

Shared by every kind that notifies (BackupPolicy, AlertRule; Incident next). Delivery is
at-least-once: callers record that they notified only after this returns, and receivers
deduplicate repeats by the message's stable dedup key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.api.notificationchannel import NotificationChannel
from runbook_operator.controllers.notificationchannel import record_delivery
from runbook_operator.core.delivery import Notification
from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.notifiers import (
    Channel,
    Message,
    deliver,
    resolve_secrets,
    sends_groups,
)

log = logging.getLogger(__name__)
CHANNEL_KIND = NotificationChannel.info.kind
#: Given whether the channel sends a group of alerts as one message, what to send it.
Compose = Callable[[bool], Sequence[Message]]


def _failed(channel: str, message: Message, reason: str) -> NotificationRecord:
    return NotificationRecord(
        time=datetime.now(UTC), channel=channel, fingerprint=message.dedup_key,
        event=message.event, severity=message.severity, result="failed",
        message=reason, attempt=1,
    )


def notify_channel(kube: Kube, namespace: str, name: str,
                   compose: Compose) -> list[tuple[Message, NotificationRecord]]:
    """Deliver to one channel what `compose` makes for it (blocking: call from a worker
    thread), each message with its final record. A missing or invalid channel fails what
    `compose(False)` makes (one message per alert), never with an exception."""
    body = kube.get(API_VERSION, CHANNEL_KIND, name, namespace)
    if body is None:
        return [(m, _failed(name, m, f"NotificationChannel {name!r} not found"))
                for m in compose(False)]
    try:
        channel = Channel.from_body(body)
    except ValidationError as error:
        reason = f"invalid NotificationChannel: {error.errors()[0]['msg']}"
        return [(m, _failed(name, m, reason)) for m in compose(False)]
    secrets = resolve_secrets(
        channel.spec, lambda secret: kube.get("v1", "Secret", secret, namespace)
    )
    outcomes = []
    for message in compose(sends_groups(channel.spec)):
        attempts = asyncio.run(deliver(channel, message, secrets))
        record_delivery(kube, namespace, name, attempts)
        final = attempts[-1]
        log.info("notified %s via %s: %s %s", message.event, name, final.result,
                 final.message)
        outcomes.append((message, final))
    return outcomes


def notify(
    kube: Kube, namespace: str, channel_names: Sequence[str], notification: Notification
) -> list[NotificationRecord]:
    """Deliver one notification to each channel in turn (blocking: call from a worker
    thread). Returns the final record per channel; a missing or invalid channel is a failed
    record, never an exception."""
    return [record for name in channel_names
            for _, record in notify_channel(kube, namespace, name, lambda _: [notification])]
