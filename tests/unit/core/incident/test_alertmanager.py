"""core.incident.alertmanager: the webhook's checks and payload (version 4, in the exact shape
DESIGN §7 gives and Alertmanager 0.25 sends), and the report a group makes."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from runbook_operator.core.incident.alertmanager import (
    LABEL_VALUE_LIMIT,
    MAX_LABELS,
    ReceiverSettings,
    Rejected,
    check_content_type,
    check_size,
    check_token,
    group_report,
    parse_payload,
    severity_of,
)
from runbook_operator.core.incident.sources import incident_name, new_incident

GROUP_KEY = '{}:{alertname="CheckoutLatency"}'


def alert(instance: str, status: str = "firing", starts: str = "2026-12-01T09:00:00.5Z",
          ends: str = "0001-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "CheckoutLatency", "instance": instance,
                   "service": "caisse-café ☕", "region": "東京", "severity": "critical"},
        "annotations": {"summary": "Latence élevée ⚠"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
        "fingerprint": hashlib.sha256(instance.encode()).hexdigest()[:16],
    }


PAYLOAD: dict[str, Any] = {
    "version": "4",
    "groupKey": GROUP_KEY,
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "runbook",
    "groupLabels": {"alertname": "CheckoutLatency"},
    "commonLabels": {"alertname": "CheckoutLatency", "service": "caisse-café ☕",
                     "region": "東京", "severity": "critical"},
    "commonAnnotations": {"summary": "Latence élevée ⚠", "description": "p95 > 2s"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [alert("web-1", starts="2026-12-01T09:00:03Z"), alert("web-2")],
}
SETTINGS = ReceiverSettings(namespace="ops", severity="P3", policy="sre",
                            resolve_when_resolved=True)


def encoded(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def changed(**fields: Any) -> dict[str, Any]:
    payload = copy.deepcopy(PAYLOAD)
    for name, value in fields.items():
        if value is None:
            del payload[name]
        else:
            payload[name] = value
    return payload


def rejected(body: bytes) -> Rejected:
    with pytest.raises(Rejected) as raised:
        parse_payload(body)
    return raised.value


def test_a_firing_group_is_read_in_full() -> None:
    payload = parse_payload(encoded(PAYLOAD))
    assert (payload.version, payload.group_key, payload.status) == ("4", GROUP_KEY, "firing")
    assert payload.external_url == "http://alertmanager:9093"
    first = payload.alerts[0]
    assert first.labels["region"] == "東京"
    assert first.generator_url.startswith("http://prometheus")
    assert first.ended is None
    assert payload.alerts[1].starts_at == datetime(2026, 12, 1, 9, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "body is not JSON"),
    (b"\xff\xfe", 400, "body is not JSON"),
    (b"[]", 400, "not a JSON object"),
    (encoded(changed(version="3")), 422, "unsupported payload version '3'"),
    (encoded(changed(version=None)), 422, "unsupported payload version None"),
    (encoded(changed(groupKey=None)), 422, "groupKey: Field required"),
    (encoded(changed(groupKey="")), 422, "groupKey: String should have at least 1 character"),
    (encoded(changed(alerts=[])), 422, "alerts: List should have at least 1 item"),
    (encoded(changed(truncatedAlerts=-1)), 422, "truncatedAlerts: Input should be greater"),
    (encoded(changed(truncatedAlerts="2")), 422, "truncatedAlerts: Input should be a valid int"),
    (encoded(changed(status="pending")), 422, "status: Input should be 'firing' or 'resolved'"),
    (encoded(changed(externalURL=None)), 422, "externalURL: Field required"),
    (encoded(changed(alerts=[{k: v for k, v in alert("a").items() if k != "fingerprint"}])),
     422, "alerts.0.fingerprint: Field required"),
    (encoded(changed(alerts=[{**alert("a"), "startsAt": "yesterday"}])),
     422, "alerts.0.startsAt"),
    (encoded(changed(alerts=[{**alert("a"), "labels": {"n": 1}}])), 422, "alerts.0.labels.n"),
])
def test_invalid_payloads_are_refused_with_their_reason(body: bytes, status: int,
                                                        reason: str) -> None:
    refused = rejected(body)
    assert refused.status == status
    assert reason in refused.reason


def test_many_problems_are_listed_up_to_a_few() -> None:
    refused = rejected(encoded({"version": "4"}))
    assert refused.reason.count(": Field required") == 5 and refused.reason.endswith("4 more")


@pytest.mark.parametrize("header, reason", [
    (None, "missing bearer token"),
    ("Basic dXNlcjpzZWNyZXQ=", "missing bearer token"),
    ("Bearer ", "missing bearer token"),
    ("Bearer not-the-token", "wrong bearer token"),
])
def test_the_token_is_required(header: str | None, reason: str) -> None:
    with pytest.raises(Rejected) as raised:
        check_token(header, "s3cret")
    assert (raised.value.status, raised.value.reason.split(" (")[0]) == (401, reason)
    assert "s3cret" not in raised.value.reason


def test_the_right_token_passes_whatever_the_scheme_case() -> None:
    check_token("Bearer s3cret", "s3cret")
    check_token("bearer s3cret ", "s3cret")


def test_only_json_bodies_of_bounded_size_are_read() -> None:
    check_content_type("application/json")
    check_content_type("Application/JSON; charset=utf-8")
    for wrong in (None, "", "text/plain", "application/x-www-form-urlencoded"):
        with pytest.raises(Rejected) as raised:
            check_content_type(wrong)
        assert raised.value.status == 415
    check_size(10, 10)
    with pytest.raises(Rejected) as raised:
        check_size(11, 10)
    assert (raised.value.status, raised.value.reason) == (
        413, "body of 11 bytes exceeds the limit of 10 bytes")


@pytest.mark.parametrize("label, severity", [
    ("P0", "P0"), ("p1", "P1"), ("critical", "P1"), ("error", "P2"), ("high", "P2"),
    ("warning", "P3"), ("Info", "P3"), ("page-everyone", "P3"), ("", "P3")])
def test_severity_comes_from_the_severity_label(label: str, severity: str) -> None:
    assert severity_of({"severity": label}, "P3") == severity


def test_a_firing_group_reports_one_source_per_group_key() -> None:
    report = group_report(parse_payload(encoded(PAYLOAD)), SETTINGS)
    assert report.firing
    assert (report.source.kind, report.source.name) == ("Alertmanager", "runbook")
    assert report.episode == "2026-12-01T09:00:00Z"
    assert report.opening.title == "Latence élevée ⚠"
    assert (report.opening.severity, report.opening.policy) == ("P1", "sre")
    assert report.opening.resolve_when_recovered
    assert "p95 > 2s" in report.opening.description
    assert "http://alertmanager:9093" in report.opening.description
    assert [a.labels["service"] for a in report.alerts] == ["caisse-café ☕"] * 2
    body = new_incident(report)
    assert body["metadata"]["name"].startswith("checkoutlatency-")
    later = changed(alerts=[*PAYLOAD["alerts"], alert("web-3", starts="2026-12-01T09:05:00Z")])
    again = group_report(parse_payload(encoded(later)), SETTINGS)
    assert again.source == report.source and again.label == report.label
    assert incident_name(again) == incident_name(report)
    other = group_report(parse_payload(encoded(changed(groupKey='{}:{alertname="Other"}'))),
                         SETTINGS)
    assert other.source.fingerprint != report.source.fingerprint


def test_a_resolved_group_recovers_when_its_last_alert_ended() -> None:
    ended = [alert("web-1", "resolved", ends="2026-12-01T09:30:00Z"),
             alert("web-2", "resolved", ends="2026-12-01T09:31:00Z")]
    payload = parse_payload(encoded(changed(status="resolved", alerts=ended)))
    report = group_report(payload, SETTINGS)
    assert not report.firing and report.episode == ""
    assert report.recovered_at == datetime(2026, 12, 1, 9, 31, tzinfo=UTC)
    assert [a.ends_at for a in report.alerts] == [
        datetime(2026, 12, 1, 9, 30, tzinfo=UTC), datetime(2026, 12, 1, 9, 31, tzinfo=UTC)]


def test_what_an_alert_brings_into_status_is_bounded_and_truncation_is_carried() -> None:
    labels = {f"l{n:02d}": "v" * (LABEL_VALUE_LIMIT + 50) for n in range(MAX_LABELS + 8)}
    big = changed(truncatedAlerts=7, groupLabels={},
                  alerts=[{**alert("web-1"), "labels": labels}])
    report = group_report(parse_payload(encoded(big)), SETTINGS)
    (only,) = report.alerts
    assert len(only.labels) == MAX_LABELS
    assert all(len(value) == LABEL_VALUE_LIMIT for value in only.labels.values())
    assert report.truncated == 7
    assert report.what == "Alertmanager group runbook"
