"""deliver() against real in-test HTTP receivers standing in for Slack, PagerDuty and webhooks:
documented payloads arrive, 5xx/429/timeouts are retried, other 4xx are not, and no secret
reaches a record or a log line."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from runbook_operator.api.notificationchannel import NotificationChannelSpec
from runbook_operator.core.alert_group import AlertGroup, GroupedAlert
from runbook_operator.core.delivery import Notification
from runbook_operator.integrations.notifiers import (
    Channel,
    RateLimiter,
    deliver,
    resolve_secrets,
)
from runbook_operator.integrations.notifiers.pagerduty import render_pagerduty
from runbook_operator.integrations.notifiers.slack import render_slack

from runbook_operator.devcluster.waiting import free_port
from tests.support.builders import NOW, notification
from tests.support.fakes import Sleeps
from tests.support.receivers import HTTPReceiver, Reply

SLACK_PATH = "/services/T0000/B0000/XXXXslacksecretXXXX"
ROUTING_KEY = "R0UTINGKEYsecret0123456789abcdef"
TOKEN = "Bearer hook-token-secret"
RETRY = {"maxAttempts": 4, "initialBackoff": "1s", "maxBackoff": "8s"}


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    with HTTPReceiver() as server:
        yield server


def channel(kind: str, spec: dict[str, Any], **extra: Any) -> Channel:
    full = {kind: spec, "retry": RETRY, "timeout": "2s", **extra}
    return Channel(
        name=f"ops-{kind}", namespace="prod", spec=NotificationChannelSpec.model_validate(full)
    )


def slack(receiver: HTTPReceiver, **extra: Any) -> tuple[Channel, dict]:
    spec = {"webhookURLSecretRef": {"name": "slack", "key": "url"}}
    return channel("slack", spec, **extra), {("slack", "url"): receiver.url(SLACK_PATH)}


def pagerduty(receiver: HTTPReceiver) -> tuple[Channel, dict]:
    spec = {
        "routingKeySecretRef": {"name": "pd", "key": "routing-key"},
        "endpoint": receiver.url("/v2/enqueue"),
    }
    return channel("pagerduty", spec), {("pd", "routing-key"): ROUTING_KEY}


def webhook(receiver: HTTPReceiver, **extra: Any) -> tuple[Channel, dict]:
    spec = {
        "urlSecretRef": {"name": "hook", "key": "url"},
        "headers": [{"name": "Authorization", "secretKeyRef": {"name": "hook", "key": "token"}}],
    }
    secrets = {("hook", "url"): receiver.url("/hook?key=querysecret"), ("hook", "token"): TOKEN}
    return channel("webhook", spec, **extra), secrets


def run(
    target: Channel,
    secrets: dict,
    sleeps: Sleeps | None = None,
    message: Notification | None = None,
    **options: Any,
):
    return asyncio.run(
        deliver(
            target,
            message or notification(),
            secrets,
            sleep=sleeps or Sleeps(),
            rng=random.Random(7),
            now=lambda: NOW,
            **options,
        )
    )


def outcomes(records) -> list[tuple[str, int | None, int]]:
    return [(r.result, r.status_code, r.attempt) for r in records]


def test_slack_receives_the_documented_payload(receiver: HTTPReceiver) -> None:
    target, secrets = slack(receiver)
    records = run(target, secrets)
    assert outcomes(records) == [("delivered", 200, 1)]
    [request] = receiver.requests
    assert request.path == SLACK_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.json() == render_slack(target.spec.slack, notification())
    host = receiver.url("")
    assert records[0].message == f"delivered to {host}: 200 ok"
    assert records[0].channel == "ops-slack" and records[0].time == NOW


def test_500_then_200_is_delivered_exactly_once(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(500, "internal error"), Reply(200, "ok"))
    sleeps = Sleeps()
    target, secrets = slack(receiver)
    records = run(target, secrets, sleeps)
    assert outcomes(records) == [("retrying", 500, 1), ("delivered", 200, 2)]
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert len(sleeps.calls) == 1 and 0.5 <= sleeps.calls[0] <= 1.0


def test_400_fails_and_is_not_retried(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(400, "invalid_blocks"))
    sleeps = Sleeps()
    target, secrets = slack(receiver)
    records = run(target, secrets, sleeps)
    assert outcomes(records) == [("failed", 400, 1)]
    assert records[0].message == f"{receiver.url('')}: 400 invalid_blocks"
    assert len(receiver.requests) == 1 and sleeps.calls == []


def test_slack_200_without_ok_is_not_a_success(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(200, "no_text"))
    target, secrets = slack(receiver)
    assert outcomes(run(target, secrets)) == [("failed", 200, 1)]


def test_pagerduty_429_waits_as_told_by_retry_after(receiver: HTTPReceiver) -> None:
    accepted = Reply(202, '{"status":"success","message":"Event processed"}')
    receiver.answer(Reply(429, "{}", headers={"Retry-After": "3"}), accepted)
    sleeps = Sleeps()
    target, secrets = pagerduty(receiver)
    records = run(target, secrets, sleeps)
    assert outcomes(records) == [("retrying", 429, 1), ("delivered", 202, 2)]
    assert sleeps.calls == [3.0]
    first, second = receiver.requests
    assert first.path == "/v2/enqueue" and first.json() == second.json()
    assert first.json() == render_pagerduty(target.spec.pagerduty, notification(), ROUTING_KEY)


def test_pagerduty_resolve(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(202, "{}"))
    target, secrets = pagerduty(receiver)
    run(target, secrets, message=notification(event="resolved"))
    assert receiver.requests[0].json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "prod/db-nightly/backup-failed",
    }


def test_pagerduty_needs_202(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(200, "{}"))
    target, secrets = pagerduty(receiver)
    records = run(target, secrets)
    assert outcomes(records) == [("failed", 200, 1)]
    assert "PagerDuty answers 202" in records[0].message


def test_timeout_is_retried(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(200, delay=5.0), Reply(200, ""))
    target, secrets = webhook(receiver, timeout="300ms")
    records = run(target, secrets)
    assert outcomes(records) == [("retrying", None, 1), ("delivered", 200, 2)]
    assert "ReadTimeout after 0.3s" in records[0].message
    assert len(receiver.requests) == 2


def test_retries_are_bounded(receiver: HTTPReceiver) -> None:
    receiver.default = Reply(503, "unavailable")
    sleeps = Sleeps()
    target, secrets = slack(receiver)
    records = run(target, secrets, sleeps)
    assert [r.result for r in records] == ["retrying", "retrying", "retrying", "failed"]
    assert "gave up after 4 attempts" in records[-1].message
    assert len(receiver.requests) == 4
    assert len(sleeps.calls) == 3 and all(s <= 8.0 for s in sleeps.calls)


def test_unreachable_receiver_is_retried() -> None:
    target = channel("webhook", {"url": f"http://127.0.0.1:{free_port()}/hook"})
    records = run(target, {})
    assert [r.result for r in records] == ["retrying", "retrying", "retrying", "failed"]
    assert "ConnectError" in records[0].message


def test_webhook_body_and_secret_headers(receiver: HTTPReceiver) -> None:
    target, secrets = webhook(receiver)
    records = run(target, secrets)
    assert outcomes(records) == [("delivered", 200, 1)]
    [request] = receiver.requests
    assert request.headers["authorization"] == TOKEN
    assert request.headers["user-agent"] == "runbook-operator"
    body = request.json()
    assert (body["version"], body["status"], body["receiver"]) == ("4", "firing", "ops-webhook")
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"


def test_no_secret_reaches_records_or_logs(
    receiver: HTTPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    records = []
    for (target, secrets), echo in (
        (slack(receiver), Reply(500, f"echo {SLACK_PATH}")),
        (webhook(receiver), Reply(401, f"bad {TOKEN}")),
        (pagerduty(receiver), Reply(400, f"bad key {ROUTING_KEY}")),
    ):
        receiver.answer(echo)
        records += run(target, secrets)
    assert [r.result for r in records] == ["retrying", "delivered", "failed", "failed"]
    shown = caplog.text + " ".join(r.model_dump_json() for r in records)
    for secret in (SLACK_PATH, "XXXXslacksecretXXXX", "querysecret", TOKEN, ROUTING_KEY):
        assert secret not in shown
    assert "echo ***" in records[0].message
    assert "bad ***" in records[2].message and "bad key ***" in records[3].message


def test_invalid_url_in_secret_fails_without_echoing_it() -> None:
    target = channel("slack", {"webhookURLSecretRef": {"name": "slack", "key": "url"}})
    records = run(target, {("slack", "url"): "hooks.slack.com/services/secretpath"})
    assert outcomes(records) == [("failed", None, 1)]
    assert records[0].message == "<invalid URL>: invalid request: UnsupportedProtocol"


def test_missing_secret_fails_without_a_request(receiver: HTTPReceiver) -> None:
    target, _ = webhook(receiver)
    records = run(target, {("hook", "url"): receiver.url("/hook")})
    assert outcomes(records) == [("failed", None, 1)]
    assert records[0].message == "Secret 'hook' key 'token' has no value"
    assert receiver.requests == []


class Clock(Sleeps):
    """Sleeping advances a fake monotonic clock, so a rate limit is observable."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 100.0

    async def __call__(self, seconds: float) -> None:
        await super().__call__(seconds)
        self.now += seconds


