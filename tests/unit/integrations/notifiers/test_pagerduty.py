"""PagerDuty Events v2 bodies: trigger, acknowledge, resolve, limits, severity mapping."""

from __future__ import annotations

import pytest
from runbook_operator.api.notificationchannel import PagerDutyChannel
from runbook_operator.integrations.notifiers.pagerduty import render_pagerduty

from tests.support.builders import notification

SPEC = PagerDutyChannel.model_validate({"routingKeySecretRef": {"name": "pd", "key": "key"}})
KEY = "R0UTINGKEY0123456789abcdef012345"


def test_trigger_shape() -> None:
    assert render_pagerduty(SPEC, notification(labels={"db": "main"}), KEY) == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "prod/db-nightly/backup-failed",
        "payload": {
            "summary": "Backup db-nightly failed: pg_dump: connection refused",
            "source": "prod/db-nightly",
            "severity": "error",
            "timestamp": "2026-03-01T12:00:05Z",
            "component": "db-nightly",
            "group": "prod",
            "class": "BackupPolicy",
            "custom_details": {
                "job": "db-nightly-backup-29012345",
                "reason": "BackoffLimitExceeded",
                "event": "failed",
                "severity": "high",
                "labels": {"db": "main"},
            },
        },
        "links": [{"href": "https://grafana.example.com/d/backups", "text": "Dashboard"}],
    }


@pytest.mark.parametrize(
    "event, action",
    [("resolved", "resolve"), ("succeeded", "resolve"), ("acknowledged", "acknowledge")],
)
def test_acknowledge_and_resolve_carry_only_the_key_fields(event: str, action: str) -> None:
    assert render_pagerduty(SPEC, notification(event=event), KEY) == {
        "routing_key": KEY,
        "event_action": action,
        "dedup_key": "prod/db-nightly/backup-failed",
    }


@pytest.mark.parametrize(
    "severity, expected",
    [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("warning", "warning"),
     ("low", "warning"), ("info", "info")],
)
def test_default_severity_mapping(severity: str, expected: str) -> None:
    body = render_pagerduty(SPEC, notification(severity=severity), KEY)
    assert body["payload"]["severity"] == expected


def test_custom_severity_mapping() -> None:
    spec = PagerDutyChannel.model_validate(
        {
            "routingKeySecretRef": {"name": "pd", "key": "key"},
            "severityMapping": {"high": "critical"},
        }
    )
    assert render_pagerduty(spec, notification(), KEY)["payload"]["severity"] == "critical"
    low = render_pagerduty(spec, notification(severity="low"), KEY)
    assert low["payload"]["severity"] == "warning"
    prometheus_style = PagerDutyChannel.model_validate(
        {"routingKeySecretRef": {"name": "pd", "key": "key"},
         "severityMapping": {"warning": "error"}})
    warning = render_pagerduty(prometheus_style, notification(severity="warning"), KEY)
    assert warning["payload"]["severity"] == "error"


def test_limits() -> None:
    body = render_pagerduty(
        SPEC, notification(title="t" * 600, summary="s" * 600, dedup_key="d" * 255), KEY
    )
    assert len(body["payload"]["summary"]) == 1024
    assert body["payload"]["summary"].endswith("…")
    assert len(body["dedup_key"]) == 255


def test_details_cannot_override_the_event() -> None:
    body = render_pagerduty(SPEC, notification(details={"event": "fake", "x": "1"}), KEY)
    assert body["payload"]["custom_details"]["event"] == "failed"
    assert "labels" not in body["payload"]["custom_details"]
