"""core.delivery: what an answer means, when to retry, dedup keys, the channel spec's rules."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from runbook_operator.api.common import NotificationRecord
from runbook_operator.api.notificationchannel import (
    NotificationChannelSpec,
    NotificationChannelStatus,
    RateLimit,
    RetryPolicy,
)
from runbook_operator.core.delivery import (
    Answer,
    Deliver,
    GiveUp,
    Notification,
    Retry,
    RetryRules,
    Source,
    backoff,
    classify,
    decide,
    fingerprint,
    rate_limit_slot,
    record_deliveries,
    redact_url,
    retry_after_seconds,
    scrub,
    url_secrets,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULES = RetryRules(max_attempts=5, initial=1.0, maximum=60.0)
HTTP_PROTOCOLS = ("slack", "pagerduty", "webhook")


class Fixed(random.Random):
    """A 'random' source that always returns the same value."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


# --- what an answer means ---------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol, answer, verdict",
    [
        ("slack", Answer(200, "ok"), "accepted"),
        ("slack", Answer(200, "ok\n"), "accepted"),
        ("slack", Answer(200, "invalid_payload"), "final"),
        ("slack", Answer(400, "invalid_blocks"), "final"),
        ("slack", Answer(403, "invalid_token"), "final"),
        ("slack", Answer(404, "no_service"), "final"),
        ("slack", Answer(410, "channel_is_archived"), "final"),
        ("slack", Answer(429), "transient"),
        ("slack", Answer(500), "transient"),
        ("pagerduty", Answer(202, '{"status":"success"}'), "accepted"),
        ("pagerduty", Answer(200, "{}"), "final"),
        ("pagerduty", Answer(400, '{"status":"invalid event"}'), "final"),
        ("pagerduty", Answer(429), "transient"),
        ("pagerduty", Answer(502), "transient"),
        ("webhook", Answer(200), "accepted"),
        ("webhook", Answer(204, ""), "accepted"),
        ("webhook", Answer(301, ""), "final"),
        ("webhook", Answer(422), "final"),
        ("webhook", Answer(503), "transient"),
        ("smtp", Answer(250, "accepted"), "accepted"),
        ("smtp", Answer(451, "try later"), "transient"),
        ("smtp", Answer(421, "closing"), "transient"),
        ("smtp", Answer(550, "no such user"), "final"),
        ("smtp", Answer(535, "bad credentials"), "final"),
        ("webhook", Answer(error="timeout"), "transient"),
        ("webhook", Answer(error="connection"), "transient"),
        ("webhook", Answer(error="invalid"), "final"),
        ("smtp", Answer(error="timeout"), "transient"),
    ],
)
def test_classify(protocol, answer: Answer, verdict: str) -> None:
    assert classify(protocol, answer)[0] == verdict


def test_reason_is_one_short_line() -> None:
    _, reason = classify("webhook", Answer(500, "line one\n  line two" + "x" * 500))
    assert reason.startswith("500 line one line two") and "\n" not in reason
    assert len(reason) <= 210


# --- retry decisions ----------------------------------------------------------------------

rules_strategy = st.builds(
    RetryRules,
    max_attempts=st.integers(1, 20),
    initial=st.floats(0.0, 3600.0),
    maximum=st.floats(0.0, 3600.0),
)
header_strategy = st.one_of(
    st.none(),
    st.integers(0, 10**9).map(str),
    st.text(max_size=40),
    st.datetimes(timezones=st.just(UTC)).map(format_datetime),
)
http_answers = st.builds(
    Answer,
    status_code=st.integers(100, 599),
    body=st.text(max_size=20),
    retry_after=header_strategy,
)
transport_failures = st.builds(Answer, error=st.sampled_from(["timeout", "connection", "invalid"]))


@given(
    st.sampled_from(HTTP_PROTOCOLS),
    st.integers(400, 499).filter(lambda c: c != 429),
    header_strategy,
    st.integers(1, 30),
    rules_strategy,
)
def test_never_retries_a_4xx_other_than_429(protocol, code, header, attempt, rules) -> None:
    answer = Answer(status_code=code, retry_after=header)
    assert isinstance(decide(protocol, answer, attempt, rules, random.Random(0), NOW), GiveUp)


