"""Send a notification through NotificationChannels by name and record every delivery.

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
from collections.abc import Sequence
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
from runbook_operator.integrations.notifiers import Channel, deliver, resolve_secrets

log = logging.getLogger(__name__)
CHANNEL_KIND = NotificationChannel.info.kind
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


def _failed(channel: str, notification: Notification, message: str) -> NotificationRecord:
    return NotificationRecord(
        time=datetime.now(UTC), channel=channel, fingerprint=notification.dedup_key,
        event=notification.event, severity=notification.severity, result="failed",
        message=message, attempt=1,
    )


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), built once for every delivery."""
    return httpx.create_ssl_context()


async def _deliver(channel: Channel, notification: Notification,
                   secrets: dict[tuple[str, str], str]) -> list[NotificationRecord]:
    async with httpx.AsyncClient(verify=tls_context()) as client:
        return await deliver(channel, notification, secrets, client=client)


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
        attempts = asyncio.run(_deliver(channel, notification, secrets))
        count_deliveries(kube, namespace, name, attempts)
        final = attempts[-1]
        log.info("notified %s via %s: %s %s", notification.event, name, final.result,
                 final.message)
        outcomes.append(final)
    return outcomes
