"""Deliver a message through a NotificationChannel, with retries, and say what happened.

A message is one `Notification`, or an `AlertGroup` for a channel that `sends_groups` (the
Alertmanager webhook sends a group of alerts as one request, as Alertmanager does; Slack,
PagerDuty and email speak per alert: PagerDuty's dedup_key is one alert's, and a Slack message
or an email thread is about one alert). Rendering is pure (`render_*` in the per-channel
modules); this module wires a channel to its transport, runs the attempts that
`core.delivery.decide` asks for (through the one outbound caller, `integrations.webhooks`), and
returns one `NotificationRecord` per attempt so callers can record every delivery. Secret values
(webhook URLs, routing keys, passwords) never reach a record, a message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from runbook_operator.api.common import (
    DeliveryResultValue,
    NotificationRecord,
    SecretKeyRef,
    parse_duration,
)
from runbook_operator.api.notificationchannel import NotificationChannelSpec, RateLimit
from runbook_operator.core.alert_group import AlertGroup
from runbook_operator.core.delivery import (
    Answer,
    Deliver,
    GiveUp,
    Notification,
    Protocol,
    RetryRules,
    rate_limit_slot,
    scrub,
    truncate,
)
from runbook_operator.integrations import webhooks
from runbook_operator.integrations.notifiers import email, pagerduty, slack, webhook
from runbook_operator.integrations.secrets import ReadSecret, SecretError, SecretReader
from runbook_operator.integrations.webhooks import Endpoint, Sleep

#: (Secret name, key) → value, for the Secrets a channel references.
SecretValues = Mapping[tuple[str, str], str]
MESSAGE_LIMIT = 1024
Message = Notification | AlertGroup

log = logging.getLogger(__name__)


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


def sends_groups(spec: NotificationChannelSpec) -> bool:
    """Whether the channel takes an `AlertGroup` as one message (see the module docstring)."""
    return spec.webhook is not None


def resolve_secrets(spec: NotificationChannelSpec, read: ReadSecret) -> dict[tuple[str, str], str]:
    """The values of the Secret keys `spec` references, each Secret read once. `read(name)`
    returns the Secret as the API serves it (e.g. `lambda n: kube.get("v1", "Secret", n,
    namespace)`) or None. Unreadable keys are left out; delivery then reports them."""
    return SecretReader(read).values(spec.secret_refs())


def _secret(secrets: SecretValues, ref: SecretKeyRef) -> str:
    value = secrets.get((ref.name, ref.key))
    if not value:
        raise SecretError(ref.name, f"key {ref.key!r} has no value")
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


def _http(
    protocol: Protocol,
    endpoint: Endpoint,
    payload: Mapping[str, Any],
    client: httpx.AsyncClient,
    timeout: float,
) -> _Transport:
    return _Transport(
        protocol,
        endpoint.shown,
        lambda: webhooks.post_json(client, endpoint, payload, timeout),
        endpoint.hidden,
    )


def _transport(
    channel: Channel,
    message: Message,
    secrets: SecretValues,
    client: httpx.AsyncClient,
    timeout: float,
) -> _Transport:
    """Render once and bind the transport: every attempt re-sends the identical payload."""
    spec = channel.spec
    if spec.webhook is not None:
        hook = spec.webhook
        headers = {h.name: _secret(secrets, h.secret_key_ref) for h in hook.headers}
        if hook.url_secret_ref is not None:
            endpoint = Endpoint.secret(_secret(secrets, hook.url_secret_ref), headers)
        else:
            assert hook.url is not None
            endpoint = Endpoint.public(hook.url, headers)
        group = message if isinstance(message, AlertGroup) else webhook.single_group(message)
        payload = webhook.render_group(group, receiver=channel.name)
        return _http("webhook", endpoint, payload, client, timeout)
    if isinstance(message, AlertGroup):
        raise TypeError(f"NotificationChannel {channel.name} takes one alert at a time")
    if spec.slack is not None:
        url = _secret(secrets, spec.slack.webhook_url_secret_ref)
        body = slack.render_slack(spec.slack, message)
        return _http("slack", Endpoint.secret(url), body, client, timeout)
    if spec.pagerduty is not None:
        key = _secret(secrets, spec.pagerduty.routing_key_secret_ref)
        body = pagerduty.render_pagerduty(spec.pagerduty, message, key)
        endpoint = Endpoint.public(spec.pagerduty.endpoint, also=(key,))
        return _http("pagerduty", endpoint, body, client, timeout)
    mail = spec.email
    assert mail is not None
    credentials = (
        (_secret(secrets, mail.username_secret_ref), _secret(secrets, mail.password_secret_ref))
        if mail.username_secret_ref and mail.password_secret_ref
        else None
    )
    rendered = email.render_email(mail, message)
    return _Transport(
        "smtp",
        f"smtp://{mail.smtp_host}:{mail.smtp_port}",
        lambda: asyncio.to_thread(email.send_email, mail, rendered, credentials, timeout),
        (credentials[1],) if credentials else (),
    )


async def deliver(
    channel: Channel,
    message: Message,
    secrets: SecretValues,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    now: Callable[[], datetime] = webhooks.utc_now,
    client: httpx.AsyncClient | None = None,
    limiter: RateLimiter = RATE_LIMITER,
) -> list[NotificationRecord]:
    """Send `message` through `channel`, retrying as the channel's retry policy allows.

    Returns one record per attempt; the last one says how it ended (delivered or failed).
    Pass a shared `client` to reuse connections across deliveries; `sleep`, `rng` and `now`
    are injectable so tests neither wait nor depend on chance.
    """
    if client is None:
        async with httpx.AsyncClient() as own:
            return await deliver(
                channel, message, secrets,
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
            fingerprint=message.dedup_key,
            event=message.event,
            severity=message.severity,
            attempt=attempt,
            result=result,
            status_code=code,
            message=truncate(scrub(text, hidden), MESSAGE_LIMIT),
        )
        log.log(
            logging.INFO if result == "delivered" else logging.WARNING,
            "notification %s via %s/%s, attempt %d: %s",
            message.dedup_key[:16], channel.namespace, channel.name, attempt, entry.message,
        )
        records.append(entry)

    try:
        transport = _transport(channel, message, secrets, client, timeout)
    except SecretError as error:
        add(1, "failed", None, str(error))
        return records
    hidden, target = transport.secrets, transport.target

    async def wait_for_slot() -> None:
        if spec.rate_limit is not None:
            wait = limiter.reserve(f"{channel.namespace}/{channel.name}", spec.rate_limit)
            if wait > 0:
                await sleep(wait)

    async for attempt in webhooks.attempts(
        transport.send, transport.protocol, RetryRules.from_spec(spec.retry),
        sleep=sleep, rng=rng, now=now, before_each=wait_for_slot,
    ):
        number, decision, code = attempt.number, attempt.decision, attempt.answer.status_code
        if isinstance(decision, Deliver):
            add(number, "delivered", code, f"delivered to {target}: {decision.reason}")
        elif isinstance(decision, GiveUp):
            add(number, "failed", code, f"{target}: {decision.reason}")
        else:
            add(number, "retrying", code,
                f"{target}: {decision.reason}; retry in {decision.after:.1f}s")
    return records