@given(
    st.sampled_from([*HTTP_PROTOCOLS, "smtp"]),
    st.one_of(http_answers, transport_failures),
    st.integers(1, 30),
    rules_strategy,
    st.floats(0.0, 1.0, exclude_max=True),
)
def test_backoff_is_never_negative_nor_above_the_maximum(
    protocol, answer, attempt, rules, jitter
) -> None:
    decision = decide(protocol, answer, attempt, rules, Fixed(jitter), NOW)
    if isinstance(decision, Retry):
        assert 0.0 <= decision.after <= rules.maximum


@given(st.sampled_from(HTTP_PROTOCOLS), st.one_of(http_answers, transport_failures), rules_strategy)
def test_attempts_are_bounded(protocol, answer, rules) -> None:
    """Whatever a receiver keeps answering, delivery stops within max_attempts."""
    rng = random.Random(1)
    attempt = 1
    while isinstance(decide(protocol, answer, attempt, rules, rng, NOW), Retry):
        attempt += 1
        assert attempt <= rules.max_attempts
    assert attempt <= rules.max_attempts


def test_retries_until_the_last_attempt_then_gives_up() -> None:
    for attempt in range(1, RULES.max_attempts):
        assert isinstance(decide("slack", Answer(503), attempt, RULES, Fixed(0.5), NOW), Retry)
    final = decide("slack", Answer(503), RULES.max_attempts, RULES, Fixed(0.5), NOW)
    assert isinstance(final, GiveUp) and "gave up after 5 attempts" in final.reason


def test_a_single_allowed_attempt_gives_up_with_the_answer_alone() -> None:
    once = RetryRules(max_attempts=1, initial=1.0, maximum=1.0)
    final = decide("webhook", Answer(503, "busy"), 1, once, Fixed(0.5), NOW)
    assert final == GiveUp("503 busy")


def test_backoff_doubles_with_equal_jitter_and_is_capped() -> None:
    rules = RetryRules(max_attempts=10, initial=1.0, maximum=10.0)
    assert [backoff(n, rules, Fixed(0.999999)) for n in (1, 2, 3, 4, 5)] == pytest.approx(
        [1, 2, 4, 8, 10], rel=1e-5
    )
    assert [backoff(n, rules, Fixed(0.0)) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 5]
    assert backoff(10_000, rules, Fixed(0.5)) <= 10.0


def test_retry_after_is_honoured_and_capped() -> None:
    told = decide("pagerduty", Answer(429, retry_after="7"), 1, RULES, Fixed(0.5), NOW)
    assert told == Retry(after=7.0, reason="429")
    capped = decide("pagerduty", Answer(429, retry_after="86400"), 1, RULES, Fixed(0.5), NOW)
    assert isinstance(capped, Retry) and capped.after == 60.0
    date = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    by_date = decide("slack", Answer(503, retry_after=date), 1, RULES, Fixed(0.5), NOW)
    assert isinstance(by_date, Retry) and by_date.after == 30.0
    unreadable = decide("slack", Answer(429, retry_after="soon"), 1, RULES, Fixed(0.0), NOW)
    assert isinstance(unreadable, Retry) and unreadable.after == 0.5


