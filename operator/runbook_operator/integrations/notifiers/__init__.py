"""Deliver a Notification through a NotificationChannel, with retries, and say what happened.

Rendering is pure (`render_*` in the per-channel modules); this module wires a channel to its
transport, runs the attempts that `core.delivery.decide` asks for, and returns one
`NotificationRecord` per attempt so callers can record every delivery. Secret values (webhook
URLs, routing keys, passwords) never reach a record, a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from runbook_operator.api.common import (
    DeliveryResultValue,
    NotificationRecord,
    SecretKeyRef,
    parse_duration,
)
from runbook_operator.api.notificationchannel import NotificationChannelSpec, RateLimit
from runbook_operator.core.delivery import (
    Answer,
    Deliver,
    GiveUp,
    Notification,
    Protocol,
    RetryRules,
    decide,
    rate_limit_slot,
    redact_url,
    scrub,
    truncate,
    url_secrets,
)
from runbook_operator.integrations.notifiers import email, pagerduty, slack, webhook

#: (Secret name, key) → value, for the Secrets a channel references.
SecretValues = Mapping[tuple[str, str], str]
Sleep = Callable[[float], Awaitable[None]]
MESSAGE_LIMIT = 1024

log = logging.getLogger(__name__)
# httpx logs every request line with its full URL at INFO; a Slack webhook URL is a credential.
logging.getLogger("httpx").setLevel(logging.WARNING)


class MissingSecret(LookupError):
    """A referenced Secret key has no value (deleted or never created)."""


@dataclass(frozen=True)
class Channel:
    """A NotificationChannel's identity and validated spec."""

    name: str
    namespace: str
    spec: NotificationChannelSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Channel:
        """From the object as read from the API (raises pydantic.ValidationError)."""
        return cls(
            name=body["metadata"]["name"],
            namespace=body["metadata"]["namespace"],
            spec=NotificationChannelSpec.model_validate(dict(body.get("spec") or {})),
        )