def test_rate_limit_spaces_requests(receiver: HTTPReceiver) -> None:
    clock = Clock()
    limiter = RateLimiter(clock=lambda: clock.now)
    target, secrets = slack(receiver, rateLimit={"requests": 2, "per": "10s"})
    for _ in range(3):
        run(target, secrets, clock, limiter=limiter)
    assert len(receiver.requests) == 3
    assert clock.calls == [10.0]


def test_a_shared_client_is_reused(receiver: HTTPReceiver) -> None:
    target, secrets = slack(receiver)

    async def twice() -> list:
        async with httpx.AsyncClient() as client:
            first = await deliver(target, notification(), secrets, client=client)
            return first + await deliver(target, notification(), secrets, client=client)

    assert [r.result for r in asyncio.run(twice())] == ["delivered", "delivered"]


def test_resolve_secrets_reads_each_secret_once() -> None:
    spec = NotificationChannelSpec.model_validate(
        {
            "webhook": {
                "urlSecretRef": {"name": "hook", "key": "url"},
                "headers": [
                    {"name": "Authorization", "secretKeyRef": {"name": "hook", "key": "token"}},
                    {"name": "X-Bad", "secretKeyRef": {"name": "hook", "key": "bad"}},
                    {"name": "X-Gone", "secretKeyRef": {"name": "gone", "key": "x"}},
                    {"name": "X-Plain", "secretKeyRef": {"name": "plain", "key": "v"}},
                ],
            }
        }
    )
    objects = {
        "hook": {
            "data": {
                "url": base64.b64encode(b"https://example.com/hook\n").decode(),
                "token": base64.b64encode(TOKEN.encode()).decode(),
                "bad": "not base64!",
            }
        },
        "plain": {"stringData": {"v": " value "}},
    }
    reads: list[str] = []

    def read(name: str) -> dict | None:
        reads.append(name)
        return objects.get(name)

    assert resolve_secrets(spec, read) == {
        ("hook", "url"): "https://example.com/hook",
        ("hook", "token"): TOKEN,
        ("plain", "v"): "value",
    }
    assert reads == ["hook", "gone", "plain"]