@pytest.mark.parametrize(
    "header, seconds",
    [
        (None, None),
        ("0", 0.0),
        (" 12 ", 12.0),
        ("-3", None),
        ("1.5", None),
        ("²", None),
        ("Sun, 01 Mar 2026 12:01:00 GMT", 60.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("garbage", None),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_success_is_decided_first() -> None:
    assert isinstance(decide("slack", Answer(200, "ok"), 5, RULES, Fixed(0.5), NOW), Deliver)


def test_retry_rules_from_spec() -> None:
    rules = RetryRules.from_spec(RetryPolicy(max_attempts=3, initial_backoff="500ms"))
    assert rules == RetryRules(max_attempts=3, initial=0.5, maximum=60.0)


# --- fingerprints and the notification model ----------------------------------------------


def test_fingerprint_is_stable_and_fits_pagerduty() -> None:
    key = fingerprint("AlertRule", "prod", "latency", labels={"service": "api", "pod": "a"})
    assert key == fingerprint("AlertRule", "prod", "latency", labels={"pod": "a", "service": "api"})
    # Pinned: a changed fingerprint would open duplicate PagerDuty alerts after an upgrade.
    assert key == "735b9764cd7fca59a9a09c23e6d085598e9b936574dffc2a6cd9b148020152b1"
    assert len(key) == 64  # PagerDuty allows 255


@given(st.lists(st.text(), max_size=4), st.lists(st.text(), max_size=4))
def test_fingerprint_separates_parts(a: list[str], b: list[str]) -> None:
    if a != b:
        assert fingerprint(*a) != fingerprint(*b)


def test_fingerprint_separates_labels() -> None:
    assert fingerprint("r", labels={"a": "b=c"}) != fingerprint("r", labels={"a=b": "c"})
    assert fingerprint("r") == fingerprint("r", labels={})


def _notification(**changes) -> Notification:
    fields = {
        "source": Source(kind="AlertRule", name="latency", namespace="prod"),
        "event": "firing",
        "severity": "critical",
        "title": "p95 latency above 2s",
        "timestamp": NOW,
        "dedup_key": "k",
    }
    return Notification(**{**fields, **changes})


def test_notification_limits() -> None:
    assert _notification(dedup_key="x" * 255).dedup_key == "x" * 255
    with pytest.raises(ValidationError):
        _notification(dedup_key="x" * 256)
    with pytest.raises(ValidationError):
        _notification(dedup_key="")
    with pytest.raises(ValidationError, match="timezone"):
        _notification(timestamp=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValidationError):
        _notification(severity="major")


@pytest.mark.parametrize(
    "event, phase",
    [
        ("firing", "problem"),
        ("failed", "problem"),
        ("breached", "problem"),
        ("opened", "problem"),
        ("escalated", "problem"),
        ("acknowledged", "acknowledged"),
        ("resolved", "clear"),
        ("succeeded", "clear"),
    ],
)
def test_phase(event: str, phase: str) -> None:
    assert _notification(event=event).phase == phase


# --- redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com"),
        ("http://user:pass@10.0.0.1:8080/hook?token=abc", "http://10.0.0.1:8080"),
        ("https://example.com", "https://example.com"),
        ("not a url", "<invalid URL>"),
        ("http://[::1", "<invalid URL>"),
        ("", "<invalid URL>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_url_secrets_cover_what_a_receiver_may_echo() -> None:
    assert url_secrets("https://h.example/services/T0/B0/X?key=1") == (
        "https://h.example/services/T0/B0/X?key=1",
        "/services/T0/B0/X",
        "key=1",
    )
    assert url_secrets("https://h.example/") == ("https://h.example/",)


def test_scrub_replaces_secret_values_longest_first() -> None:
    text = "echo: https://h/services/T0/B0/XXXX and XXXX"
    assert scrub(text, ["XXXX", "https://h/services/T0/B0/XXXX", ""]) == "echo: *** and ***"


# --- rate limiting ------------------------------------------------------------------------


def test_rate_limit_slot() -> None:
    two_per_second = RateLimit(requests=2, per="1s")
    assert rate_limit_slot([], two_per_second, 0.0) == 0.0
    assert rate_limit_slot([0.0], two_per_second, 0.5) == 0.5
    assert rate_limit_slot([0.0, 0.5], two_per_second, 0.6) == 1.0
    assert rate_limit_slot([0.0, 0.5], two_per_second, 1.2) == 1.2


@given(
    st.integers(1, 5),
    st.lists(st.floats(0.0, 5.0), min_size=1, max_size=30).map(sorted),
)
def test_reserved_slots_never_exceed_the_limit(requests: int, arrivals: list[float]) -> None:
    limit = RateLimit(requests=requests, per="2s")
    slots: list[float] = []
    for now in arrivals:
        slots.append(rate_limit_slot(slots, limit, now))
        assert slots[-1] >= now
    assert slots == sorted(slots)
    for start in slots:
        assert sum(1 for t in slots if start <= t < start + 2.0) <= requests


# --- recording deliveries in the channel's status -----------------------------------------


def _record(result: str, seconds: int, attempt: int = 1) -> NotificationRecord:
    return NotificationRecord(
        time=NOW + timedelta(seconds=seconds),
        channel="ops",
        fingerprint="prod/db-nightly/backup-failed",
        event="failed",
        severity="high",
        attempt=attempt,
        result=result,
        status_code=500 if result != "delivered" else 200,
        message=result,
    )


def test_record_deliveries_counts_each_notification_once() -> None:
    status = record_deliveries(
        NotificationChannelStatus(),
        [_record("retrying", 0), _record("delivered", 2, attempt=2)],
    )
    assert (status.delivered_total, status.failed_total) == (1, 0)
    assert status.last_delivery is not None and status.last_delivery.result == "delivered"
    assert status.to_wire()["lastDelivery"] == {
        "time": "2026-03-01T12:00:02Z",
        "channel": "ops",
        "fingerprint": "prod/db-nightly/backup-failed",
        "event": "failed",
        "severity": "high",
        "level": 0,
        "result": "delivered",
        "statusCode": 200,
        "message": "delivered",
        "attempt": 2,
    }
    status = record_deliveries(status, [_record("failed", 5)])
    assert (status.delivered_total, status.failed_total) == (1, 1)
    older = record_deliveries(status, [_record("delivered", 1)])
    assert older.last_delivery == status.last_delivery and older.delivered_total == 2
    assert record_deliveries(status, []) == status


# --- the channel spec ---------------------------------------------------------------------

SLACK = {"slack": {"webhookURLSecretRef": {"name": "slack", "key": "url"}}}


def test_spec_needs_exactly_one_channel_type() -> None:
    spec = NotificationChannelSpec.model_validate(SLACK)
    assert spec.channel_type() == "slack"
    assert spec.retry == RetryPolicy() and spec.timeout == "10s"
    with pytest.raises(ValidationError, match="exactly one"):
        NotificationChannelSpec.model_validate({})
    both = {**SLACK, "webhook": {"url": "https://example.com/hook"}}
    with pytest.raises(ValidationError, match="exactly one"):
        NotificationChannelSpec.model_validate(both)


def test_spec_rules_per_type() -> None:
    with pytest.raises(ValidationError, match="exactly one of url and urlSecretRef"):
        NotificationChannelSpec.model_validate({"webhook": {}})
    email = {"smtpHost": "smtp.example.com", "from": "ops@example.com", "to": ["a@example.com"]}
    with pytest.raises(ValidationError, match="both usernameSecretRef and passwordSecretRef"):
        NotificationChannelSpec.model_validate(
            {"email": {**email, "usernameSecretRef": {"name": "smtp", "key": "user"}}}
        )
    parsed = NotificationChannelSpec.model_validate({"email": email})
    assert parsed.email is not None and parsed.email.start_tls and parsed.email.smtp_port == 587
    with pytest.raises(ValidationError):
        NotificationChannelSpec.model_validate({"email": {**email, "to": []}})


def test_secret_refs() -> None:
    webhook = NotificationChannelSpec.model_validate(
        {
            "webhook": {
                "urlSecretRef": {"name": "hook", "key": "url"},
                "headers": [
                    {"name": "Authorization", "secretKeyRef": {"name": "hook", "key": "auth"}}
                ],
            }
        }
    )
    assert [(r.name, r.key) for r in webhook.secret_refs()] == [("hook", "url"), ("hook", "auth")]
    plain = NotificationChannelSpec.model_validate({"webhook": {"url": "https://example.com/x"}})
    assert plain.secret_refs() == []
    pagerduty = NotificationChannelSpec.model_validate(
        {"pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "key"}}}
    )
    assert pagerduty.pagerduty is not None
    assert pagerduty.pagerduty.endpoint == "https://events.pagerduty.com/v2/enqueue"
    assert [(r.name, r.key) for r in pagerduty.secret_refs()] == [("pd", "key")]
