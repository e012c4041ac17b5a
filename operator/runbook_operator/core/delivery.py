"""Pure decisions for delivering notifications: what a receiver's answer means, whether and when
to try again, stable dedup keys, and the notification message every notifier renders.

Retries follow the receivers' documented contracts (PagerDuty Events v2, Slack incoming
webhooks): 429 and 5xx are transient, every other 4xx is final, so a bad payload or a revoked
key is reported at once instead of being hammered until the attempts run out.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from runbook_operator.api.common import NotificationRecord, parse_duration
from runbook_operator.api.notificationchannel import (
    NotificationChannelStatus,
    RateLimit,
    RetryPolicy,
    Severity,
)

Event = Literal[
    "firing", "resolved", "failed", "breached", "succeeded", "opened", "acknowledged", "escalated",
    "progressing",
]
#: What an event means for the receiver: a problem, an acknowledged problem, or all clear.
Phase = Literal["problem", "acknowledged", "clear"]
_PHASES: dict[str, Phase] = {
    "firing": "problem",
    "failed": "problem",
    "breached": "problem",
    "opened": "problem",
    "escalated": "problem",
    "acknowledged": "acknowledged",
    "resolved": "clear",
    "succeeded": "clear",
    # News that is not a problem (a canary rollout started or paused): nothing to page about.
    "progressing": "clear",
}
MAX_DEDUP_KEY = 255
#: Exception kinds of a failed attempt: the first two are transient, `invalid` is final.
TransportError = Literal["timeout", "connection", "invalid"]
Protocol = Literal["slack", "pagerduty", "webhook", "smtp"]


class Source(BaseModel):
    """The resource a notification is about."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)


class Link(BaseModel):
    """A link shown with the notification (a dashboard, a runbook, the resource)."""

    model_config = ConfigDict(frozen=True)

    href: str = Field(pattern=r"^https?://")
    text: str = ""


class Notification(BaseModel):
    """One message about one resource, independent of the channel it is sent through."""

    model_config = ConfigDict(frozen=True)

    source: Source
    event: Event
    severity: Severity
    title: str = Field(min_length=1)
    summary: str = ""
    details: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(
        default_factory=dict, description="Identity labels, e.g. an alert series' labels."
    )
    links: list[Link] = Field(default_factory=list)
    timestamp: AwareDatetime
    started_at: AwareDatetime | None = Field(
        default=None, description="When the problem began (defaults to timestamp)."
    )
    dedup_key: str = Field(min_length=1, max_length=MAX_DEDUP_KEY)

    @property
    def phase(self) -> Phase:
        return _PHASES[self.event]


