"""Every outbound HTTP call the operator makes: notifier transports, AlertRule webhook actions,
and the next kinds' gates. One place for timeouts, retries and redaction.

A URL from a Secret is a credential (Slack's path, a token in the query) and so is a header
value from a Secret. Nothing this module returns or raises contains them: a target is shown as
scheme and host only, exception texts are never passed on (httpx's say `for url '…'`), and a
receiver's answer is scrubbed in case it echoes them. Whether and when to retry is decided by
the pure `core.delivery.decide`; this module only carries the decisions out.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from runbook_operator.core.delivery import (
    Answer,
    Decision,
    Deliver,
    Protocol,
    Retry,
    RetryRules,
    decide,
    redact_url,
    scrub,
    url_secrets,
)

USER_AGENT = "runbook-operator"
#: Response bodies are only read for a short reason in a message.
MAX_BODY = 1000
#: One attempt, no retry: for calls that must not be repeated within one run.
ONE_ATTEMPT = RetryRules(max_attempts=1, initial=0.0, maximum=0.0)

Sleep = Callable[[float], Awaitable[None]]

# httpx logs every request line with its full URL at INFO; a Slack webhook URL is a credential.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


class CallFailed(RuntimeError):
    """An outbound call was not accepted. The message is redacted like every other."""


@dataclass(frozen=True)
class Endpoint:
    """Where a call goes, and which of its parts must never be shown."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()

    @classmethod
    def secret(
        cls, url: str, headers: Mapping[str, str] | None = None, also: tuple[str, ...] = ()
    ) -> Endpoint:
        """A URL that is itself a credential; header values are always treated as secret."""
        headers = dict(headers or {})
        return cls(url, headers, (*url_secrets(url), *headers.values(), *also))

    @classmethod
    def public(
        cls, url: str, headers: Mapping[str, str] | None = None, also: tuple[str, ...] = ()
    ) -> Endpoint:
        """A URL that may be shown (a documented API endpoint); `also`: secrets in the body."""
        headers = dict(headers or {})
        return cls(url, headers, (*headers.values(), *also))

    @property
    def shown(self) -> str:
        """What a message may say about the target: scheme and host."""
        return redact_url(self.url)

    def scrub(self, text: str) -> str:
        return scrub(text, self.hidden)


async def post_json(
    client: httpx.AsyncClient, endpoint: Endpoint, payload: Mapping[str, Any], timeout: float
) -> Answer:
    """POST `payload` once and describe the answer, never raising for a failed request.
    Errors are described by their class only; the body is scrubbed before it is cut, so a cut
    cannot leave part of an echoed secret behind."""
    try:
        response = await client.post(
            endpoint.url,
            json=payload,
            headers={"User-Agent": USER_AGENT, **endpoint.headers},
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
    except httpx.HTTPError as error:
        return Answer(error="invalid", detail=f"failed: {type(error).__name__}")
    longest = max((len(s) for s in endpoint.hidden), default=0)
    body = endpoint.scrub(response.text[: MAX_BODY + longest])[:MAX_BODY]
    return Answer(
        status_code=response.status_code,
        body=body,
        retry_after=response.headers.get("retry-after"),
    )


def utc_now() -> datetime:
    """Now in UTC to the second, as records show it."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Attempt:
    """One attempt: its number (from 1), the receiver's answer and what it means."""

    number: int
    answer: Answer
    decision: Decision


async def attempts(
    send: Callable[[], Awaitable[Answer]],
    protocol: Protocol,
    rules: RetryRules,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    now: Callable[[], datetime] = utc_now,
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Attempt]:
    """Send until the receiver accepts or `decide` gives up, yielding every attempt; the wait
    before a retry happens after its attempt was yielded, so callers can record it first.
    `before_each` runs before every attempt (a rate limiter's wait)."""
    rng = rng or random.Random()
    for number in range(1, rules.max_attempts + 1):
        if before_each is not None:
            await before_each()
        answer = await send()
        decision = decide(protocol, answer, number, rules, rng, now())
        yield Attempt(number, answer, decision)
        if not isinstance(decision, Retry):
            return
        await sleep(decision.after)


async def _call_json(
    endpoint: Endpoint, payload: Mapping[str, Any], timeout: float, rules: RetryRules
) -> Attempt:
    async with httpx.AsyncClient() as client:
        made = [a async for a in attempts(
            lambda: post_json(client, endpoint, payload, timeout), "webhook", rules)]
    return made[-1]


def call_json(
    endpoint: Endpoint,
    payload: Mapping[str, Any],
    timeout: float,
    rules: RetryRules = ONE_ATTEMPT,
) -> str:
    """POST `payload` to a generic webhook (any 2xx accepts it), retrying as `rules` allow.
    Blocking: call it from a worker thread. Returns what happened; raises CallFailed."""
    last = asyncio.run(_call_json(endpoint, payload, timeout, rules))
    if not isinstance(last.decision, Deliver):
        raise CallFailed(f"{endpoint.shown}: {last.decision.reason}")
    return f"called {endpoint.shown}: {last.decision.reason}"