def resolve_secrets(
    spec: NotificationChannelSpec, read: Callable[[str], Mapping[str, Any] | None]
) -> dict[tuple[str, str], str]:
    """The values of the Secret keys `spec` references. `read(name)` returns the Secret object
    as the API serves it (e.g. `lambda n: kube.get("v1", "Secret", n, namespace)`) or None.
    Keys that are missing or undecodable are left out; delivery then reports them. Surrounding
    whitespace (the newline `echo` leaves) is dropped."""
    objects: dict[str, Mapping[str, Any] | None] = {}
    values: dict[tuple[str, str], str] = {}
    for ref in spec.secret_refs():
        if ref.name not in objects:
            objects[ref.name] = read(ref.name)
        secret = objects[ref.name] or {}
        if ref.key in (secret.get("stringData") or {}):
            values[(ref.name, ref.key)] = secret["stringData"][ref.key].strip()
        elif ref.key in (secret.get("data") or {}):
            try:
                decoded = base64.b64decode(secret["data"][ref.key], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            values[(ref.name, ref.key)] = decoded.strip()
    return values


def _secret(secrets: SecretValues, ref: SecretKeyRef) -> str:
    value = secrets.get((ref.name, ref.key))
    if not value:
        raise MissingSecret(f"Secret {ref.name!r} key {ref.key!r} has no value")
    return value


class RateLimiter:
    """Sliding-window request limits per channel, in memory. A restart forgets the window,
    which at worst lets one extra window's worth of requests through."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sent: dict[str, list[float]] = {}

    def reserve(self, key: str, limit: RateLimit) -> float:
        """Take the next free slot for `key`; return how many seconds to wait for it."""
        now = self._clock()
        window = parse_duration(limit.per).total_seconds()
        sent = [t for t in self._sent.get(key, []) if t > now - window]
        slot = rate_limit_slot(sent, limit, now)
        self._sent[key] = [*sent, slot]
        return slot - now


RATE_LIMITER = RateLimiter()


@dataclass(frozen=True)
class _Transport:
    """A rendered notification ready to send, with what may be said about its target."""

    protocol: Protocol
    target: str
    send: Callable[[], Awaitable[Answer]]
    secrets: tuple[str, ...]


def _transport(
    channel: Channel,
    notification: Notification,
    secrets: SecretValues,
    client: httpx.AsyncClient,
    timeout: float,
) -> _Transport:
    """Render once and bind the transport: every attempt re-sends the identical payload."""
    spec = channel.spec
    if spec.slack is not None:
        url = _secret(secrets, spec.slack.webhook_url_secret_ref)
        body = slack.render_slack(spec.slack, notification)
        return _Transport(
            "slack",
            redact_url(url),
            lambda: webhook.post_json(client, url, body, timeout),
            url_secrets(url),
        )
    if spec.pagerduty is not None:
        key = _secret(secrets, spec.pagerduty.routing_key_secret_ref)
        url = spec.pagerduty.endpoint
        body = pagerduty.render_pagerduty(spec.pagerduty, notification, key)
        return _Transport(
            "pagerduty",
            redact_url(url),
            lambda: webhook.post_json(client, url, body, timeout),
            (key,),
        )
    if spec.webhook is not None:
        hook = spec.webhook
        target = _secret(secrets, hook.url_secret_ref) if hook.url_secret_ref else hook.url
        assert target is not None
        headers = {h.name: _secret(secrets, h.secret_key_ref) for h in hook.headers}
        payload = webhook.render_webhook(notification, receiver=channel.name)
        hidden = (*(url_secrets(target) if hook.url_secret_ref else ()), *headers.values())
        return _Transport(
            "webhook",
            redact_url(target),
            lambda: webhook.post_json(client, target, payload, timeout, headers),
            hidden,
        )
    mail = spec.email
    assert mail is not None
    credentials = (
        (_secret(secrets, mail.username_secret_ref), _secret(secrets, mail.password_secret_ref))
        if mail.username_secret_ref and mail.password_secret_ref
        else None
    )
    message = email.render_email(mail, notification)
    return _Transport(
        "smtp",
        f"smtp://{mail.smtp_host}:{mail.smtp_port}",
        lambda: asyncio.to_thread(email.send_email, mail, message, credentials, timeout),
        (credentials[1],) if credentials else (),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def deliver(
    channel: Channel,
    notification: Notification,
    secrets: SecretValues,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    now: Callable[[], datetime] = _utc_now,
    client: httpx.AsyncClient | None = None,
    limiter: RateLimiter = RATE_LIMITER,
) -> list[NotificationRecord]:
    """Send `notification` through `channel`, retrying as the channel's retry policy allows.

    Returns one record per attempt; the last one says how it ended (delivered or failed).
    Pass a shared `client` to reuse connections across deliveries; `sleep`, `rng` and `now`
    are injectable so tests neither wait nor depend on chance.
    """
    if client is None:
        async with httpx.AsyncClient() as own:
            return await deliver(
                channel, notification, secrets,
                sleep=sleep, rng=rng, now=now, client=own, limiter=limiter,
            )
    spec = channel.spec
    timeout = parse_duration(spec.timeout).total_seconds()
    records: list[NotificationRecord] = []
    hidden: tuple[str, ...] = ()

    def add(attempt: int, result: DeliveryResultValue, code: int | None, text: str) -> None:
        entry = NotificationRecord(
            time=now(),
            channel=channel.name,
            fingerprint=notification.dedup_key,
            event=notification.event,
            severity=notification.severity,
            attempt=attempt,
            result=result,
            status_code=code,
            message=truncate(scrub(text, hidden), MESSAGE_LIMIT),
        )
        log.log(
            logging.INFO if result == "delivered" else logging.WARNING,
            "notification %s via %s/%s, attempt %d: %s",
            notification.dedup_key[:16], channel.namespace, channel.name, attempt, entry.message,
        )
        records.append(entry)

    try:
        transport = _transport(channel, notification, secrets, client, timeout)
    except MissingSecret as error:
        add(1, "failed", None, str(error))
        return records
    hidden, target = transport.secrets, transport.target
    rules = RetryRules.from_spec(spec.retry)
    rng = rng or random.Random()
    for attempt in range(1, rules.max_attempts + 1):
        if spec.rate_limit is not None:
            wait = limiter.reserve(f"{channel.namespace}/{channel.name}", spec.rate_limit)
            if wait > 0:
                await sleep(wait)
        answer = await transport.send()
        decision = decide(transport.protocol, answer, attempt, rules, rng, now())
        code = answer.status_code
        if isinstance(decision, Deliver):
            add(attempt, "delivered", code, f"delivered to {target}: {decision.reason}")
            break
        if isinstance(decision, GiveUp):
            add(attempt, "failed", code, f"{target}: {decision.reason}")
            break
        after = decision.after
        add(attempt, "retrying", code, f"{target}: {decision.reason}; retry in {after:.1f}s")
        await sleep(after)
    return records