def fingerprint(*parts: str, labels: Mapping[str, str] | None = None) -> str:
    """A stable dedup key (64 hex characters, well under PagerDuty's 255) for the given
    identity. Independent of label order and of the process (unlike `hash()`), so a restarted
    operator produces the same key and the receiver deduplicates."""
    canonical = json.dumps([list(parts), sorted((labels or {}).items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def rfc3339(moment: datetime) -> str:
    """UTC, second precision, `Z` suffix: the form every receiver here accepts."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """Scheme and host only: webhook URLs and their paths are credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not host:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a secret URL that must not be shown: the URL, its path and its query
    (a receiver may echo just the path, which holds the token for Slack webhooks)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    return tuple(p for p in (url, parts.path, parts.query) if len(p) > 1)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Replace any secret value that a receiver echoed back (defence in depth)."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class Answer:
    """The outcome of one attempt: a status (HTTP, or SMTP reply code) or a transport error."""

    status_code: int | None = None
    body: str = ""
    retry_after: str | None = None
    error: TransportError | None = None
    detail: str = ""


@dataclass(frozen=True)
class RetryRules:
    """RetryPolicy in seconds."""

    max_attempts: int
    initial: float
    maximum: float

    @classmethod
    def from_spec(cls, spec: RetryPolicy) -> RetryRules:
        return cls(
            max_attempts=spec.max_attempts,
            initial=parse_duration(spec.initial_backoff).total_seconds(),
            maximum=parse_duration(spec.max_backoff).total_seconds(),
        )


@dataclass(frozen=True)
class Deliver:
    """The receiver accepted the notification."""

    reason: str


@dataclass(frozen=True)
class Retry:
    """Try again after `after` seconds."""

    after: float
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """Stop: the answer is final or the attempts are used up."""

    reason: str


Decision = Deliver | Retry | GiveUp
Verdict = Literal["accepted", "transient", "final"]


def classify(protocol: Protocol, answer: Answer) -> tuple[Verdict, str]:
    """What one answer means for `protocol`, with a short reason for people."""
    if answer.error is not None:
        verdict: Verdict = "final" if answer.error == "invalid" else "transient"
        return verdict, answer.detail or answer.error
    code = answer.status_code
    assert code is not None, "an answer has a status code or an error"
    body = answer.body.strip()
    described = f"{code} {' '.join(body.split())[:200]}".strip()
    if protocol == "smtp":
        if code < 400:
            return "accepted", described
        return ("transient" if code < 500 else "final"), described
    if code == 429 or code >= 500:
        return "transient", described
    if code >= 400:
        return "final", described
    if protocol == "slack" and not (code == 200 and body == "ok"):
        return "final", f"unexpected answer {described} (Slack answers 200 ok)"
    if protocol == "pagerduty" and code != 202:
        return "final", f"unexpected answer {described} (PagerDuty answers 202)"
    if not 200 <= code < 300:
        return "final", f"unexpected answer {described}"
    return "accepted", described


def backoff(attempt: int, rules: RetryRules, rng: random.Random) -> float:
    """Exponential backoff with equal jitter after attempt `attempt` (1-based): between half
    and all of `initial * 2**(attempt-1)`, never more than `maximum`. The jitter spreads
    retries of many notifications that failed together."""
    exponent = min(attempt - 1, 62)
    ceiling = min(rules.maximum, rules.initial * 2.0**exponent)
    return ceiling / 2 + rng.random() * ceiling / 2


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from `now`; None if absent or
    unreadable, so the normal backoff applies."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def decide(
    protocol: Protocol,
    answer: Answer,
    attempt: int,
    rules: RetryRules,
    rng: random.Random,
    now: datetime,
) -> Decision:
    """Deliver, retry (and when), or give up, after attempt number `attempt` (1-based)."""
    verdict, reason = classify(protocol, answer)
    if verdict == "accepted":
        return Deliver(reason)
    if verdict == "final":
        return GiveUp(reason)
    if attempt >= rules.max_attempts:
        return GiveUp(f"{reason}; gave up after {attempt} attempts" if attempt > 1 else reason)
    told = retry_after_seconds(answer.retry_after, now)
    after = min(told, rules.maximum) if told is not None else backoff(attempt, rules, rng)
    return Retry(after=after, reason=reason)


def rate_limit_slot(sent: Sequence[float], limit: RateLimit, now: float) -> float:
    """The earliest time (monotonic seconds, not before `now`) at which another request fits
    in the sliding window, given the times of earlier requests, oldest first. A time, not a
    wait, so that recorded slots are exact and float rounding cannot squeeze in an extra one."""
    window = parse_duration(limit.per).total_seconds()
    recent = [t for t in sent if t > now - window]
    if len(recent) < limit.requests:
        return now
    return max(now, recent[-limit.requests] + window)


def record_deliveries(
    status: NotificationChannelStatus, records: Sequence[NotificationRecord]
) -> NotificationChannelStatus:
    """Fold delivery attempts into the channel's status: the last one is shown, and each
    notification counts once, when it was delivered or given up on."""
    if not records:
        return status
    last = records[-1]
    delivered = sum(1 for r in records if r.result == "delivered")
    failed = sum(1 for r in records if r.result == "failed")
    newest = status.last_delivery
    update: dict[str, object] = {
        "delivered_total": status.delivered_total + delivered,
        "failed_total": status.failed_total + failed,
    }
    if newest is None or last.time >= newest.time:
        update["last_delivery"] = last
    return status.model_copy(update=update)
