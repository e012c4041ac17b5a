"""Send messages through NotificationChannels by name and record every delivery.

Shared by every kind that notifies (BackupPolicy, AlertRule, Incident). Delivery is
at-least-once: callers record that they notified only after this returns, and receivers
deduplicate repeats by the notification's stable dedup key — so once a notification went out,
failing to count it in the channel's status is logged, never raised (the caller would send it
again). A channel's status is written by one thread at a time, which counts every delivery
through it finished meanwhile: many threads paging at once through one channel conflicted on
its status until they gave up, and one write per delivery was most of the API load. One
TLS context serves every delivery: loading the CA bundle for each new client cost more CPU than
the rest of a delivery (bench/README.md, Incident escalation).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache

import httpx
from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.api.notificationchannel import NotificationChannel
from runbook_operator.controllers.errors import TRANSIENT_API_ERRORS, transient_error_message
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

#: Per channel (namespace, name): deliveries not counted in its status yet, and the lock of
#: the one thread counting them; `_books` guards both dictionaries.
_uncounted: defaultdict[tuple[str, str], list[NotificationRecord]] = defaultdict(list)
_counting: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_books = threading.Lock()


def count_deliveries(kube: Kube, namespace: str, name: str,
                     attempts: Sequence[NotificationRecord]) -> None:
    """Fold `attempts` into the channel's status, with whatever other threads delivered
    through it meanwhile (one write for all of them); failing to is logged, not raised."""
    key = (namespace, name)
    with _books:
        _uncounted[key].extend(attempts)
        counting = _counting[key]
    with counting:
        with _books:
            records = _uncounted.pop(key, [])
        if not records:
            return  # counted by the thread that held the lock
        try:
            record_delivery(kube, namespace, name, records)
        except TRANSIENT_API_ERRORS as error:
            log.warning("%d delivery attempt(s) through %s/%s not counted in its status: %s",
                        len(records), namespace, name, transient_error_message(error))


def _failed(channel: str, message: Message, reason: str) -> NotificationRecord:
    return NotificationRecord(
        time=datetime.now(UTC), channel=channel, fingerprint=message.dedup_key,
        event=message.event, severity=message.severity, result="failed",
        message=reason, attempt=1,
    )


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), built once for every delivery."""
    return httpx.create_ssl_context()


async def _deliver(channel: Channel, message: Message,
                   secrets: dict[tuple[str, str], str]) -> list[NotificationRecord]:
    async with httpx.AsyncClient(verify=tls_context()) as client:
        return await deliver(channel, message, secrets, client=client)


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
        attempts = asyncio.run(_deliver(channel, message, secrets))
        count_deliveries(kube, namespace, name, attempts)
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