def test_channel_from_body() -> None:
    body = {
        "metadata": {"name": "ops", "namespace": "prod"},
        "spec": {"webhook": {"url": "https://example.com/hook"}},
    }
    parsed = Channel.from_body(body)
    assert (parsed.name, parsed.namespace, parsed.spec.channel_type()) == ("ops", "prod", "webhook")


def test_a_group_is_one_request_to_a_webhook_and_refused_by_per_alert_channels(
        receiver: HTTPReceiver) -> None:
    alerts = tuple(
        GroupedAlert(subject=f"fp-{pod}", status="firing", labels={"pod": pod}, annotations={},
                     starts_at=NOW, ends_at=None, generator_url="", fingerprint=pod)
        for pod in ("b", "a"))
    group = AlertGroup({"alertname": "web-5xx", "namespace": "prod"}, alerts, "critical")
    (record,) = run(*webhook(receiver), message=group)  # type: ignore[arg-type]
    (request,) = receiver.requests
    assert [a["labels"]["pod"] for a in request.json()["alerts"]] == ["a", "b"]
    assert (record.result, record.event, record.severity, record.fingerprint) == (
        "delivered", "firing", "critical", group.dedup_key)
    with pytest.raises(TypeError):
        run(*slack(receiver), message=group)  # type: ignore[arg-type]
